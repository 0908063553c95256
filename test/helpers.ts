import { fileURLToPath } from 'node:url';
import path from 'node:path';

/** Repository root, from dist/test/helpers.js or test/helpers.ts alike. */
export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', path.basename(path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')) === 'dist' ? '..' : '.');

/** Absolute path of a committed fixture file under test/fixtures/. */
export function fixturePath(name: string): string {
  return path.join(repoRoot, 'test', 'fixtures', name);
}
