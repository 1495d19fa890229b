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
import { readFile, rm } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import type { ArtifactOutline } from '../../manifests/blobs.js';
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
export async function scanOutline(root: string, release: string, onArtifact: (a: ArtifactOutline) => void): Promise<OutlineHead | null> {
  let envelopeSha: string;
  try {
    envelopeSha = await fileSha256(envelopePath(root, release));
  } catch {
    return null;
  }
  let input;
  try {
    input = createReadStream(outlinePath(root, release), { encoding: 'utf8', highWaterMark: 256 * 1024 });
    await new Promise<void>((resolve, reject) => {
      input!.once('open', () => resolve());
      input!.once('error', reject);
    });
  } catch {
    return null;
  }
  const lines = createInterface({ input, crlfDelay: Infinity });
  let n = 0;
  let head: OutlineHead | null = null;
  let current: (BlobRef & { path: string; blobs: BlobRef[] }) | null = null;
  try {
    for await (const line of lines) {
      n++;
      if (n === 1) {
        if (line !== MAGIC) return null;
        continue;
      }
      if (n === 2) {
        const h = JSON.parse(line) as { envelope: string; product: string; release: string; serial: number };
        if (h.release !== release || h.envelope !== envelopeSha) return null;
        head = { product: h.product, release: h.release, serial: h.serial };
        continue;
      }
      if (line === '') continue;
      const sp1 = line.indexOf(' ');
      if (sp1 < 0) return null;
      if (line[0] === '+') {
        if (!current) return null;
        current.blobs.push({ sha256: line.slice(1, sp1), size: Number(line.slice(sp1 + 1)) });
        continue;
      }
      const sp2 = line.indexOf(' ', sp1 + 1);
      if (sp2 < 0) return null;
      if (current) onArtifact(current);
      current = { sha256: line.slice(0, sp1), size: Number(line.slice(sp1 + 1, sp2)), path: JSON.parse(line.slice(sp2 + 1)) as string, blobs: [] };
    }
    if (current) onArtifact(current);
    return head;
  } catch {
    return null;
  } finally {
    lines.close();
    input.destroy();
  }
}
