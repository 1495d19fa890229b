/**
 * `airlock verify --rebuild-index`: the level database is a cache of what
 * blobs/ and the envelope files say, so it can always be thrown away and
 * made again from them.
 */
import type { AcceptedSerial } from '../../manifests/types.js';
import type { BlobBackend } from '../types.js';
import type { BlobRecord, LevelIndex } from './db.js';
import { writeOutline } from './outline.js';
import { listEnvelopeFiles, mergeAccepted, readAcceptedFile, readEnvelopeFile, writeAcceptedFile } from './envelopes.js';

export async function rebuildIndex(root: string, db: LevelIndex, backend: BlobBackend): Promise<{ releases: number; blobs: number }> {
  await db.clear();
  const fromEnvelopes: Record<string, AcceptedSerial> = {};
  const names = await listEnvelopeFiles(root);
  for (const name of names) {
    const stored = await readEnvelopeFile(root, name);
    if (!stored) continue;
    const known = fromEnvelopes[stored.product];
    if (!known || stored.serial > known.serial) {
      fromEnvelopes[stored.product] = { product: stored.product, serial: stored.serial, digest: stored.digest };
    }
    await db.putRelease(stored, null);
    await writeOutline(root, stored);
  }
  const accepted = mergeAccepted(await readAcceptedFile(root), fromEnvelopes);
  for (const a of Object.values(accepted)) await db.putAccepted(a);
  await writeAcceptedFile(root, accepted);
  let blobs = 0;
  let batch: Array<[string, BlobRecord]> = [];
  for await (const digest of backend.list()) {
    const s = await backend.stat(digest);
    if (!s) continue;
    batch.push([digest, { size: s.size, addedAt: new Date(s.mtimeMs).toISOString() }]);
    blobs++;
    if (batch.length >= 1000) {
      await db.putBlobs(batch);
      batch = [];
    }
  }
  if (batch.length) await db.putBlobs(batch);
  return { releases: names.length, blobs };
}

/**
 * The releases and accepted serials of the level database made again from
 * the envelope files, without listing the blobs (a bucket's listing costs a
 * request per blob to stat): what a sync of the release records needs.
 */
export async function reindexReleases(root: string, db: LevelIndex): Promise<void> {
  await db.clearReleases();
  const fromEnvelopes: Record<string, AcceptedSerial> = {};
  for (const name of await listEnvelopeFiles(root)) {
    const stored = await readEnvelopeFile(root, name).catch(() => null);
    if (!stored) continue;
    const known = fromEnvelopes[stored.product];
    if (!known || stored.serial > known.serial) fromEnvelopes[stored.product] = { product: stored.product, serial: stored.serial, digest: stored.digest };
    await db.putRelease(stored, null);
  }
  for (const a of Object.values(mergeAccepted(await readAcceptedFile(root), fromEnvelopes, await db.accepted()))) await db.putAccepted(a);
}
