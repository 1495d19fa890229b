/**
 * `airlock import`: reads a bundle (format.ts) front to back, once, as a
 * stream. The envelope passes the trust gate opened on the LOCAL trust root
 * (the bundle's roots are offered to it one by one as they stream, each only
 * as a rotation from the last) before any blob byte is read; then each entry must be exactly the next blob the
 * signed manifest needs, with its declared size, and is hashed on its way
 * into the store.
 *
 * What stays after a refusal: blobs that were already verified and committed
 * (content-addressed, so harmless and reused by the next import); never an
 * unverified byte, never the release. The release (and its accepted serial)
 * is stored only after every blob is verified and durable (and, with
 * `checkVolumes`, every volume checksum matched), so `status` never shows a
 * half-imported release as ready and an interrupted import is finished by
 * running it again.
 *
 * One hash pass: each blob is hashed once, on its way into the store. The
 * volumes' .sha256 files are for people (`sha256sum -c`); checking them too
 * is `checkVolumes` (volumes.ts says why it is off by default). A blob's
 * fsync and rename run while the next blob streams in (at most
 * MAX_COMMITTING at a time), and every one of them is awaited before the
 * release is recorded.
 */
import { AirlockError, toAirlockError } from '../../manifests/errors.js';
import { releaseBlobs, type GateResult, type TrustedRoot, type TrustGate } from '../../manifests/index.js';
import { LIMITS } from '../../manifests/types.js';
import { MAX_OFFERED_ROOTS } from '../../manifests/gate.js';
import type { Store } from '../index.js';
import { assertReleaseName } from '../paths.js';
import {
  ENVELOPE_NAME,
  HEADER_MAX_BYTES,
  HEADER_NAME,
  ROOT_MAX_BYTES,
  ROOT_PREFIX,
  blobDigestOf,
  blobEntryName,
  parseHeader,
  rootVersionOf,
  type BundleHeader,
} from './format.js';
import { resolveVolumes } from './volumes.js';
import { TarEnded, TarHeaderError, TarReader, VolumeReader, type TarHeader } from './tar-read.js';

export interface ImportOptions {
  /** the trust gate opened on the local trust root (--trust / config), never on one from the bundle */
  gate: TrustGate;
  /** size cap of manifest.json (default LIMITS.envelopeBytes) */
  maxEnvelopeBytes?: number;
  onProgress?: (p: { bytes: number; total: number; current: string }) => void;
  /** after verification, before blobs: what is being imported */
  onVerified?: (v: { header: BundleHeader; verified: GateResult; root: TrustedRoot }) => void;
  /** also check each volume against its .sha256 beside it (a second hash pass, on another core); default off */
  checkVolumes?: boolean;
}

/** blobs whose fsync + rename may still be running while the next one streams in */
const MAX_COMMITTING = 4;

export interface ImportResult {
  release: string;
  product: string;
  serial: number;
  digest: string;
  blobs: { total: number; imported: number; skipped: number };
  bytes: { total: number; imported: number };
  /** trust root version used (after following the bundle's chain) */
  rootVersion: number;
  expiredAccepted: boolean;
  volumes: string[];
}

const ENTRY_KINDS: Record<string, string> = {
  link: 'a hard link',
  symlink: 'a symbolic link',
  'character-device': 'a character device',
  'block-device': 'a block device',
  directory: 'a directory',
  fifo: 'a fifo',
  'contiguous-file': 'a contiguous file',
};

/** EPATH for names that could escape a directory or are not regular files: checked on every entry. */
function checkEntry(entry: TarHeader, where: string): string {
  const { name, type } = entry;
  if (name.startsWith('/')) throw new AirlockError('EPATH', `${where}: entry "${name}" is an absolute path`, { bundle: where, entry: name });
  const parts = name.split('/');
  if (name.includes('\\') || name.includes('\0') || parts.some((p) => p === '..' || p === '.' || p === '')) {
    throw new AirlockError('EPATH', `${where}: entry "${name}" is not a safe relative path (tar-slip)`, { bundle: where, entry: name });
  }
  if (type !== 'file') {
    const kind = ENTRY_KINDS[type ?? ''] ?? `of type ${String(type)}`;
    throw new AirlockError('EPATH', `${where}: entry "${name}" is ${kind}; a bundle holds regular files only`, {
      bundle: where,
      entry: name,
      type,
    });
  }
  return name;
}

