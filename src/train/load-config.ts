/**
 * Loads a TypeScript (or JavaScript) config file: `export default defineConfig({...})`.
 * A .ts file is transpiled (types stripped) to a temporary module beside it — so its relative and
 * package imports resolve as written — imported, and removed, as Vite does with vite.config.ts.
 */
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import ts from 'typescript';
import { applyOverrides, ConfigError, resolveConfig, type TrainConfig } from './config.js';

export async function loadConfig(file: string, overrides: string[] = []): Promise<TrainConfig> {
  const absolute = path.resolve(file);
  if (!fs.existsSync(absolute)) throw new ConfigError(`${file}: config file not found`);
  let module: { default?: unknown };
  if (absolute.endsWith('.ts') || absolute.endsWith('.mts')) {
    const { outputText, diagnostics } = ts.transpileModule(fs.readFileSync(absolute, 'utf8'), {
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
      fileName: absolute,
      reportDiagnostics: true,
    });
    if (diagnostics?.length) {
      const d = diagnostics[0];
      throw new ConfigError(`${file}: ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`);
    }
    const temporary = path.join(path.dirname(absolute), `.${path.basename(absolute)}.${process.pid}.${Date.now()}.mjs`);
    fs.writeFileSync(temporary, outputText);
    try {
      module = await import(pathToFileURL(temporary).href);
    } catch (error) {
      throw new ConfigError(`${file}: ${(error as Error).message}`);
    } finally {
      fs.rmSync(temporary, { force: true });
    }
  } else {
    module = await import(pathToFileURL(absolute).href);
  }
  if (module.default === undefined) throw new ConfigError(`${file}: no default export (write \`export default defineConfig({ ... })\`)`);
  const config = resolveConfig(applyOverrides(module.default as Record<string, unknown>, overrides), file);
  config.output ??= path.join('work_dirs', path.basename(absolute).replace(/\.[mc]?[jt]s$/, ''));
  return config;
}
