#!/usr/bin/env node
// The `arcface` command. The CLI itself is TypeScript, compiled to dist/ by `npm run setup`.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const main = new URL('../dist/src/cli/main.js', import.meta.url);
if (!existsSync(fileURLToPath(main))) {
  console.error('arcface: not built yet — run `npm run setup` in ' + fileURLToPath(new URL('..', import.meta.url)));
  process.exit(1);
}
// Node exits with 13 when the event loop empties while a top-level await is pending: a command
// whose promise can never settle. That is a bug of ours; say so and exit 1 rather than end silently.
let finished = false;
process.on('beforeExit', () => {
  if (finished) return;
  console.error('arcface: internal error: the command stopped without finishing (an unsettled promise)');
  process.exit(1);
});
const { run } = await import(main.href);
process.exitCode = await run(process.argv.slice(2));
finished = true;