/** Where a cut bundle ends: inside an entry, or after one (in its padding or the next tar header). */
interface CutAt {
  inside?: string;
  after?: string | null;
  /** the entry that should have come next, when known */
  expecting?: string;
  bytes?: { got: number; size: number };
}

/** How messages name an entry: a blob by its digest, anything else by its name. */
const entryLabel = (name: string): string => {
  const digest = blobDigestOf(name);
  return digest === null ? name : `blob sha256:${digest}`;
};

/** The tar reader says its input ended early. */
const endedEarly = (e: unknown): boolean => e instanceof TarEnded;

function truncated(where: string, at: CutAt): AirlockError {
  const place = at.inside
    ? `inside ${at.inside}${at.bytes ? `, an entry of ${at.bytes.size} bytes` : ''}`
    : at.after
      ? `after ${entryLabel(at.after)}, in its padding or the next tar header${at.expecting ? ` (next expected: ${at.expecting})` : ''}`
      : `in the first tar header${at.expecting ? ` (expected ${at.expecting})` : ''}`;
  return new AirlockError('EINTEGRITY', `${where}: bundle is truncated ${place}`, {
    bundle: where,
    truncated: true,
    ...(at.inside ? { entry: at.inside } : at.after ? { after: at.after } : {}),
    // bytes handed on before the cut (the reader may drop what it buffered, so at most what the file holds)
    ...(at.bytes ? { size: at.bytes.size, read: at.bytes.got } : {}),
    ...(at.expecting ? { expecting: at.expecting } : {}),
  });
}

/** The tar reader's failures (tar-read.ts) → one-line codes; `at` says where the reading was, for a cut bundle. */
function tarError(e: unknown, where: string, at: CutAt = {}): AirlockError {
  // the store wraps a failing source stream as EINTERNAL: look at what the tar parser said
  if (e instanceof AirlockError && e.code !== 'EINTERNAL') return e;
  const cause = e instanceof AirlockError && e.cause !== undefined ? e.cause : e;
  const msg = cause instanceof Error ? cause.message : String(cause);
  if (endedEarly(cause)) return truncated(where, at);
  if (cause instanceof TarHeaderError) {
    return new AirlockError('EMANIFEST', `${where}: not an airlock bundle (tar header unreadable: ${msg.split('.')[0]})`, { bundle: where });
  }
  return toAirlockError(e);
}

async function readSmall(reader: TarReader, entry: TarHeader, max: number, what: string, where: string, code: 'EMANIFEST' = 'EMANIFEST'): Promise<Buffer> {
  const size = entry.size;
  if (size > max) {
    throw new AirlockError(code, `${where}: ${what} is ${size} bytes, more than the ${max}-byte cap`, { bundle: where, size, max });
  }
  const body = await reader.small(size);
  if (body.length < size) throw truncated(where, { inside: what, bytes: { got: body.length, size } });
  return body;
}

