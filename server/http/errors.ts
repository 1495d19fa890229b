/**
 * Failures become HTTP answers here, and only here: the status comes from
 * AirlockError.httpStatus (manifests/errors.ts); the body is one line of
 * JSON — OCI's `{"errors":[…]}` under /v2/, `{"error":{code,message}}`
 * elsewhere. Unknown failures are logged with their stack and answered as a
 * bare 500: no internals go to clients.
 */
import type { Context } from 'koa';
import type { Logger } from 'pino';
import type { ErrorAnswer, OciErrorAnswer } from '../../common/cache-api.js';
import { AirlockError, toAirlockError } from '../../manifests/errors.js';

function ociCode(err: AirlockError, path: string): string {
  const given = err.details.oci;
  if (typeof given === 'string') return given;
  if (err.code === 'ENOTFOUND') {
    if (path.includes('/manifests/')) return 'MANIFEST_UNKNOWN';
    if (path.includes('/blobs/')) return 'BLOB_UNKNOWN';
    return 'NAME_UNKNOWN';
  }
  if (err.code === 'EPATH' || err.code === 'EUSAGE') return 'NAME_INVALID';
  return 'UNKNOWN';
}

export function renderError(ctx: Context, e: unknown, logger: Logger): void {
  const err =
    e instanceof URIError ? new AirlockError('EPATH', `malformed percent-encoding in ${ctx.path.slice(0, 100)}`) : toAirlockError(e);
  if (ctx.headerSent || !ctx.writable) {
    // mid-body: nothing left to tell the client; drop the connection so it sees a short body
    logger.warn({ code: err.code, err: err.message, url: ctx.req.url }, 'failed after headers were sent');
    ctx.req.socket.destroy();
    return;
  }
  const internal = err.code === 'EINTERNAL';
  if (internal) logger.error({ err: err.message, stack: err.details.stack, url: ctx.req.url }, 'internal error');
  const message = internal ? 'internal error (see the server log)' : err.message;
  // headers set for a success that did not happen must not leak into the error answer
  for (const h of ['ETag', 'Cache-Control', 'Content-Range', 'Accept-Ranges', 'Docker-Content-Digest', 'Content-Length']) ctx.remove(h);
  ctx.status = err.httpStatus;
  ctx.set('Cache-Control', 'no-store');
  if (ctx.path.startsWith('/v2/')) {
    ctx.set('Docker-Distribution-API-Version', 'registry/2.0');
    const detail = internal ? {} : Object.fromEntries(Object.entries(err.details).filter(([k]) => k !== 'oci' && k !== 'stack'));
    ctx.body = { errors: [{ code: ociCode(err, ctx.path), message, detail }] } satisfies OciErrorAnswer;
  } else {
    ctx.body = { error: { code: internal ? 'EINTERNAL' : err.code, message } } satisfies ErrorAnswer;
  }
}

/**
 * No route took the request: 405 with `Allow` when its path is known under
 * other methods, 404 otherwise; OCI's shape under /v2/.
 */
const WRITES = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

export function renderNoRoute(ctx: Context, allowed: readonly string[]): void {
  const oci = ctx.path.startsWith('/v2/');
  if (oci) ctx.set('Docker-Distribution-API-Version', 'registry/2.0');
  // a push (POST …/blobs/uploads/, PUT …/manifests/…, DELETE …) is told the registry is read-only, not that the name is unknown
  if (oci && WRITES.has(ctx.method) && allowed.length === 0) allowed = ['GET', 'HEAD'];
  if (allowed.length > 0) {
    ctx.status = 405;
    ctx.set('Allow', allowed.join(', '));
    const message = `read-only: ${ctx.method} is not supported; this registry serves the images of staged releases only (stage a release to add one)`;
    ctx.body = oci
      ? ({ errors: [{ code: 'UNSUPPORTED', message, detail: { method: ctx.method } }] } satisfies OciErrorAnswer)
      : ({ error: { code: 'EUSAGE', message: `${ctx.method} is not allowed on ${ctx.path}` } } satisfies ErrorAnswer);
    return;
  }
  ctx.status = 404;
  ctx.body = oci
    ? ({ errors: [{ code: 'NAME_UNKNOWN', message: 'no such registry endpoint', detail: {} }] } satisfies OciErrorAnswer)
    : ({ error: { code: 'ENOTFOUND', message: `no such endpoint: ${ctx.path.slice(0, 200)}` } } satisfies ErrorAnswer);
}
