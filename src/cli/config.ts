/** `arcface config <file.ts> [--set key=value …]`: the resolved, validated config as JSON. */
import { loadConfig } from '../train/load-config.js';
import { ConfigError } from '../train/config.js';
import { usage } from './help.js';

/** Splits `--set key=value` (and `--set=key=value`) pairs from the other arguments. */
export function takeOverrides(args: string[]): { overrides: string[]; rest: string[] } {
  const overrides: string[] = [], rest: string[] = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--set') {
      if (args[i + 1] === undefined) throw new ConfigError('--set needs key=value');
      overrides.push(args[++i]);
    } else if (args[i].startsWith('--set=')) overrides.push(args[i].slice(6));
    else rest.push(args[i]);
  }
  return { overrides, rest };
}

export async function configCommand(args: string[]): Promise<number> {
  const { overrides, rest } = takeOverrides(args);
  if (rest.length !== 1) throw new ConfigError(usage('config'));
  console.log(JSON.stringify(await loadConfig(rest[0], overrides), null, 2));
  return 0;
}
