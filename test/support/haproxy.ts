/**
 * A REAL haproxy in front of N local backends (`airlock serve` replicas), on a
 * free port of 127.0.0.1, run in the foreground as our child and stopped in
 * teardown. Its config is the shipped example (docs/examples/haproxy-airlock.cfg):
 * every line of its `defaults`, `frontend` and `backend` sections as they are,
 * except the frontend's `bind` (a free port on 127.0.0.1) and the example's
 * `server` lines (one per backend port); the `global` section is the test's
 * own (no chroot, user or daemon; the stats socket and the log in a temp folder).
 *
 * Without haproxy a suite skips on a laptop and fails in CI (CI=true), like
 * test/support/ceph.ts: scripts/setup.sh installs it.
 */
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePorts, httpStatus, waitUntil } from '../../scripts/world/net.js';
import { startServer, type Server } from '../../scripts/world/proc.js';
import { REPO } from './cli.js';

export const HAPROXY_EXAMPLE = join(REPO, 'docs', 'examples', 'haproxy-airlock.cfg');

/** Where Debian puts it (/usr/sbin is not on every PATH), or null. */
export function haproxyBinary(): string | null {
  for (const d of ['/usr/sbin', '/usr/bin', '/sbin', '/usr/local/sbin']) if (existsSync(join(d, 'haproxy'))) return join(d, 'haproxy');
  return null;
}

/** Skip a haproxy suite only on a machine without it outside CI; in CI a missing haproxy is a failure. */
export const skipWithoutHaproxy = haproxyBinary() === null && process.env.CI !== 'true';

/** One backend server as haproxy's stats see it. */
export interface ServerStat {
  /** replica1, replica2, … in backend order */
  name: string;
  /** UP, DOWN, "UP 1/2" (going down), "DOWN 1/2" (coming up), MAINT… */
  status: string;
  /** sessions now */
  current: number;
  /** sessions since start */
  total: number;
  /** the last health check's result (L7OK, L4CON…) */
  check: string;
}

export interface Haproxy {
  /** the front end, e.g. http://127.0.0.1:PORT */
  url: string;
  port: number;
  /** the config haproxy runs */
  config: string;
  configPath: string;
  /** its log: one httplog line per request (`airlock airlock_replicas/replicaN …`) */
  logPath: string;
  /** the backend servers, from the stats socket */
  servers(): Promise<ServerStat[]>;
  stop(): Promise<void>;
}

/** The example's sections from `defaults` on (the `global` section is the site's business). */
export function exampleSections(example = readFileSync(HAPROXY_EXAMPLE, 'utf8')): string {
  const at = example.search(/^defaults\b/m);
  if (at < 0) throw new Error(`${HAPROXY_EXAMPLE}: no defaults section`);
  return example.slice(at);
}

/**
 * The config for `backends` (ports on 127.0.0.1) behind a front end on `port`:
 * the example's sections with its bind and server lines replaced, after a
 * global section that keeps everything in `dir`.
 */
export function haproxyConfig(opts: { port: number; backends: readonly number[]; dir: string; example?: string }): string {
  const sections = exampleSections(opts.example);
  const isServer = (l: string): boolean => /^\s+server\s/.test(l);
  const lines = sections.split('\n');
  const first = lines.findIndex(isServer);
  if (first < 0 || !/^\s+bind\s/m.test(sections)) throw new Error(`${HAPROXY_EXAMPLE}: expected a bind line and server lines`);
  const indent = /^(\s+)/.exec(lines[first]!)![1]!;
  // the example's server lines become ours, where they stood
  const kept = lines.filter((l) => !isServer(l));
  kept.splice(first, 0, ...opts.backends.map((p, i) => `${indent}server replica${i + 1} 127.0.0.1:${p}`));
  const body = kept.join('\n').replace(/^(\s+)bind\s.*$/m, `$1bind 127.0.0.1:${opts.port}`);
  const global = [
    'global',
    '    log stdout format raw local0',
    `    stats socket ${join(opts.dir, 'admin.sock')} mode 600 level admin`,
    `    pidfile ${join(opts.dir, 'haproxy.pid')}`,
    '',
    '',
  ].join('\n');
  return global + body;
}

/** One command on haproxy's stats socket, its whole answer. */
function ask(socket: string, command: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(socket);
    let out = '';
    s.setEncoding('utf8');
    s.setTimeout(5000, () => s.destroy(new Error(`haproxy stats socket ${socket}: no answer to "${command}"`)));
    s.on('connect', () => s.write(`${command}\n`));
    s.on('data', (d: string) => (out += d));
    s.on('end', () => resolve(out));
    s.on('error', reject);
  });
}

function parseStat(csv: string): ServerStat[] {
  const [head, ...rows] = csv.trim().split('\n');
  const cols = head!.replace(/^# /, '').split(',');
  const col = (row: string[], name: string): string => row[cols.indexOf(name)] ?? '';
  return rows
    .map((r) => r.split(','))
    .filter((r) => col(r, 'pxname') === 'airlock_replicas' && !['BACKEND', 'FRONTEND'].includes(col(r, 'svname')))
    .map((r) => ({
      name: col(r, 'svname'),
      status: col(r, 'status'),
      current: Number(col(r, 'scur')),
      total: Number(col(r, 'stot')),
      check: col(r, 'check_status'),
    }));
}

/** haproxy over `backends` (ports on 127.0.0.1 already listening); ready when its front end answers /healthz with 200. */
export async function startHaproxy(backends: readonly number[]): Promise<Haproxy> {
  const bin = haproxyBinary();
  if (!bin) throw new Error('haproxy is not installed: run scripts/setup.sh as root (apt-get install haproxy)');
  const dir = mkdtempSync(join(tmpdir(), 'airlock-haproxy-'));
  let last = '';
  // a port taken between pick and bind: once more on another
  for (let attempt = 1; attempt <= 2; attempt++) {
    const [port] = await freePorts(1);
    const config = haproxyConfig({ port: port!, backends, dir });
    const configPath = join(dir, 'haproxy.cfg');
    const logPath = join(dir, `haproxy-${attempt}.log`);
    writeFileSync(configPath, config);
    // -db: foreground, our child; SIGUSR1 is its graceful stop, SIGTERM its hard one
    const server: Server = startServer('haproxy', bin, ['-db', '-f', configPath], logPath);
    const url = `http://127.0.0.1:${port}`;
    try {
      await waitUntil('haproxy', async () => (await httpStatus(`${url}/healthz`)) === 200, server.exited, 30_000);
    } catch (e) {
      last = (e as Error).message;
      await server.stop('SIGKILL');
      continue;
    }
    const socket = join(dir, 'admin.sock');
    return {
      url,
      port: port!,
      config,
      configPath,
      logPath,
      servers: async () => parseStat(await ask(socket, 'show stat')),
      async stop() {
        await server.stop('SIGTERM');
        await rm(dir, { recursive: true, force: true });
      },
    };
  }
  await rm(dir, { recursive: true, force: true });
  throw new Error(`haproxy did not start: ${last}`);
}
