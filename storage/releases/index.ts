/**
 * Releases as records: the verified envelope files (source of truth), their
 * outlines (what `status` reads), the accepted serial per product, and the
 * level database that indexes all of it for the writer (rebuilt from the
 * envelope files and blobs/ by rebuildIndex). On disk they live under
 * `cache_dir/index/` (paths.ts); with blobs in a bucket, that folder follows
 * the bucket's records (sync.ts).
 */
export { LevelIndex, type ArtifactRecord, type BlobRecord, type ReleaseRecord } from './db.js';
export {
  decodeStored,
  listEnvelopeFiles,
  mergeAccepted,
  readAcceptedFile,
  readEnvelopeFile,
  writeAcceptedFile,
  writeEnvelopeFile,
} from './envelopes.js';
export { readOutline, removeOutline, scanOutline, writeOutline, type OutlineHead } from './outline.js';
export { rebuildIndex, reindexReleases } from './rebuild.js';
export { syncRecords, admitRecord, newSyncMemo, putAccepted, type SyncOptions, type SyncReport, type SyncMemo, type SkippedRecord } from './sync.js';
export { forgetReleases } from './remove.js';
