/**
 * Proxy mode: a node whose `http_proxy` points at the cache sends requests in
 * absolute form (`GET http://upstream/path`). When that URL is an artifact URL
 * of a staged release the answer comes from the store — upstream need not be
 * reachable at all. Anything else is refused with 403, unless pass-through is
 * switched on (`passthrough: true`), which forwards it upstream as is.
 */
import type { Context } from 'koa';
import type { IncomingMessage } from 'node:http';
import { AirlockError } from '../../../manifests/errors.js';
import { normalizeUrl } from '../catalog.js';
import { contentTypeOf } from '../content-type.js';
import type { Passthrough, ServeEnv } from '../env.js';
import { sendBlob } from '../send-blob.js';

/** True for `GET http://host/…` (absolute form); origin-form paths start with `/`. */
export const isAbsoluteForm = (rawUrl: string): boolean => /^[a-z][a-z0-9+.-]*:\/\//i.test(rawUrl);

export async function proxyRequest(ctx: Context, env: ServeEnv): Promise<void> {
  (ctx.state as { route?: string }).route = 'proxy';
  const raw = ctx.req.url ?? '';
  const url = normalizeUrl(raw);
  if (url && (ctx.method === 'GET' || ctx.method === 'HEAD')) {
    const a = (await env.catalog.get()).urls.get(url);
    if (a) {
      await sendBlob(ctx, env, { sha256: a.sha256, size: a.size, contentType: contentTypeOf(a), what: url });
      return;
    }
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
