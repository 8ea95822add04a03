#!/usr/bin/env node
// The installed command: runs the JavaScript that tsc emitted into dist/ (npm run build;
// npm ci and npm pack run it). Plain JavaScript that even an old Node parses, so a Node
// older than the code needs gets one line saying so instead of a stack trace.
import { existsSync } from 'node:fs';

const NEEDED_MAJOR = 24;
const major = Number(process.versions.node.split('.')[0]);
if (!(major >= NEEDED_MAJOR)) {
  process.stderr.write(
    `opam-edge: needs Node.js ${NEEDED_MAJOR} or later, this is Node.js v${process.versions.node} (${process.execPath}); ` +
      `install Node.js ${NEEDED_MAJOR} from https://nodejs.org/en/download (or: nvm install ${NEEDED_MAJOR}) and put it first on PATH\n`,
  );
  process.exit(1);
}
const entry = new URL('../dist/cli.js', import.meta.url);
if (!existsSync(entry)) {
  // A git checkout where neither `npm ci` nor `npm run build` has run yet.
  process.stderr.write(`opam-edge: ${entry.pathname} is missing: run \`npm run build\` in ${new URL('..', import.meta.url).pathname}\n`);
  process.exit(1);
}
const { cli } = await import(entry.href);
cli();
