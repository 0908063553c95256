/**
 * PyTorch's own launcher starting arcface-ts workers: `torchrun --nproc_per_node 2 --no_python node
 * bin/arcface.js train cfg`. torchrun's agent hosts the store on MASTER_PORT; the workers connect as
 * clients under /worker/attempt_<restart count>. A two-process run finishes; with --max_restarts 2 a
 * worker killed mid-run (SIGKILL) is restarted by torchrun and the run resumes from its checkpoints.
 * Skipped, saying so, without Debian's python3-torch.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { generateIdentities } from '../src/data/index.js';
import { pythonHasTorch, repoRoot, writeRunConfig } from './helpers.js';

const skip = pythonHasTorch ? false : 'skipped: python3-torch is missing (torchrun comes with it)';
if (skip) console.log(`# ${skip}`);

// Debian's torch 1.13 torchrun on Python 3.11: Std.from_str gives None for "0" (enum.Flag iteration
// leaves out 0), so its --redirects/--tee defaults fail. Patched here, in this process only.
const torchrun = `
import sys
from torch.distributed.elastic.multiprocessing.api import Std
def from_str(cls, vm):
    if ':' in vm:
        return {int(i): Std(int(v)) for i, v in (m.split(':') for m in vm.split(','))}
    return Std(int(vm))
Std.from_str = classmethod(from_str)
from torch.distributed.run import main
sys.argv[0] = 'torchrun'
main()
`;

let dir: string;
let data: string;
before(() => {
  if (skip) return;
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'arcface-torchrun-'));
  data = path.join(dir, 'data');
  generateIdentities({ out: data, seed: 3, identities: 8, imagesPerIdentity: 8, heldOutIdentities: 20, pairs: 20, quality: 90 });
});
after(() => dir && fs.rmSync(dir, { recursive: true, force: true }));

const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const server = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });

const configFile = (name: string, settings: Record<string, unknown>) =>
  writeRunConfig(dir, name, { embeddingSize: 32, rec: data, numClasses: 8, numImage: 32, valTargets: [], ...settings });

interface Torchrun {
  child: ChildProcess;
  out: () => string;
  /** its exit code; past `ms` it and its workers are killed and this rejects with their output */
  exit: (ms: number) => Promise<number | null>;
}

async function startTorchrun(args: string[], config: string): Promise<Torchrun> {
  const port = await freePort();
  const child = spawn(
    '/usr/bin/python3',
    ['-c', torchrun, '--nproc_per_node', '2', '--master_port', String(port), ...args, '--no_python', process.execPath, path.join(repoRoot, 'bin', 'arcface.js'), 'train', config],
    // ARCFACE_DIST_TIMEOUT_MS: a rank whose peer was killed fails in seconds, not Gloo's 5 minutes
    { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'], detached: true, env: { ...process.env, ARCFACE_DIST_TIMEOUT_MS: '30000' } },
  );
  let text = '';
  child.stdout!.on('data', (d) => (text += d));
  child.stderr!.on('data', (d) => (text += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const exit = async (ms: number) => {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        try {
          process.kill(-child.pid!, 'SIGKILL');  // torchrun and its workers (a group of their own)
        } catch {
          // already gone
        }
        reject(new Error(`torchrun still running after ${ms} ms:\n${text}`));
      }, ms);
    });
    try {
      return await Promise.race([exited, late]);
    } finally {
      clearTimeout(timer);
    }
  };
  return { child, out: () => text, exit };
}

/** The worker of `rank` among torchrun's children (its environment says which). */
function workerPid(agent: number, rank: number): number | undefined {
  let children: string[];
  try {
    children = fs.readFileSync(`/proc/${agent}/task/${agent}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
  } catch {
    return undefined;
  }
  for (const pid of children) {
    try {
      const env = fs.readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
      if (env.includes(`RANK=${rank}`) && env.includes('TORCHELASTIC_USE_AGENT_STORE=True')) return Number(pid);
    } catch {
      // gone meanwhile
    }
  }
  return undefined;
}

test('torchrun --nproc_per_node 2 --no_python node bin/arcface.js train: the run finishes', { skip, timeout: 240_000 }, async () => {
  const { file, output } = configFile('plain', {});
  const run = await startTorchrun([], file);
  const code = await run.exit(200_000);
  assert.equal(code, 0, run.out());
  assert.doesNotMatch(run.out(), /Address already in use/);
  const log = fs.readFileSync(path.join(output, 'training.log'), 'utf8');
  assert.match(log, /: worldSize +2/);
  assert.match(log, /Global Step: 2\b/);
  assert.ok(fs.existsSync(path.join(output, 'model.pt')));
});

test('torchrun --max_restarts 2: a worker killed mid-run is restarted and the run resumes and finishes', { skip, timeout: 320_000 }, async () => {
  // 4 steps, the checkpoint set of step 2 (killed once its manifest is there, during the steps after
  // it, well before the next set at step 4); resume: true resumes where there is a set
  const { file, output } = configFile('restart', { numImage: 64, checkpointSteps: 2, resume: true });
  const run = await startTorchrun(['--max_restarts', '2', '--monitor_interval', '1'], file);
  const checkpoint = path.join(output, 'checkpoints', 'step_2', 'manifest.json');
  const deadline = Date.now() + 200_000;
  while (!fs.existsSync(checkpoint) && Date.now() < deadline && run.child.exitCode === null) await new Promise((r) => setTimeout(r, 20));
  assert.ok(fs.existsSync(checkpoint), `no checkpoint before the kill:\n${run.out()}`);
  const victim = workerPid(run.child.pid!, 1);
  assert.ok(victim, 'rank 1 worker not found among torchrun children');
  process.kill(victim, 'SIGKILL');
  const code = await run.exit(240_000);
  const out = run.out();
  assert.equal(code, 0, out);
  const log = fs.readFileSync(path.join(output, 'training.log'), 'utf8');
  assert.match(log, /resume: no checkpoint in .* yet; torchrun attempt 0 starts from step 0/);
  const resumed = log.match(/resumed from step (\d+)/);
  assert.equal(resumed?.[1], '2', `no resume from step 2 in training.log:\n${log}`);
  assert.ok(fs.existsSync(path.join(output, 'model.pt')));
  assert.match(log, /Global Step: 4\b/);
});

test('a worker that fails writes TORCHELASTIC_ERROR_FILE: torchrun names its error as the root cause', { skip, timeout: 120_000 }, async () => {
  const missing = path.join(dir, 'no-such-pack');
  const { file } = configFile('failing', { rec: missing });
  const run = await startTorchrun([], file);
  const code = await run.exit(100_000);
  const out = run.out();
  assert.notEqual(code, 0, out);
  // the agent's ChildFailedError summary: our message and stack from the file, not "<N/A>"
  const rootCause = out.slice(out.indexOf('Root Cause'));
  assert.match(rootCause, /error_file: \/\S+/, out);
  assert.match(rootCause, new RegExp(`traceback : \\w*Error: .*${missing.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}`), out);
  assert.match(rootCause, /\n\s+at /, 'the stack follows the message');
});