export async function importBundle(store: Store, files: string[], opts: ImportOptions): Promise<ImportResult> {
  const volumes = resolveVolumes(files);
  const where = volumes.length === 1 ? volumes[0]! : `${volumes[0]}…(${volumes.length} volumes)`;
  const source = new VolumeReader(volumes, opts.checkVolumes === true);
  const reader = new TarReader(source);
  // blobs read in whose ingest (write drain, digest check, fsync, rename) may still be running
  const committing: Array<Promise<void>> = [];
  let commitFailure: AirlockError | null = null;
  let last: string | null = null; // the entry read last: where a bundle cut between entries ends
  const next = async (expecting?: string): Promise<TarHeader | null> => {
    try {
      const h = await reader.next();
      if (h) last = h.name;
      return h;
    } catch (e) {
      // bytes gone wrong show first in the blob they hit: an earlier blob's failed digest is the cause to name
      await Promise.allSettled(committing);
      if (commitFailure) throw commitFailure;
      throw tarError(e, where, { after: last, ...(expecting === undefined ? {} : { expecting }) });
    }
  };

  try {
    // ---- header ----
    const first = await next();
    if (!first) throw new AirlockError('EMANIFEST', `${where}: empty tar, not an airlock bundle`, { bundle: where });
    const firstName = checkEntry(first, where);
    if (firstName !== HEADER_NAME) {
      throw new AirlockError('EMANIFEST', `${where}: not an airlock bundle (first entry is "${firstName}", expected ${HEADER_NAME})`, {
        bundle: where,
        entry: firstName,
      });
    }
    const header = parseHeader(await readSmall(reader, first, HEADER_MAX_BYTES, HEADER_NAME, where), where);

    // ---- root chain, then the envelope: nothing else may come first ----
    // each root is checked as it streams (a rotation from the last one trusted) and then dropped
    const gate = opts.gate;
    let lastVersion = 0;
    let roots = 0;
    let entry = await next();
    while (entry && entry.name.startsWith(ROOT_PREFIX)) {
      const name = checkEntry(entry, where);
      const version = rootVersionOf(name);
      if (version === null || version <= lastVersion) {
        throw new AirlockError('EMANIFEST', `${where}: entry "${name}" is not the next root of a rising chain (root/N.json)`, {
          bundle: where,
          entry: name,
        });
      }
      if (++roots > MAX_OFFERED_ROOTS) {
        throw new AirlockError('EMANIFEST', `${where}: more than ${MAX_OFFERED_ROOTS} root entries; not an airlock bundle`, { bundle: where });
      }
      lastVersion = version;
      gate.offerRoot(await readSmall(reader, entry, ROOT_MAX_BYTES, name, where), `${where}: ${name}`);
      entry = await next();
    }
    if (!entry) {
      // the header promised a release: a bundle that stops here was cut short, like one that stops inside a blob
      throw new AirlockError('EINTEGRITY', `${where}: bundle is truncated: it ends before ${ENVELOPE_NAME}`, { bundle: where, entry: ENVELOPE_NAME });
    }
    const envName = checkEntry(entry, where);
    if (envName !== ENVELOPE_NAME) {
      throw new AirlockError('EMANIFEST', `${where}: "${envName}" comes before ${ENVELOPE_NAME}; the signed envelope must come first`, {
        bundle: where,
        entry: envName,
      });
    }
    const envelope = await readSmall(reader, entry, opts.maxEnvelopeBytes ?? LIMITS.envelopeBytes, ENVELOPE_NAME, where);

    // ---- trust: the gate, on the local root and the rotations it accepted ----
    const verified = gate.admit(envelope, { accepted: await store.acceptedSerials() });
    const root = verified.root;
    const m = verified.manifest;
    assertReleaseName(m.release);
    const expected = releaseBlobs(m);
    const total = expected.reduce((n, b) => n + b.size, 0);
    const claims: Array<[string, unknown, unknown]> = [
      ['product', header.product, m.product],
      ['release', header.release, m.release],
      ['serial', header.serial, m.serial],
      ['digest', header.digest, verified.digest],
      ['blobs.count', header.blobs.count, expected.length],
      ['blobs.bytes', header.blobs.bytes, total],
    ];
    for (const [field, said, signed] of claims) {
      if (said !== signed) {
        throw new AirlockError('EMANIFEST', `${where}: ${HEADER_NAME} says ${field} ${String(said)}, the signed manifest says ${String(signed)}`, {
          bundle: where,
          field,
        });
      }
    }
    opts.onVerified?.({ header, verified, root });

    // ---- blobs: exactly the expected ones, in manifest order ----
    const position = new Map(expected.map((b, i) => [b.sha256, i]));
    let imported = 0;
    let importedBytes = 0;
    let skipped = 0;
    let doneBytes = 0;
    for (let i = 0; ; i++) {
      const e = await next(i < expected.length ? `blob sha256:${expected[i]!.sha256}` : 'the end-of-archive blocks');
      if (!e) {
        if (i < expected.length) {
          const miss = expected[i]!;
          throw new AirlockError(
            'EINTEGRITY',
            `${where}: bundle ends after ${i} of ${expected.length} blobs; missing sha256:${miss.sha256} (${miss.paths[0] ?? '?'})`,
            { bundle: where, missing: expected.slice(i).map((b) => b.sha256) },
          );
        }
        break;
      }
      const name = checkEntry(e, where);
      const digest = blobDigestOf(name);
      if (i >= expected.length) {
        throw new AirlockError('EINTEGRITY', `${where}: extra entry "${name}" after all ${expected.length} blobs of ${m.release}`, {
          bundle: where,
          entry: name,
        });
      }
      const want = expected[i]!;
      if (digest !== want.sha256) {
        const at = digest === null ? undefined : position.get(digest);
        const why =
          digest === null
            ? `"${name}" is not a blob entry`
            : at === undefined
              ? `blob sha256:${digest} is not in the signed manifest (extra blob)`
              : at < i
                ? `blob sha256:${digest} appears twice (duplicate)`
                : `blob sha256:${digest} is #${at + 1} in the manifest, out of order`;
        throw new AirlockError('EINTEGRITY', `${where}: ${why}; expected ${blobEntryName(want.sha256)} (#${i + 1})`, {
          bundle: where,
          entry: name,
          expected: want.sha256,
        });
      }
      if (e.size !== want.size) {
        throw new AirlockError(
          'EINTEGRITY',
          `${where}: blob sha256:${digest} is ${String(e.size)} bytes in the bundle, the manifest says ${want.size} (${want.paths[0] ?? '?'})`,
          { bundle: where, expected: { sha256: want.sha256, size: want.size }, found: { size: e.size } },
        );
      }
      const current = want.paths[0] ?? want.sha256;
      const label = `blob sha256:${want.sha256} (${current})`;
      const have = await store.stat(want.sha256);
      if (have && have.size === want.size) {
        // already in the store (verified when it got there): read past it
        const got = await reader.body(want.size, (c) => {
          doneBytes += c.length;
          opts.onProgress?.({ bytes: doneBytes, total, current });
        });
        if (got < want.size) throw truncated(where, { inside: label, bytes: { got, size: want.size } });
        skipped++;
        continue;
      }
      const base = doneBytes;
      // the entry read to its end (the tar reader may go on) or failed (its error is the ingest's)
      let readWhole = false;
      let entryDone!: () => void;
      const drained = new Promise<void>((r) => (entryDone = r));
      // each chunk is a view of the reader's buffers, reused once its put (the write) is done
      const feed = async (put: (chunk: Buffer) => Promise<void>): Promise<void> => {
        try {
          const got = await reader.body(want.size, put);
          if (got < want.size) throw truncated(where, { inside: label, bytes: { got, size: want.size } });
          readWhole = true;
        } finally {
          entryDone();
        }
      };
      const job = store
        .ingestFeed({ sha256: want.sha256, size: want.size }, feed, {
          onProgress: (p) => {
            doneBytes = base + p.bytes;
            opts.onProgress?.({ bytes: doneBytes, total, current });
          },
        })
        .then(
          () => {
            imported++;
            importedBytes += want.size;
          },
          (err: unknown) => {
            commitFailure ??= tarError(err, where);
          },
        );
      committing.push(job);
      await Promise.race([drained, job]);
      if (!readWhole) await job; // a cut or unreadable entry: its ingest fails with what the reader said
      if (commitFailure) throw commitFailure;
      doneBytes = base + want.size;
      while (committing.length >= MAX_COMMITTING) await committing.shift();
      if (commitFailure) throw commitFailure;
    }
    // every blob verified, fsynced and renamed into place before the release is recorded
    while (committing.length > 0) await committing.shift();
    if (commitFailure) throw commitFailure;

    await store.putRelease(verified);
    return {
      release: m.release,
      product: m.product,
      serial: m.serial,
      digest: verified.digest,
      blobs: { total: expected.length, imported, skipped },
      bytes: { total, imported: importedBytes },
      rootVersion: root.version,
      expiredAccepted: verified.expiredAccepted,
      volumes,
    };
  } finally {
    // a failed import leaves no temp file behind: every blob still being written is cancelled or done by now
    await Promise.allSettled(committing);
    await reader.settle();
    await source.close();
  }
}
