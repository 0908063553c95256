// Runs every compiled test file (dist/test/**/*.test.js) with node's test runner.
import { readdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import path from 'node:path';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const dir = path.join(root, 'dist', 'test');
const only = process.argv.slice(2);
const files = readdirSync(dir, { recursive: true })
  .map(String)
  .filter((f) => f.endsWith('.test.js'))
  .filter((f) => only.length === 0 || only.some((o) => f.includes(o)))
  .sort()
  .map((f) => path.join(dir, f));
// One file at a time: the tests use both cores themselves, and timing-sensitive ones stay stable.
const result = spawnSync(process.execPath, ['--test', '--test-concurrency=1', '--expose-gc', ...files], {
  stdio: 'inherit',
  cwd: root,
});
// A runner stopped by a signal prints no summary: say so, or CI ends with a bare exit 1.
if (result.signal) console.error(`run-tests: the test runner was stopped by ${result.signal}`);
process.exit(result.status ?? 1);
