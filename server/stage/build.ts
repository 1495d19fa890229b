/**
 * `airlock manifest build SOURCES.yml`: the publisher's side of staging.
 * From a YAML list of upstream URLs per kind and image references by tag,
 * fetch each file (through the same proxy code as `stage`), hash it, read
 * deb fields with `dpkg-deb -f` and gem name/version from the file name when
 * not given, resolve image tags to digests (an index to linux/amd64) and
 * list their blobs, and return the payload for `manifest sign`.
 *
 * SOURCES.yml:
 *   product: stackato
 *   release: 3.6.2
 *   serial: 17
 *   expires: 2027-03-01          # optional: default issued + 90 days
 *   files:  [ {url, path?, urls?, roles?, install?} | URL ]
 *   debs:   [ {url, path?, urls?, roles?, package?, version?, arch?} | URL ]
 *   gems:   [ {url, path?, urls?, roles?, gem?, version?} | URL ]
 *   images: [ {image, path?, roles?} | REF ]
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Transform } from 'node:stream';
import { promisify } from 'node:util';
import { parseDocument } from 'yaml';
import { AirlockError, LIMITS, validateReleaseManifest, type Artifact, type ReleaseManifest } from '../../manifests/index.js';
import { statusError, type HttpClient } from '../../storage/index.js';
import type { Output } from '../../common/output.js';
import { isIndex, manifestBlobs, parseImageRef, pickPlatform, type RegistryClient } from './registry.js';

const run = promisify(execFile);

interface UrlEntry {
  url?: string;
  urls?: string[];
  path?: string;
  roles?: string[];
  install?: { extract?: string; copy?: string; mode?: string };
  package?: string;
  version?: string;
  arch?: string;
  gem?: string;
}

interface ImageEntry {
  image?: string;
  path?: string;
  roles?: string[];
}

interface Sources {
  product?: string;
  release?: string;
  serial?: number;
  issued?: string;
  expires?: string;
  files?: Array<string | UrlEntry>;
  debs?: Array<string | UrlEntry>;
  gems?: Array<string | UrlEntry>;
  images?: Array<string | ImageEntry>;
}

const rfc3339 = (d: Date): string => d.toISOString().replace(/\.\d{3}Z$/, 'Z');

export async function readSources(file: string): Promise<Sources> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new AirlockError('EUSAGE', `${file}: cannot read: ${(e as Error).message}`, { file });
  }
  const doc = parseDocument(text, { uniqueKeys: true });
  if (doc.errors.length > 0) throw new AirlockError('EUSAGE', `${file}: invalid YAML: ${doc.errors[0]!.message.split('\n')[0]}`, { file });
  const v = doc.toJS() as unknown;
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new AirlockError('EUSAGE', `${file}: expected a mapping at the top level`, { file });
  const known = new Set(['product', 'release', 'serial', 'issued', 'expires', 'files', 'debs', 'gems', 'images']);
  for (const k of Object.keys(v)) if (!known.has(k)) throw new AirlockError('EUSAGE', `${file}: unknown key "${k}" (known: ${[...known].join(', ')})`, { file, key: k });
  return v as Sources;
}

interface Fetched {
  sha256: string;
  size: number;
  file: string;
}

/** Downloads `url` to `dir`, hashing on the way. */
async function fetchToFile(http: HttpClient, url: string, dir: string): Promise<Fetched> {
  const res = await http.request(url, { maxLength: LIMITS.artifactSize + 1 });
  if (res.status !== 200) {
    res.body.resume();
    throw statusError(res.status, url);
  }
  const hash = createHash('sha256');
  let size = 0;
  const file = join(dir, `${Math.random().toString(36).slice(2)}-${basename(new URL(url).pathname) || 'file'}`);
  await pipeline(
    res.body,
    new Transform({
      transform(chunk: Buffer, _e, cb) {
        hash.update(chunk);
        size += chunk.length;
        cb(null, chunk);
      },
    }),
    createWriteStream(file),
  );
  return { sha256: hash.digest('hex'), size, file };
}

async function debFields(file: string, url: string): Promise<{ package: string; version: string; arch: string }> {
  try {
    const { stdout } = await run('dpkg-deb', ['-f', file, 'Package', 'Version', 'Architecture']);
    const f: Record<string, string> = {};
    for (const line of stdout.split('\n')) {
      const m = /^(\w+):\s*(.+)$/.exec(line);
      if (m) f[m[1]!] = m[2]!.trim();
    }
    if (!f.Package || !f.Version || !f.Architecture) throw new Error('control fields missing');
    return { package: f.Package, version: f.Version, arch: f.Architecture };
  } catch (e) {
    throw new AirlockError('EUSAGE', `${url}: cannot read deb fields with dpkg-deb (${(e as Error).message.split('\n')[0]}); give package/version/arch`, { url });
  }
}

