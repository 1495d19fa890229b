/** The release index: envelope files (source of truth) and the level database (writer's cache of them). */
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
export { rebuildIndex } from './rebuild.js';
