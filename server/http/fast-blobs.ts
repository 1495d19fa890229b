/**
 * The lean path: `GET|HEAD /blobs/sha256/<64 lowercase hex>` answered on the
 * raw request, before koa.
 *
 * Why: nodes pull blobs by digest, so this one route carries nearly all the
 * load. For an 8 KiB blob koa's context objects, middleware promises and
 * header delegation cost more CPU than writing the bytes (the benchmark's
 * small-blob req/s went up by half without them). Everything here is the same
 * decision as koa's blob route (send-blob.ts) and the same metrics and access
 * log (track.ts); anything else — another path, a query string, a blob not
 * in the store, an error — falls through to koa untouched, which answers it
 * with the router and its error mapping.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ServeEnv } from './env.js';
import { blobAnswer, blobSource, OCTET_STREAM, redirects, sourceSize, writeBlobAnswer } from './send-blob.js';
import { track, type TrackState } from './track.js';

const BLOB_URL = /^\/blobs\/sha256\/([0-9a-f]{64})$/;

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

export function withFastBlobs(env: ServeEnv, koa: Handler): Handler {
  return (req, res) => {
    const method = req.method;
    const m = (method === 'GET' || method === 'HEAD') && BLOB_URL.exec(req.url ?? '');
    if (!m) return koa(req, res);
    const t0 = performance.now();
    const sha256 = m[1]!;
    const cached = env.smallBlobs.get(sha256);
    // a cached blob is answered in this tick; the rest after an open (and, for small files, one read)
    if (cached) return answer(env, req, res, sha256, cached, t0);
    blobSource(env, sha256, method, req.headers).then(
      (source) => (source ? answer(env, req, res, sha256, source, t0) : koa(req, res)),
      () => koa(req, res),
    );
  };
}

function answer(env: ServeEnv, req: IncomingMessage, res: ServerResponse, sha256: string, source: Parameters<typeof writeBlobAnswer>[2], t0: number): void {
  const state: TrackState = { route: 'blobs' };
  track(req, res, state, env.metrics, env.logger, t0);
  env.metrics.hit('blobs');
  const a = blobAnswer(req.method!, req.headers, { sha256, size: sourceSize(source), contentType: OCTET_STREAM });
  if (redirects(a, source)) env.metrics.redirected('blobs');
  state.bodyBytes = writeBlobAnswer(res, a, source);
}
