/** `arcface dashboard [dir…] [--host H] [--port P]`: serves the runs under the folders given (./src/dashboard). */
import fs from 'node:fs';
import { createDashboardServer, isLoopback } from '../dashboard/server.js';
import { intOption, parseOptions, UsageError } from './args.js';

export async function dashboardCommand(args: string[]): Promise<number> {
  const dirs: string[] = [];
  const rest: string[] = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i].startsWith('--')) rest.push(args[i], ...(i + 1 < args.length ? [args[++i]] : []));
    else dirs.push(args[i]);
  }
  const options = parseOptions(rest, { values: ['host', 'port'] }, 'dashboard');
  const host = (options.get('host') as string | undefined) ?? '127.0.0.1';
  const port = intOption(options, 'port', 0, 0);
  if (dirs.length === 0) dirs.push('work_dirs');
  for (const dir of dirs) if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new UsageError(`dashboard: '${dir}' is not a folder`);
  const server = createDashboardServer(dirs);
  await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(port, host, resolve); });
  const address = server.address();
  const bound = typeof address === 'object' && address ? address.port : port;
  const shown = host.includes(':') ? `[${host}]` : host;
  if (!isLoopback(host)) console.error(`WARNING: the dashboard listens on ${host}, not only on this machine: anyone who reaches it can read these runs' logs and configs`);
  console.log(`dashboard of ${dirs.join(', ')}: http://${shown}:${bound}/`);
  await new Promise<void>((resolve) => {
    // the pages' event streams never end by themselves: close them, then the server
    const stop = () => (server.closeAllConnections(), server.close(() => resolve()));
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  return 0;
}
