/**
 * An in-memory Fetcher for tests (python-tuf's repository simulator): url →
 * bytes, honouring `offset` and `maxLength`, with a small queue of faults per
 * URL so tests can script resets, 5xx, ignored Range and endless bodies.
 */
import { Readable } from 'node:stream';
import { AirlockError } from '../../manifests/errors.js';
import type { FetchOptions, FetchResult, Fetcher } from '../types.js';

export type MemoryFault =
  /** the body breaks (connection reset) after `after` bytes of this answer */
  | { kind: 'reset'; after: number }
  /** the upstream answers this HTTP status (5xx retryable, 4xx not) */
  | { kind: 'status'; status: number }
  /** the upstream ignores Range and sends the whole body from 0 */
  | { kind: 'ignore-range' }
  /** the upstream sends these bytes instead */
  | { kind: 'body'; bytes: Uint8Array };

export interface MemoryFetcher extends Fetcher {
  /** every call: url, asked offset, bytes actually sent */
  readonly calls: Array<{ url: string; offset: number; sent: number }>;
  /** faults still to come, per URL, consumed one per fetch */
  readonly faults: Record<string, MemoryFault[]>;
}

export function memoryFetcher(files: Record<string, Uint8Array>, faults: Record<string, MemoryFault[]> = {}): MemoryFetcher {
  const calls: MemoryFetcher['calls'] = [];
  return {
    calls,
    faults,
    async fetch(url: string, opts: FetchOptions): Promise<FetchResult> {
      opts.signal?.throwIfAborted();
      const fault = faults[url]?.shift();
      const call = { url, offset: opts.offset, sent: 0 };
      calls.push(call);
      if (fault?.kind === 'status') {
        throw new AirlockError('EUPSTREAM', `${url}: upstream answered HTTP ${fault.status}`, { url, status: fault.status });
      }
      const whole = fault?.kind === 'body' ? fault.bytes : files[url];
      if (!whole) throw new AirlockError('EUPSTREAM', `${url}: upstream answered HTTP 404`, { url, status: 404 });
      const start = fault?.kind === 'ignore-range' ? 0 : Math.min(opts.offset, whole.length);
      const end = Math.min(whole.length, start + opts.maxLength);
      const cut = fault?.kind === 'reset' ? Math.min(end, start + fault.after) : end;
      const body = Buffer.from(whole.buffer, whole.byteOffset + start, cut - start);
      call.sent = body.length;
      const CHUNK = 64 * 1024;
      let pos = 0;
      const stream = new Readable({
        read() {
          if (opts.signal?.aborted) {
            this.destroy(new AirlockError('EUPSTREAM', `${url}: aborted`, { url }));
            return;
          }
          if (pos < body.length) {
            this.push(body.subarray(pos, pos + CHUNK));
            pos += CHUNK;
          } else if (fault?.kind === 'reset') {
            this.destroy(new AirlockError('EUPSTREAM', `${url}: connection reset after ${body.length} bytes`, { url }));
          } else {
            this.push(null);
          }
        },
      });
      return { offset: start, stream };
    },
  };
}
