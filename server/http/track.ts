/**
 * One access-log line and one round of metrics per response, whoever
 * answered it (koa or the lean blob path). Counted once, when the response
 * closes: complete or cut short (`aborted`), never per chunk.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Context } from 'koa';
import type { Logger } from 'pino';
import type { Metrics } from './metrics.js';

/** What a handler tells the tracker about its response (koa: `ctx.state`). */
export interface TrackState {
  /** route name for metrics and the log ('other' when none matched) */
  route?: string;
  /** body length when the head was written with `writeHead` (not readable back with getHeader) */
  bodyBytes?: number;
}

export const routeOf = (ctx: Context): string => (ctx.state as TrackState).route ?? 'other';

export function track(
  req: IncomingMessage,
  res: ServerResponse,
  state: TrackState,
  metrics: Metrics,
  logger: Logger,
  t0: number = performance.now(),
): void {
  const done = metrics.start();
  // 'close' comes after 'finish' for a complete response, and alone for one cut short
  res.once('close', () => {
    const complete = res.writableFinished;
    const method = req.method ?? '';
    const len = state.bodyBytes ?? Number(res.getHeader('content-length') ?? 0);
    const bytes = complete && method !== 'HEAD' ? len : 0;
    const route = state.route ?? 'other';
    const ms = performance.now() - t0;
    done(route, method, res.statusCode, bytes, ms / 1000);
    logger.info(
      {
        method,
        url: req.url,
        status: res.statusCode,
        bytes,
        ms: Math.round(ms * 10) / 10,
        route,
        remote: req.socket.remoteAddress,
        ...(complete ? {} : { aborted: true }),
      },
      'request',
    );
  });
}
