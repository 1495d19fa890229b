/**
 * A release's outline: just what `status` needs (each artifact's path,
 * digest, size and image blobs), written beside the envelope when a release
 * is stored. Why: a 100,000-artifact envelope is ~30 MB of base64 JSON, and
 * decoding it costs a second or more on every `airlock status`; the outline
 * is a few MB of lines that split in tens of milliseconds.
 *
 *   airlock-outline 1
 *   {"envelope":"<sha256 of the envelope file>","product":…,"release":…,"serial":…,"digest":…}
 *   <sha256> <size> <path as a JSON string>
 *   +<sha256> <size>            a blob of the image on the line above
 *
 * The outline is a cache, never the truth: it names the sha256 of the
 * envelope file it was made from and is ignored (the envelope is decoded
 * instead) when that does not match or the file is missing or damaged.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, readFile, rm } from 'node:fs/promises';
/** an artifact's digest and size, with its image blobs */
export interface ArtifactRef extends BlobRef {
  blobs?: BlobRef[];
}
import { sha256Hex } from '../../manifests/digest.js';
import type { BlobRef } from '../../manifests/types.js';
import { outlinePath, envelopePath } from '../paths.js';
import type { StoredRelease } from '../types.js';
import { writeFileAtomic } from '../../common/atomic.js';
import type { ReleaseOutline } from '../status.js';

const MAGIC = 'airlock-outline 1';

export async function writeOutline(root: string, stored: StoredRelease): Promise<void> {
  const { product, release, serial, digest } = stored;
  const lines = [MAGIC, JSON.stringify({ envelope: sha256Hex(stored.envelope), product, release, serial, digest })];
  for (const a of stored.manifest.artifacts) {
    lines.push(`${a.sha256} ${a.size} ${JSON.stringify(a.path)}`);
    if (a.kind === 'oci-image') for (const b of a.blobs) lines.push(`+${b.sha256} ${b.size}`);
  }
  await writeFileAtomic(outlinePath(root, release), `${lines.join('\n')}\n`);
}

export async function removeOutline(root: string, release: string): Promise<void> {
  await rm(outlinePath(root, release), { force: true });
}

/** The outline of `release` when it matches the stored envelope; null otherwise. */
export async function readOutline(root: string, release: string): Promise<ReleaseOutline | null> {
  let text: string;
  let envelope: Buffer;
  try {
    [text, envelope] = await Promise.all([readFile(outlinePath(root, release), 'utf8'), readFile(envelopePath(root, release))]);
  } catch {
    return null;
  }
  try {
    const lines = text.split('\n');
    if (lines[0] !== MAGIC) return null;
    const head = JSON.parse(lines[1]!) as { envelope: string; product: string; release: string; serial: number; digest: string };
    if (head.release !== release || head.envelope !== sha256Hex(envelope)) return null;
    const artifacts: Array<BlobRef & { path: string; blobs: BlobRef[] }> = [];
    let image: BlobRef[] | null = null;
    for (let i = 2; i < lines.length; i++) {
      const line = lines[i]!;
      if (line === '') continue;
      const sp1 = line.indexOf(' ');
      if (line[0] === '+') {
        if (!image) return null;
        image.push({ sha256: line.slice(1, sp1), size: Number(line.slice(sp1 + 1)) });
        continue;
      }
      const sp2 = line.indexOf(' ', sp1 + 1);
      image = [];
      artifacts.push({ sha256: line.slice(0, sp1), size: Number(line.slice(sp1 + 1, sp2)), path: JSON.parse(line.slice(sp2 + 1)) as string, blobs: image });
    }
    return { product: head.product, release: head.release, serial: head.serial, artifacts };
  } catch {
    return null;
  }
}

/** sha256 of a file, read in 1 MiB pieces (a 100,000-artifact envelope is ~30 MB: never held whole) */
async function fileSha256(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const c of createReadStream(path, { highWaterMark: 1024 * 1024 })) h.update(c as Buffer);
  return h.digest('hex');
}

export interface OutlineHead {
  product: string;
  release: string;
  serial: number;
}

