/**
 * `POST /stage` — the one write: start staging a release in-process.
 * Body: `{"envelope": "<url>"}` or `{"envelope": <the envelope JSON>}` (or a
 * string holding it). Needs `Authorization: Bearer <admin_token>`.
 */
import type { Context } from 'koa';
import { timingSafeEqual, createHash } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import { CACHE_ROUTES, type ErrorAnswer } from '../../../common/cache-api.js';
import { AirlockError } from '../../../manifests/errors.js';
import { LIMITS } from '../../../manifests/types.js';
import { routeTo, type ServeEnv, type ServeRouter } from '../env.js';

/** 401/403 are answered here directly: they are HTTP's own vocabulary, not an airlock failure. */
export function authorized(ctx: Context, env: ServeEnv): boolean {
  const token = env.config.adminToken;
  if (!token) {
    ctx.status = 403;
    ctx.body = { error: { code: 'EUSAGE', message: 'writes are disabled on this cache node: no admin_token in its config' } } satisfies ErrorAnswer;
    return false;
  }
  const m = /^Bearer\s+(.+)$/i.exec(ctx.get('Authorization'));
  const h = (s: string): Buffer => createHash('sha256').update(s).digest();
  if (!m || !timingSafeEqual(h(m[1]!.trim()), h(token))) {
    ctx.status = 401;
    ctx.set('WWW-Authenticate', 'Bearer realm="airlock"');
    ctx.body = {
      error: { code: 'EUSAGE', message: 'this request changes the cache: send Authorization: Bearer <admin_token>' },
    } satisfies ErrorAnswer;
    return false;
  }
  return true;
}

async function readBody(ctx: Context, cap: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let n = 0;
  for await (const c of ctx.req) {
    n += (c as Buffer).length;
    if (n > cap) throw new AirlockError('EMANIFEST', `request body is larger than ${cap} bytes`);
    parts.push(c as Buffer);
  }
  return Buffer.concat(parts);
}

/**
 * The envelope exactly as the caller sent it inside `{"envelope": {...}}`:
 * the store keeps (and /releases/R/manifest serves) the publisher's bytes, so
 * the value's own span of the body is taken, not a re-serialization.
 */
export function envelopeBytes(raw: Buffer, parsed: { envelope?: unknown }): Buffer {
  const text = raw.toString('utf8');
  const m = /^\s*\{\s*"envelope"\s*:\s*/.exec(text);
  const end = text.trimEnd();
  if (m && Object.keys(parsed).length === 1 && end.endsWith('}')) {
    const value = end.slice(m[0].length, -1).trimEnd();
    try {
      if (isDeepStrictEqual(JSON.parse(value), parsed.envelope)) return Buffer.from(value, 'utf8');
    } catch {
      // not the span we thought: fall through
    }
  }
  throw new AirlockError('EUSAGE', 'POST /stage: send {"envelope": <the envelope JSON>} with no other field, or the envelope URL');
}

export function stageRoutes(router: ServeRouter, env: ServeEnv): void {
  router.get(
    'stage-status',
    CACHE_ROUTES.stage,
    routeTo(async (ctx) => {
      ctx.set('Cache-Control', 'no-store');
      ctx.body = env.stage?.status?.() ?? { running: null, last: null };
    }),
  );

  router.post(
    'stage',
    CACHE_ROUTES.stage,
    routeTo(async (ctx) => {
      if (!authorized(ctx, env)) return;
      if (!env.stage) {
        ctx.status = 501;
        ctx.body = {
          error: { code: 'EINTERNAL', message: 'staging from the server is not available in this build; run airlock stage' },
        } satisfies ErrorAnswer;
        return;
      }
      const raw = await readBody(ctx, LIMITS.envelopeBytes + 1024);
      let body: { envelope?: unknown };
      try {
        body = JSON.parse(raw.toString('utf8')) as { envelope?: unknown };
      } catch {
        throw new AirlockError('EUSAGE', 'POST /stage: body must be JSON {"envelope": "<url>" | <envelope>}');
      }
      const e = body?.envelope;
      let arg: { url?: string; inline?: Buffer };
      if (typeof e === 'string' && /^https?:\/\//.test(e)) arg = { url: e };
      else if (typeof e === 'string') arg = { inline: Buffer.from(e, 'utf8') };
      else if (e && typeof e === 'object') arg = { inline: envelopeBytes(raw, body) };
      else throw new AirlockError('EUSAGE', 'POST /stage: field "envelope" is missing (a URL or the envelope JSON)');
      const result = await env.stage(arg);
      env.catalog.invalidate();
      ctx.status = 202;
      ctx.body = { ok: true, ...result };
    }),
  );
}