/** `rack-2.2.8.gem`, `nokogiri-1.15.0-x86_64-linux.gem` */
export function gemFromFileName(name: string): { gem: string; version: string } | null {
  const m = /^(.+?)-(\d[\w.]*)(?:-[\w-]+)?\.gem$/.exec(name);
  return m ? { gem: m[1]!, version: m[2]! } : null;
}

function entryOf(e: string | UrlEntry, kind: string, i: number): UrlEntry & { url: string } {
  const o: UrlEntry = typeof e === 'string' ? { url: e } : e;
  const url = o.url ?? o.urls?.[0];
  if (!url) throw new AirlockError('EUSAGE', `${kind}[${i}]: needs "url" (or "urls")`, { kind, index: i });
  return { ...o, url };
}

export async function buildPayload(
  sources: Sources,
  deps: { http: HttpClient; registry: RegistryClient; out: Output; now?: Date },
): Promise<ReleaseManifest> {
  const { http, registry, out } = deps;
  for (const k of ['product', 'release'] as const) {
    if (typeof sources[k] !== 'string' || !sources[k]) throw new AirlockError('EUSAGE', `sources: "${k}" is required`, { key: k });
  }
  if (!Number.isSafeInteger(sources.serial) || (sources.serial ?? 0) < 1) throw new AirlockError('EUSAGE', 'sources: "serial" must be a positive integer', { key: 'serial' });
  const issued = sources.issued ? new Date(sources.issued) : new Date(Math.floor((deps.now ?? new Date()).getTime() / 1000) * 1000);
  const expires = sources.expires ? new Date(/^\d{4}-\d{2}-\d{2}$/.test(sources.expires) ? `${sources.expires}T00:00:00Z` : sources.expires) : new Date(issued.getTime() + 90 * 86_400_000);
  if (Number.isNaN(issued.getTime()) || Number.isNaN(expires.getTime())) throw new AirlockError('EUSAGE', 'sources: "issued"/"expires" must be dates', {});

  const artifacts: Artifact[] = [];
  const dir = await mkdtemp(join(tmpdir(), 'airlock-build-'));
  try {
    const kinds = [
      ['files', 'file'],
      ['debs', 'deb'],
      ['gems', 'gem'],
    ] as const;
    for (const [key, kind] of kinds) {
      for (const [i, raw] of (sources[key] ?? []).entries()) {
        const e = entryOf(raw, key, i);
        const urls = e.urls && e.urls.length > 0 ? e.urls : [e.url];
        const name = basename(new URL(e.url).pathname);
        out.note(`fetching ${e.url}`, { url: e.url });
        const f = await fetchToFile(http, e.url, dir);
        const base = { path: e.path ?? `${key}/${name}`, sha256: f.sha256, size: f.size, urls, ...(e.roles ? { roles: e.roles } : {}) };
        if (kind === 'file') artifacts.push({ ...base, kind, ...(e.install ? { install: e.install } : {}) });
        else if (kind === 'deb') {
          const d = e.package && e.version && e.arch ? { package: e.package, version: e.version, arch: e.arch } : await debFields(f.file, e.url);
          artifacts.push({ ...base, kind, ...d });
        } else {
          const g = e.gem && e.version ? { gem: e.gem, version: e.version } : gemFromFileName(name);
          if (!g) throw new AirlockError('EUSAGE', `gems[${i}]: cannot read name and version from "${name}"; give gem and version`, { url: e.url });
          artifacts.push({ ...base, kind, ...g });
        }
        await rm(f.file, { force: true });
      }
    }
    for (const [i, raw] of (sources.images ?? []).entries()) {
      const e: ImageEntry = typeof raw === 'string' ? { image: raw } : raw;
      if (!e.image) throw new AirlockError('EUSAGE', `images[${i}]: needs "image"`, { index: i });
      const ref = parseImageRef(e.image);
      out.note(`resolving ${e.image}`, { image: e.image });
      let m = await registry.manifest(ref, ref.digest ?? ref.tag ?? 'latest');
      if (isIndex(m.mediaType)) {
        const pick = pickPlatform(m.body, e.image);
        m = await registry.manifest(ref, pick.digest);
        if (m.digest !== pick.digest) {
          throw new AirlockError('EINTEGRITY', `${e.image}: linux/amd64 manifest is ${m.digest}, the index says ${pick.digest}`, { image: e.image });
        }
      }
      artifacts.push({
        path: e.path ?? `images/${ref.repository}`,
        kind: 'oci-image',
        sha256: m.digest.replace(/^sha256:/, ''),
        size: m.body.length,
        image: e.image,
        mediaType: m.mediaType,
        blobs: manifestBlobs(m.body, e.image),
        ...(e.roles ? { roles: e.roles } : {}),
      });
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  const payload: ReleaseManifest = {
    type: 'airlock-release',
    spec: 1,
    product: sources.product!,
    release: sources.release!,
    serial: sources.serial!,
    issued: rfc3339(issued),
    expires: rfc3339(expires),
    artifacts,
  };
  // the same schema `manifest sign` enforces: report a mistake now, not at signing
  return validateReleaseManifest(payload);
}
