/** SmallBlobCache: bounded in bytes, evicts the oldest not used since its last chance, skips big blobs, 0 turns it off. */
import { describe, expect, it } from 'vitest';
import { SMALL_BLOB_MAX, SmallBlobCache } from '../../../server/http/small-blobs.js';

const blob = (n: number): Buffer => Buffer.alloc(n, 1);

describe('SmallBlobCache', () => {
  it('keeps what fits, evicting the oldest unused first; a hit earns a second chance', () => {
    const c = new SmallBlobCache(3000);
    c.set('a', blob(1000));
    c.set('b', blob(1000));
    c.set('c', blob(1000));
    // newcomers start with a chance: a, b, c lose theirs in one pass, then the oldest (a) goes
    c.set('d', blob(1000));
    expect(c.get('a')).toBeUndefined();
    // b is hit: when room is needed again, c (older than d, not hit) goes, b stays
    expect(c.get('b')).toBeDefined();
    c.set('e', blob(1000));
    expect(['b', 'c', 'd', 'e'].filter((k) => c.get(k))).toEqual(['b', 'd', 'e']);
    c.set('f', blob(2500)); // everyone was hit: each passed over once, then the oldest go, never the newcomer
    expect(['b', 'd', 'e', 'f'].filter((k) => c.get(k))).toEqual(['f']);
  });

  it('never holds blobs over SMALL_BLOB_MAX; capacity 0 holds nothing', () => {
    const c = new SmallBlobCache();
    c.set('big', blob(SMALL_BLOB_MAX + 1));
    expect(c.get('big')).toBeUndefined();
    const off = new SmallBlobCache(0);
    off.set('x', blob(10));
    expect(off.get('x')).toBeUndefined();
  });
});
