#!/usr/bin/env node
// The `arcface` command. The CLI itself is TypeScript, compiled to dist/ by `npm run setup`.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const main = new URL('../dist/src/cli/main.js', import.meta.url);
if (!existsSync(fileURLToPath(main))) {
  console.error('arcface: not built yet — run `npm run setup` in ' + fileURLToPath(new URL('..', import.meta.url)));
  process.exit(1);
}
const { run } = await import(main.href);
process.exitCode = await run(process.argv.slice(2));
