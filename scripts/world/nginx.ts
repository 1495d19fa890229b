/** nginx serving the debs, gems and files upstreams, one port each, in the foreground. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { httpStatus, waitUntil } from './net.js';
import { startServer, type Server } from './proc.js';

export interface NginxSite {
  port: number;
  root: string;
  autoindex?: boolean;
}

export function writeNginxConfig(dir: string, sites: NginxSite[]): string {
  mkdirSync(join(dir, 'logs'), { recursive: true });
  mkdirSync(join(dir, 'tmp'), { recursive: true });
  const conf = join(dir, 'nginx.conf');
  writeFileSync(conf, `daemon off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/logs/error.log info;
events { worker_connections 1024; }
http {
  include /etc/nginx/mime.types;
  default_type application/octet-stream;
  access_log ${dir}/logs/access.log;
  sendfile on;
  client_body_temp_path ${dir}/tmp/body; proxy_temp_path ${dir}/tmp/proxy;
  fastcgi_temp_path ${dir}/tmp/fcgi; uwsgi_temp_path ${dir}/tmp/uwsgi; scgi_temp_path ${dir}/tmp/scgi;
${sites.map((s) => `  server { listen 127.0.0.1:${s.port}; root ${s.root};${s.autoindex ? ' autoindex on;' : ''} }`).join('\n')}
}
`);
  return conf;
}

export async function startNginx(dir: string, ports: number[]): Promise<Server> {
  const conf = join(dir, 'nginx.conf');
  // -e: nothing goes to /var/log/nginx, even before the config is read
  const server = startServer('nginx', 'nginx', ['-c', conf, '-p', `${dir}/`, '-e', join(dir, 'logs/error.log')], join(dir, 'logs/stderr.log'));
  try {
    await waitUntil('nginx', async () => (await Promise.all(ports.map((p) => httpStatus(`http://127.0.0.1:${p}/`)))).every((s) => s > 0), server.exited);
  } catch (e) {
    await server.stop('SIGKILL');
    throw e;
  }
  return server;
}
