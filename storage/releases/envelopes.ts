/**
 * Verified envelopes kept as files, `index/envelopes/<release>.json`, byte
 * for byte as verified. They are the source of truth: readers (`serve`,
 * `status`) use them while a writer in another process holds the level
 * database (LevelDB admits one process), and `rebuildIndex` starts from them.
 * The accepted serial per product is mirrored in `index/accepted.json`.
 */
import { readFile, readdir, stat } from 'node:fs/promises';
import { sha256Hex } from '../../manifests/index.js';
import { AirlockError } from '../../manifests/errors.js';
import type { AcceptedSerial, ReleaseManifest } from '../../manifests/types.js';
import { writeFileAtomic } from '../../common/atomic.js';
import { acceptedPath, envelopePath, envelopesDir } from '../paths.js';
import type { StoredRelease } from '../types.js';

export async function writeEnvelopeFile(root: string, release: string, envelope: Uint8Array): Promise<void> {
  await writeFileAtomic(envelopePath(root, release), envelope);
}

/** Parsed envelopes by file, reused while the file is unchanged (a 100k-artifact manifest is tens of MB). */
const cache = new Map<string, { mtimeMs: number; size: number; stored: StoredRelease }>();

export function decodeStored(envelope: Buffer, where: string): StoredRelease {
  let manifest: ReleaseManifest;
  let payload: Buffer;
  try {
    // These bytes were verified strictly (signatures, duplicate keys, schema)
    // before they were stored; reading them back needs only the native
    // parser, which is many times faster on a 20 MB envelope.
    const doc = JSON.parse(envelope.toString('utf8')) as { payload?: unknown };
    if (typeof doc.payload !== 'string') throw new Error('no "payload" string');
    payload = Buffer.from(doc.payload, 'base64');
    manifest = JSON.parse(payload.toString('utf8')) as ReleaseManifest;
  } catch (e) {
    throw new AirlockError('EMANIFEST', `${where}: stored envelope cannot be read: ${(e as Error).message}`, { file: where });
  }
  return {
    product: manifest.product,
    release: manifest.release,
    serial: manifest.serial,
    envelope,
    digest: sha256Hex(payload),
    manifest,
  };
}

export async function readEnvelopeFile(root: string, release: string): Promise<StoredRelease | null> {
  const file = envelopePath(root, release);
  let s;
  try {
    s = await stat(file);
  } catch {
    return null;
  }
  const hit = cache.get(file);
  if (hit && hit.mtimeMs === s.mtimeMs && hit.size === s.size) return hit.stored;
  const stored = decodeStored(await readFile(file), file);
  if (stored.release !== release) {
    throw new AirlockError('EMANIFEST', `${file}: holds release "${stored.release}", not "${release}"`, { file });
  }
  cache.set(file, { mtimeMs: s.mtimeMs, size: s.size, stored });
  return stored;
}

export async function listEnvelopeFiles(root: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(envelopesDir(root));
  } catch {
    return [];
  }
  return names
    .filter((n) => n.endsWith('.json') && !n.startsWith('.'))
    .map((n) => n.slice(0, -'.json'.length))
    .sort();
}

export async function readAcceptedFile(root: string): Promise<Record<string, AcceptedSerial>> {
  try {
    return JSON.parse(await readFile(acceptedPath(root), 'utf8')) as Record<string, AcceptedSerial>;
  } catch {
    return {};
  }
}

export async function writeAcceptedFile(root: string, accepted: Record<string, AcceptedSerial>): Promise<void> {
  await writeFileAtomic(acceptedPath(root), Buffer.from(`${JSON.stringify(accepted, null, 2)}\n`));
}

/** Keeps, per product, the higher serial. */
export function mergeAccepted(...sources: Array<Record<string, AcceptedSerial>>): Record<string, AcceptedSerial> {
  const out: Record<string, AcceptedSerial> = {};
  for (const src of sources) {
    for (const a of Object.values(src)) {
      const known = out[a.product];
      if (!known || a.serial > known.serial) out[a.product] = { product: a.product, serial: a.serial, digest: a.digest };
    }
  }
  return out;
}