/**
 * Streams the outline of `release`, one artifact (with its image blobs) at a
 * time to `onArtifact`, without holding the file or a list of artifacts:
 * what `status` of a 100,000-artifact release needs to stay small. Null (and
 * nothing more is called) when the outline is missing or does not match the
 * stored envelope; a line found damaged half-way also returns null, after
 * some artifacts were handed over: the caller then starts over from the
 * envelope.
 */
export async function scanOutline(
  root: string,
  release: string,
  onArtifact: (a: ArtifactRef, path: () => string) => void,
): Promise<OutlineHead | null> {
  let envelopeSha: string;
  try {
    envelopeSha = await fileSha256(envelopePath(root, release));
  } catch {
    return null;
  }
  let handle;
  try {
    handle = await open(outlinePath(root, release), 'r');
  } catch {
    return null;
  }
  // Lines are cut out of the bytes read, and only the digest (a flat 64-character
  // string, not a slice keeping its whole line alive), the size and the path are made of each.
  let buf = Buffer.allocUnsafe(SCAN_CHUNK);
  let have = 0;
  let n = 0;
  let head: OutlineHead | null = null;
  let current: (BlobRef & { blobs?: BlobRef[] }) | null = null;
  let currentPath: () => string = () => '';
  const line = (b: Buffer, start: number, end: number): boolean => {
    n++;
    if (n === 1) return b.toString('utf8', start, end) === MAGIC;
    if (n === 2) {
      const h = JSON.parse(b.toString('utf8', start, end)) as { envelope: string; product: string; release: string; serial: number };
      if (h.release !== release || h.envelope !== envelopeSha) return false;
      head = { product: h.product, release: h.release, serial: h.serial };
      return true;
    }
    if (end === start) return true;
    const sp1 = b.indexOf(0x20, start);
    if (sp1 < 0 || sp1 >= end) return false;
    if (b[start] === 0x2b /* + */) {
      if (!current) return false;
      (current.blobs ??= []).push({ sha256: b.toString('latin1', start + 1, sp1), size: decimal(b, sp1 + 1, end) });
      return true;
    }
    const sp2 = b.indexOf(0x20, sp1 + 1);
    if (sp2 < 0 || sp2 >= end) return false;
    if (current) onArtifact(current, currentPath);
    current = { sha256: b.toString('latin1', start, sp1), size: decimal(b, sp1 + 1, sp2) };
    // the path is made only when asked for (status needs it for missing artifacts alone)
    const raw = b.toString('latin1', sp2 + 1, end);
    currentPath = () => JSON.parse(Buffer.from(raw, 'latin1').toString('utf8')) as string;
    return true;
  };
  try {
    for (;;) {
      if (have === buf.length) {
        // a line longer than the buffer: grow it (paths are short; this is rare)
        const bigger = Buffer.allocUnsafe(buf.length * 2);
        buf.copy(bigger, 0, 0, have);
        buf = bigger;
      }
      const { bytesRead } = await handle.read(buf, have, buf.length - have, null);
      const end = have + bytesRead;
      let start = 0;
      for (let nl = buf.indexOf(0x0a, start); nl >= 0 && nl < end; nl = buf.indexOf(0x0a, start)) {
        if (!line(buf, start, nl)) return null;
        start = nl + 1;
      }
      if (bytesRead === 0) {
        if (start < end && !line(buf, start, end)) return null;
        break;
      }
      buf.copy(buf, 0, start, end);
      have = end - start;
    }
    if (current) onArtifact(current, currentPath);
    return head;
  } catch {
    return null;
  } finally {
    await handle.close().catch(() => {});
  }
}

const SCAN_CHUNK = 256 * 1024;

/** a non-negative decimal from bytes; NaN when it is not one */
function decimal(b: Buffer, start: number, end: number): number {
  if (end <= start) return NaN;
  let v = 0;
  for (let i = start; i < end; i++) {
    const d = b[i]! - 48;
    if (d < 0 || d > 9) return NaN;
    v = v * 10 + d;
  }
  return v;
}
