/**
 * Which proxy carries a request: `--proxy` first, else the environment's
 * `http_proxy` / `https_proxy` (either case), and `no_proxy` (either case)
 * always decides which hosts go direct, as curl reads it: comma- or
 * space-separated entries, `*` for all, `host` or `.host` matching the host
 * and its subdomains, `host:port` matching only that port.
 *
 * Pure (no sockets), so the cache node, the node client and `stage --plan`
 * all answer "how would we reach this URL" the same way.
 */

export interface ProxySettings {
  /** explicit `--proxy` / config `proxy`: used for http and https alike */
  proxy?: string | null;
  env?: NodeJS.ProcessEnv;
}

function envValue(env: NodeJS.ProcessEnv, name: string): string | undefined {
  const v = env[name.toLowerCase()] ?? env[name.toUpperCase()];
  return v && v.trim() !== '' ? v.trim() : undefined;
}

function defaultPort(protocol: string): string {
  return protocol === 'https:' ? '443' : '80';
}

/** True when `no_proxy` says this URL goes direct. */
export function bypassesProxy(url: URL, noProxy: string | undefined): boolean {
  if (!noProxy) return false;
  const host = url.hostname.replace(/^\[|\]$/g, '').toLowerCase();
  const port = url.port || defaultPort(url.protocol);
  for (const raw of noProxy.split(/[\s,]+/)) {
    const entry = raw.trim().toLowerCase();
    if (!entry) continue;
    if (entry === '*') return true;
    let name = entry;
    let entryPort: string | null = null;
    const m = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(entry);
    if (m) {
      name = m[1]!;
      entryPort = m[2]!;
    }
    name = name.replace(/^\[|\]$/g, '').replace(/^\*?\./, '');
    if (entryPort !== null && entryPort !== port) continue;
    if (host === name || host.endsWith(`.${name}`)) return true;
  }
  return false;
}

/** The proxy URL for `url`, or null for a direct connection. */
export function proxyFor(url: string | URL, settings: ProxySettings = {}): URL | null {
  const u = typeof url === 'string' ? new URL(url) : url;
  const env = settings.env ?? process.env;
  if (bypassesProxy(u, envValue(env, 'no_proxy'))) return null;
  const chosen = settings.proxy ?? envValue(env, u.protocol === 'https:' ? 'https_proxy' : 'http_proxy');
  if (!chosen) return null;
  // `proxy.example:3128` without a scheme is common in the wild: read it as http.
  const p = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(chosen) ? chosen : `http://${chosen}`);
  if (p.protocol !== 'http:' && p.protocol !== 'https:') return null;
  return p;
}

/** `host:port` of a URL with the default port filled in (for the firewall table). */
export function hostPort(url: string | URL): string {
  const u = typeof url === 'string' ? new URL(url) : url;
  return `${u.hostname}:${u.port || defaultPort(u.protocol)}`;
}
