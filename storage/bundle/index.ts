/** Bundles for the air gap: what the rest of airlock may use. */
export { exportBundle, type ExportOptions, type ExportResult } from './export.js';
export { importBundle, type ImportOptions, type ImportResult } from './import.js';
export { resolveVolumes, volumeName, checksumName, type WrittenVolume } from './volumes.js';
export * from './format.js';
