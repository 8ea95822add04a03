#!/usr/bin/env node
// The installed command. Node 24 runs the TypeScript sources directly (type stripping).
const { cli } = await import('../src/cli.ts');
cli();
