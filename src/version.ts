// The package's version, read once from package.json: one level up from src/ (development)
// and from dist/ (what ships), so both find the same file.

import { readFileSync } from 'node:fs';

export const VERSION: string = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
