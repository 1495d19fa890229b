/**
 * One whole small answer (a release list, a manifest envelope) over the
 * network: capped at `cap` bytes and due within `deadlineMs`. Blobs go
 * through ingest's rate check; these answers get a deadline instead, so an
 * upstream or cache trickling them cannot hold a run.
 */
import { AirlockError } from '../../manifests/errors.js';
import { statusError, upstreamError, type HttpClient } from './http.js';

export interface WholeOptions {
  cap: number;
  deadlineMs: number;
  /** how the answer is named in errors, e.g. "envelope" or "cache" */
  what: string;
  signal?: AbortSignal;
}

export async function fetchWhole(http: HttpClient, url: string, opts: WholeOptions): Promise<Buffer> {
  const deadline = AbortSignal.timeout(opts.deadlineMs);
  const signal = opts.signal ? AbortSignal.any([opts.signal, deadline]) : deadline;
  const failed = (e: unknown): AirlockError => {
    if (e instanceof AirlockError && e.code !== 'EUPSTREAM') return e;
    if (!deadline.aborted || opts.signal?.aborted) return upstreamError(e, url, opts.signal);
    return new AirlockError('EUPSTREAM', `${opts.what} ${url}: too slow: no complete answer within ${opts.deadlineMs / 1000} s`, {
      url,
      cause: 'too slow',
    });
  };
  let res;
  try {
    res = await http.request(url, { maxLength: opts.cap + 1, signal });
  } catch (e) {
    throw failed(e);
  }
  if (res.status !== 200) {
    res.body.destroy();
    const err = statusError(res.status, url, res.headers);
    throw new AirlockError(err.code, `${opts.what} ${err.message}`, err.details);
  }
  const chunks: Buffer[] = [];
  let n = 0;
  try {
    for await (const c of res.body) {
      chunks.push(c as Buffer);
      n += (c as Buffer).length;
      if (n > opts.cap) throw new AirlockError('EMANIFEST', `${opts.what} ${url}: larger than ${opts.cap} bytes`, { url, cap: opts.cap });
    }
  } catch (e) {
    res.body.destroy();
    throw failed(e);
  }
  return Buffer.concat(chunks);
}
