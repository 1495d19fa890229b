/**
 * squid as the site's forward proxy. Its hosts_file is the only place the
 * fake upstream names resolve, so a request that reached an upstream by name
 * went through squid, and its access log proves it.
 */
import { chownSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { canConnect, waitUntil } from './net.js';
import { startServer, type Server } from './proc.js';
import type { SquidLogEntry } from './types.js';

export function writeSquidConfig(dir: string, port: number, hosts: string[]): string {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'hosts'), `127.0.0.1 localhost\n127.0.0.1 ${hosts.join(' ')}\n`);
  const conf = join(dir, 'squid.conf');
  writeFileSync(conf, `http_port 127.0.0.1:${port}
acl lo src 127.0.0.0/8 ::1
http_access allow lo
http_access deny all
cache deny all
cache_mem 8 MB
pid_filename ${dir}/squid.pid
access_log stdio:${dir}/access.log
cache_log ${dir}/cache.log
cache_store_log none
buffered_logs off
coredump_dir ${dir}
cache_effective_user proxy
pinger_enable off
shutdown_lifetime 0 seconds
dns_nameservers 127.0.0.1
hosts_file ${dir}/hosts
`);
  // squid drops to user proxy: its folder must be proxy's
  const uid = Number(execFileSync('id', ['-u', 'proxy']).toString().trim());
  const gid = Number(execFileSync('id', ['-g', 'proxy']).toString().trim());
  chownSync(dir, uid, gid);
  for (const f of readdirSync(dir)) chownSync(join(dir, f), uid, gid);
  return conf;
}

export async function startSquid(dir: string, port: number): Promise<Server> {
  // -n: a service name of our own, so parallel squids never share IPC names
  // SIGKILL to stop: SIGTERM costs ~1.5 s even with shutdown_lifetime 0, and with
  // -N and unbuffered stdio logs (buffered_logs off) there is nothing to lose
  const server = startServer('squid', 'squid', ['-N', '-d1', '-n', `aw${port}`, '-f', join(dir, 'squid.conf')], join(dir, 'stderr.log'), { stopSignal: 'SIGKILL' });
  try {
    await waitUntil('squid', () => canConnect(port), server.exited);
  } catch (e) {
    await server.stop('SIGKILL');
    throw e;
  }
  return server;
}

/** squid's native format: time elapsed client ACTION/STATUS bytes METHOD URL ident HIER/peer type */
export function parseSquidLog(path: string): SquidLogEntry[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8').split('\n').filter((l) => l.trim()).flatMap((line) => {
    const f = line.trim().split(/\s+/);
    if (f.length < 7) return [];
    const [action, status] = f[3].split('/');
    return [{ action, status: Number(status), bytes: Number(f[4]), method: f[5], url: f[6] }];
  });
}
