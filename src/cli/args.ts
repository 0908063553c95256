/** `--name value` / `--flag` command-line options, checked against what a command accepts. */
export function parseOptions(args: string[], accepted: { values?: string[]; flags?: string[] }, command: string): Map<string, string | true> {
  const values = new Set(accepted.values ?? []);
  const flags = new Set(accepted.flags ?? []);
  const out = new Map<string, string | true>();
  for (let i = 0; i < args.length; i++) {
    const name = args[i].replace(/^--/, '');
    if (!args[i].startsWith('--') || (!values.has(name) && !flags.has(name))) {
      const known = [...[...values].map((v) => `--${v} <value>`), ...[...flags].map((f) => `--${f}`)].join(', ');
      throw new UsageError(`${command}: unknown option '${args[i]}' (options: ${known})`);
    }
    if (flags.has(name)) {
      out.set(name, true);
    } else {
      if (i + 1 >= args.length) throw new UsageError(`${command}: --${name} needs a value`);
      out.set(name, args[++i]);
    }
  }
  return out;
}

/** An integer option ≥ min, or the fallback when absent. */
export function intOption(options: Map<string, string | true>, name: string, fallback: number, min = 1): number {
  const raw = options.get(name);
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min) throw new UsageError(`--${name} needs an integer ≥ ${min}, got '${raw}'`);
  return value;
}

/** A mistake in how the command was called (exit code 2). */
export class UsageError extends Error {
  override name = 'UsageError';
}

/**
 * Values of an option that may repeat or take several values: `--bin a.bin --bin b.bin` or
 * `--images a.jpg b.jpg`. Returns them and the other arguments.
 */
export function listOption(args: string[], name: string): [string[], string[]] {
  const values: string[] = [], rest: string[] = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] !== `--${name}`) {
      rest.push(args[i]);
      continue;
    }
    const before = values.length;
    while (i + 1 < args.length && !args[i + 1].startsWith('--')) values.push(args[++i]);
    if (values.length === before) throw new UsageError(`--${name} needs a value`);
  }
  return [values, rest];
}
