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
import { readFile, rm } from 'node:fs/promises';
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
