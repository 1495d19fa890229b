/**
 * Proxy mode: a node whose `http_proxy` points at the cache sends requests in
 * absolute form (`GET http://upstream/path`). When that URL is an artifact URL
 * of a staged release the answer comes from the store — upstream need not be
 * reachable at all. Anything else is refused with 403, unless pass-through is
 * switched on (`passthrough: true`), which forwards it upstream as is.
 */
import type { Context } from 'koa';
import { lookup } from 'node:dns/promises';
import type { IncomingMessage } from 'node:http';
import { hostname, networkInterfaces } from 'node:os';
import { AirlockError } from '../../../manifests/errors.js';
import { normalizeUrl } from '../catalog.js';
import { contentTypeOf } from '../content-type.js';
import type { Passthrough, ServeEnv } from '../env.js';
import { sendBlob, type ProxiedState } from '../send-blob.js';

/** True for `GET http://host/…` (absolute form); origin-form paths start with `/`. */
export const isAbsoluteForm = (rawUrl: string): boolean => /^[a-z][a-z0-9+.-]*:\/\//i.test(rawUrl);

/** Addresses of this machine (every interface), normalized: `::ffff:1.2.3.4` is `1.2.3.4`. */
function localAddresses(): Set<string> {
  const out = new Set<string>(['127.0.0.1', '::1']);
  for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) out.add(a.address);
  return out;
}

const plain = (address: string): string => address.replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/, '$1').replace(/^\[|\]$/g, '').toLowerCase();

/** host name → does it resolve to this machine; kept a minute (a node's apt asks many URLs in a row) */
const resolvedHere = new Map<string, { at: number; here: boolean }>();

async function namesThisMachine(host: string, local: Set<string>): Promise<boolean> {
  if (local.has(host)) return true;
  const me = hostname().toLowerCase();
  if (host === 'localhost' || host === me || host.split('.')[0] === me || me.split('.')[0] === host) return true;
  const known = resolvedHere.get(host);
  if (known && Date.now() - known.at < 60_000) return known.here;
  let here = false;
  let timer: NodeJS.Timeout | undefined;
  try {
    // an air-gapped resolver may take long to fail: a name it cannot answer within 2 s is not ours
    const addrs = await Promise.race([
      lookup(host, { all: true }),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error('lookup timed out')), 2000);
      }),
    ]);
    here = addrs.some((a) => local.has(plain(a.address)));
  } catch {
    here = false;
  } finally {
    clearTimeout(timer);
  }
  if (resolvedHere.size > 1000) resolvedHere.clear();
  resolvedHere.set(host, { at: Date.now(), here });
  return here;
}

/**
 * The origin-form path when an absolute-form request names this server
 * itself (`GET http://cache:7070/apt/…` from a node whose http_proxy is the
 * cache): same port as the connection came in on, and a host that is one of
 * this machine's addresses or names (or resolves to one). Null otherwise.
 */
export async function ownPath(ctx: Context): Promise<string | null> {
  let url: URL;
  try {
    url = new URL(ctx.req.url ?? '');
  } catch {
    return null;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return null;
  const port = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
  if (port !== ctx.req.socket.localPort) return null;
  const local = localAddresses();
  if (ctx.req.socket.localAddress) local.add(plain(ctx.req.socket.localAddress));
  if (!(await namesThisMachine(plain(url.hostname), local))) return null;
  return `${url.pathname}${url.search}`;
}

/**
 * An absolute-form request: a staged artifact URL is answered from the
 * store; a URL naming this server itself goes on to the routes (`next`) as
 * an origin-form request; anything else is passed through or refused.
 */
export async function proxyRequest(ctx: Context, env: ServeEnv, next: () => Promise<unknown>): Promise<void> {
  (ctx.state as { route?: string }).route = 'proxy';
  // its blobs are sent by us, never redirected (send-blob.ts): the client would ask us, its proxy, for the bucket's URL next
  (ctx.state as ProxiedState).proxied = true;
  const raw = ctx.req.url ?? '';
  const url = normalizeUrl(raw);
  if (url && (ctx.method === 'GET' || ctx.method === 'HEAD')) {
    const a = (await env.catalog.get()).urls.get(url);
    if (a) {
      await sendBlob(ctx, env, { sha256: a.sha256, size: a.size, contentType: contentTypeOf(a), what: url });
      return;
    }
  }
  // the cache's own URLs asked through it as a proxy (a node whose http_proxy is the cache): plain requests
  const own = await ownPath(ctx);
  if (own !== null) {
    (ctx.state as { route?: string }).route = undefined;
    ctx.url = own;
    await next();
    return;
  }
  if (env.passthrough && url) {
    await env.passthrough(ctx, url);
    return;
  }
  env.metrics.miss('proxy');
  ctx.status = 403;
  ctx.type = 'text/plain; charset=utf-8';
  ctx.body = `airlock: ${ctx.method} ${raw.slice(0, 300)} refused: not an artifact URL of a staged release (proxy pass-through is off)\n`;
}

const FORWARD = ['accept', 'accept-encoding', 'range', 'if-range', 'if-none-match', 'if-modified-since', 'user-agent'];
const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer']);

/** Pass-through with got: one request, no retries, body streamed back as it comes. */
export function gotPassthrough(): Passthrough {
  return async (ctx, url) => {
    const { got } = await import('got');
    const headers: Record<string, string> = {};
    for (const h of FORWARD) {
      const v = ctx.get(h);
      if (v) headers[h] = v;
    }
    const up = got.stream(url, {
      method: ctx.method === 'HEAD' ? 'HEAD' : 'GET',
      headers,
      throwHttpErrors: false,
      followRedirect: false,
      decompress: false,
      retry: { limit: 0 },
      timeout: { connect: 10_000, response: 30_000 },
    });
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      up.once('response', resolve);
      up.once('error', (e: Error) =>
        reject(new AirlockError('EUPSTREAM', `pass-through to ${url} failed: ${e.message}`, { url }, { cause: e })),
      );
    });
    ctx.status = res.statusCode ?? 502;
    for (const [k, v] of Object.entries(res.headers)) {
      if (v !== undefined && !HOP.has(k)) ctx.set(k, v as string | string[]);
    }
    ctx.body = up;
  };
}
