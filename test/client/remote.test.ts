import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { cacheClient } from '../../client/remote.js';
import { startFaultUpstream, type FaultUpstream } from '../support/fault-upstream.js';

let up: FaultUpstream;
beforeEach(async () => {
  up = await startFaultUpstream();
});
afterEach(async () => {
  await up.close();
});

describe('cacheClient against a cache that trickles', () => {
  it('the release list trickled a byte at a time is EUPSTREAM "too slow" at the deadline, not never', async () => {
    up.files.set('/releases', { body: Buffer.from(JSON.stringify([{ release: '1.0', product: 'p', serial: 1, ready: true }])), fault: { kind: 'trickle', at: 2, every: 100 } });
    const cache = cacheClient(up.url, { stallTimeoutMs: 5000, answerTimeoutMs: 700 });
    try {
      const t0 = Date.now();
      await expect(cache.releases()).rejects.toMatchObject({ code: 'EUPSTREAM', details: { cause: 'too slow' } });
      expect(Date.now() - t0).toBeLessThan(4000);
    } finally {
      cache.close();
    }
  }, 15_000);

  it('an envelope trickled the same way, too', async () => {
    up.files.set('/releases/1.0/manifest', { body: Buffer.alloc(500, 0x20), fault: { kind: 'trickle', at: 1, every: 100 } });
    const cache = cacheClient(up.url, { stallTimeoutMs: 5000, answerTimeoutMs: 700 });
    try {
      await expect(cache.manifest('1.0')).rejects.toMatchObject({ code: 'EUPSTREAM', details: { cause: 'too slow' } });
    } finally {
      cache.close();
    }
  }, 15_000);

  it('a prompt answer is read as before', async () => {
    up.files.set('/releases', { body: Buffer.from(JSON.stringify([{ release: '1.0', product: 'p', serial: 1, ready: true }])) });
    const cache = cacheClient(up.url, { answerTimeoutMs: 700 });
    try {
      expect(await cache.releases()).toEqual([{ release: '1.0', product: 'p', serial: 1, ready: true }]);
    } finally {
      cache.close();
    }
  });
});
