/**
 * Benchmark helpers: run variants interleaved (A B A B …) so machine noise hits both alike,
 * and report medians, spread and ratios as JSON lines; start a script's ranks on 127.0.0.1.
 */
import { spawn } from 'node:child_process';
import { workerThreadEnv } from '../src/distributed/launcher.js';

export interface Timing {
  medianMs: number;
  minMs: number;
  /** (p90 − p10) / median */
  spread: number;
  samples: number;
}

export function summarize(ms: number[]): Timing {
  const s = [...ms].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * (s.length - 1)))];
  const median = q(0.5);
  return { medianMs: round(median), minMs: round(s[0]), spread: round((q(0.9) - q(0.1)) / median), samples: s.length };
}

export const round = (x: number, digits = 4): number => Number(x.toPrecision(digits));

export function timeMs(fn: () => void): number {
  const t0 = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

/** Runs each variant `reps` times, interleaved, after `warmup` untimed rounds. */
export function interleave(variants: Record<string, () => void>, reps: number, warmup = 2): Record<string, Timing> {
  const names = Object.keys(variants);
  const times: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
  for (let r = 0; r < warmup + reps; r++) {
    for (const n of names) {
      const ms = timeMs(variants[n]);
      if (r >= warmup) times[n].push(ms);
    }
  }
  return Object.fromEntries(names.map((n) => [n, summarize(times[n])]));
}

export function emit(record: Record<string, unknown>): void {
  console.log(JSON.stringify(record));
}

/** The value after `--name` on the command line, or `fallback`. */
export function argValue(name: string, fallback: string): string {
  const at = process.argv.indexOf(`--${name}`);
  return at >= 0 && process.argv[at + 1] !== undefined ? process.argv[at + 1] : fallback;
}

export const argNumber = (name: string, fallback: number): number => Number(argValue(name, String(fallback)));

/**
 * Runs `script` (this process's arguments passed on) as `world` ranks on 127.0.0.1 with the
 * torchrun variables and the cores shared out as `arcface launch` does; resolves when every rank exited 0.
 */
export async function runRanks(script: string, world: number): Promise<void> {
  const port = String(29400 + (process.pid % 500));
  await Promise.all(
    Array.from({ length: world }, (_, rank) =>
      new Promise<void>((resolve, reject) => {
        const child = spawn(process.execPath, [script, ...process.argv.slice(2)], {
          stdio: ['ignore', 'inherit', 'inherit'],
          env: { ...process.env, ...workerThreadEnv(world), MASTER_ADDR: '127.0.0.1', MASTER_PORT: port, RANK: String(rank), WORLD_SIZE: String(world) },
        });
        child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`rank ${rank} exited with ${code}`))));
      }),
    ),
  );
}
