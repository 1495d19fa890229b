// Child for crash.test.ts: run as `node crash-child.mjs <compiled storage/index.js> <cacheDir> <mode>`.
// It writes until it is SIGKILLed, printing one JSON line per step.
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { pathToFileURL } from 'node:url';

const [, , lib, cacheDir, mode] = process.argv;
const { openStore } = await import(pathToFileURL(lib).href);
const say = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);

export function body(i, size) {
  const seed = createHash('sha256').update(`blob ${i}`).digest();
  const out = Buffer.alloc(size);
  for (let o = 0; o < size; o += seed.length) seed.copy(out, o);
  return out;
}

/** a stream that trickles `buf` out, so a kill lands mid-write */
function trickle(buf, chunk = 64 * 1024, everyMs = 2) {
  let pos = 0;
  return new Readable({
    read() {
      setTimeout(() => {
        if (pos >= buf.length) return this.push(null);
        this.push(buf.subarray(pos, pos + chunk));
        pos += chunk;
      }, everyMs);
    },
  });
}

const store = await openStore({ cacheDir, write: true });
say({ locked: process.pid });
if (mode === 'blobs') {
  for (let i = 0; ; i++) {
    const b = body(i, 512 * 1024);
    const ref = { sha256: createHash('sha256').update(b).digest('hex'), size: b.length };
    say({ start: i, sha256: ref.sha256 });
    await store.ingestStream(ref, trickle(b));
    say({ done: i, sha256: ref.sha256 });
  }
} else {
  const size = Number(process.env.RESUME_SIZE);
  const b = body(999, size);
  const ref = { sha256: createHash('sha256').update(b).digest('hex'), size };
  const fetcher = {
    async fetch(_url, { offset }) {
      return { offset, stream: trickle(b.subarray(offset), 64 * 1024, 5) };
    },
  };
  let last = 0;
  await store.ingestFromUrls(ref, ['http://up.example/big'], fetcher, {
    onProgress: (p) => {
      if (p.bytes - last >= 256 * 1024) {
        last = p.bytes;
        say({ bytes: p.bytes });
      }
    },
  });
  say({ finished: true });
}
