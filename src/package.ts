/**
 * Where the installed package is, and its version: the one place that knows this file sits at
 * dist/src/package.js under the package root (bin/, configs/, package.json beside dist/).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** Absolute path of the package root (the folder holding package.json). */
export const packageRoot = fileURLToPath(new URL('../../', import.meta.url));

/** Absolute path of a file of the package, from the root: `packagePath('bin', 'arcface.js')`. */
export const packagePath = (...parts: string[]): string => path.join(packageRoot, ...parts);

/** The package.json version ("0.1.0"). */
export function version(): string {
  return JSON.parse(readFileSync(packagePath('package.json'), 'utf8')).version;
}
