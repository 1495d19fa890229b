/**
 * `airlock export`: writes one release as a bundle (format.ts) — header,
 * root chain, signed envelope, then every blob in manifest order — streaming
 * each blob from the store into the tar, never holding one in memory.
 */
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { AirlockError } from '../../manifests/errors.js';
import { decodeEnvelope, releaseBlobs } from '../../manifests/index.js';
import type { Store } from '../index.js';
import {
  BUNDLE_FORMAT,
  BUNDLE_VERSION,
  ENVELOPE_NAME,
  HEADER_NAME,
  blobEntryName,
  rootEntryName,
  type BundleHeader,
} from './format.js';
import { VolumeWriter, type WrittenVolume } from './volumes.js';

export interface ExportOptions {
  /** FILE.tar; with `split`, volumes FILE.tar.000, .001… */
  out: string;
  /** bytes per volume, or null for one file */
  split?: number | null;
  /** root.json files (bytes) to carry, any order; duplicates by version are dropped */
  roots?: Buffer[];
  onProgress?: (p: { bytes: number; total: number; current: string }) => void;
}

export interface ExportResult {
  release: string;
  product: string;
  serial: number;
  blobs: number;
  /** blob bytes carried */
  bytes: number;
  roots: number[];
  volumes: WrittenVolume[];
}

/** Version of a root.json, read without verifying: the importer verifies it against its own root. */
function rootVersion(bytes: Buffer, index: number): number {
  try {
    const { payload } = decodeEnvelope(bytes);
    const v = (JSON.parse(payload.toString('utf8')) as { version?: unknown }).version;
    if (Number.isSafeInteger(v) && (v as number) >= 1) return v as number;
  } catch {
    // fall through to the one error below
  }
  throw new AirlockError('EMANIFEST', `export: trust root #${index + 1} is not a root.json with a version`, { index });
}

export async function exportBundle(store: Store, release: string, opts: ExportOptions): Promise<ExportResult> {
  const stored = await store.getRelease(release);
  if (!stored) throw new AirlockError('ENOTFOUND', `release ${release} is not in the cache at ${store.cacheDir}`, { release });
  const blobs = releaseBlobs(stored.manifest);

  // refuse before writing anything: a bundle must be complete to be useful
  const missing: typeof blobs = [];
  for (const b of blobs) {
    const st = await store.stat(b.sha256);
    if (!st || st.size !== b.size) missing.push(b);
  }
  if (missing.length > 0) {
    const first = missing[0]!;
    throw new AirlockError(
      'ENOTFOUND',
      `release ${release} is not complete: ${missing.length} blob(s) missing, first sha256:${first.sha256} for ${first.paths[0] ?? '?'} (run airlock stage)`,
      { release, missing: missing.map((m) => m.sha256) },
    );
  }

  const byVersion = new Map<number, Buffer>();
  (opts.roots ?? []).forEach((bytes, i) => byVersion.set(rootVersion(bytes, i), bytes));
  const roots = [...byVersion.keys()].sort((a, b) => a - b);

  const total = blobs.reduce((n, b) => n + b.size, 0);
  const header: BundleHeader = {
    format: BUNDLE_FORMAT,
    version: BUNDLE_VERSION,
    product: stored.product,
    release: stored.release,
    serial: stored.serial,
    digest: stored.digest,
    blobs: { count: blobs.length, bytes: total },
    roots,
    created: new Date().toISOString(),
  };

  const mtime = new Date(stored.manifest.issued);
  const pack = tar.pack();
  const writer = new VolumeWriter(opts.out, opts.split ?? null);
  const written = pipeline(pack, writer);
  written.catch(() => {}); // awaited below; a failure also stops the entry writes

  const small = (name: string, bytes: Buffer): Promise<void> =>
    new Promise((resolve, reject) => {
      pack.entry({ name, size: bytes.length, mode: 0o444, mtime }, bytes, (e) => (e ? reject(e) : resolve()));
    });

  let done = 0;
  try {
    await small(HEADER_NAME, Buffer.from(`${JSON.stringify(header, null, 2)}\n`));
    for (const v of roots) await small(rootEntryName(v), byVersion.get(v)!);
    await small(ENVELOPE_NAME, stored.envelope);
    for (const b of blobs) {
      await new Promise<void>((resolve, reject) => {
        const entry = pack.entry({ name: blobEntryName(b.sha256), size: b.size, mode: 0o444, mtime }, (e) => (e ? reject(e) : resolve()));
        (async () => {
          const source = await store.read(b.sha256);
          for await (const chunk of source) {
            done += (chunk as Buffer).length;
            opts.onProgress?.({ bytes: done, total, current: b.paths[0] ?? b.sha256 });
            if (!entry.write(chunk as Buffer)) await new Promise<void>((r) => entry.once("drain", () => r(undefined)));
          }
          entry.end(undefined);
        })().catch((e: unknown) => {
          entry.destroy(e as Error);
          reject(e as Error);
        });
      });
    }
    pack.finalize();
    await written;
  } catch (e) {
    pack.destroy(e as Error);
    await written.catch(() => {});
    await writer.discard();
    throw e;
  }
  return {
    release: stored.release,
    product: stored.product,
    serial: stored.serial,
    blobs: blobs.length,
    bytes: total,
    roots,
    volumes: writer.volumes,
  };
}
