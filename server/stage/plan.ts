/**
 * What staging a release would do, computed without touching the network or
 * the store's contents: which blobs are missing, from which URLs, how many
 * bytes, how much free space that needs on `cache_dir`'s filesystem, and the
 * table of upstream host:port the site's proxy and firewall must allow.
 * `airlock stage --plan` prints exactly this; `stage` acts on it.
 */
import { releaseBlobs, type ArtifactKind, type OciImageArtifact, type ReleaseManifest } from '../../manifests/index.js';
import { hostPort } from '../../storage/index.js';
import { freeDiskBytes } from '../../storage/support/probe.js';
import type { HttpClient } from '../../storage/index.js';
import { parseImageRef, type RegistryClient } from './registry.js';

export interface PlannedBlob {
  sha256: string;
  size: number;
  paths: string[];
  kind: ArtifactKind;
  /** tried in order */
  urls: string[];
  /** set when this blob is an image manifest: its listed blobs are checked before it is stored */
  image?: OciImageArtifact;
}

export interface HostRow {
  /** host:port */
  host: string;
  scheme: string;
  /** the proxy URL that carries it, or "direct" */
  via: string;
  files: number;
  bytes: number;
  /** another airlock cache (`mirrors`), asked first for every file, always directly */
  mirror?: boolean;
}

export interface StagePlan {
  release: string;
  product: string;
  blobs: PlannedBlob[];
  missing: PlannedBlob[];
  present: number;
  bytes: { total: number; missing: number };
  space: { needed: number; free: number; margin: number; filesystemOf: string };
  hosts: HostRow[];
  /** registries may send clients to a token realm and to blob storage on other hosts */
  registries: string[];
}

/** Free-space margin over the missing bytes: index, partial files, filesystem slack. */
export function spaceMargin(missing: number): number {
  return Math.max(64 * 2 ** 20, Math.ceil(missing * 0.02));
}

export interface PlanInputs {
  manifest: ReleaseManifest;
  cacheDir: string;
  /** true when the store already holds this digest */
  has: (sha256: string) => Promise<boolean>;
  http: HttpClient;
  registry: RegistryClient;
  /** other airlock caches asked first (config `mirrors`, `--mirror`) */
  mirrors?: readonly string[];
  /** blobs kept elsewhere (an S3 bucket): cache_dir holds only the partial files of this many downloads at a time */
  partialsOnly?: number;
}

/** Every blob of the release with its source URLs (an image's blobs come from its registry, by digest). */
export function blobSources(manifest: ReleaseManifest, registry: RegistryClient): PlannedBlob[] {
  const urls = new Map<string, { kind: ArtifactKind; urls: string[]; image?: OciImageArtifact }>();
  const add = (sha: string, kind: ArtifactKind, list: string[], image?: OciImageArtifact): void => {
    const known = urls.get(sha);
    if (!known) urls.set(sha, { kind, urls: [...list], image });
    else for (const u of list) if (!known.urls.includes(u)) known.urls.push(u);
  };
  for (const a of manifest.artifacts) {
    if (a.kind === 'oci-image') {
      const ref = parseImageRef(a.image);
      add(a.sha256, a.kind, [registry.manifestUrl(ref, `sha256:${a.sha256}`)], a);
      for (const b of a.blobs) add(b.sha256, a.kind, [registry.blobUrl(ref, `sha256:${b.sha256}`)]);
    } else add(a.sha256, a.kind, a.urls);
  }
  return releaseBlobs(manifest).map((b) => {
    const src = urls.get(b.sha256)!;
    return { sha256: b.sha256, size: b.size, paths: b.paths, kind: src.kind, urls: src.urls, image: src.image };
  });
}

/** store lookups in flight while planning */
const HAS_CONCURRENCY = 16;

export async function planStage(inputs: PlanInputs): Promise<StagePlan> {
  const { manifest } = inputs;
  const blobs = blobSources(manifest, inputs.registry);
  // several lookups at a time: a store in S3 answers each with a round trip (HeadObject)
  const held = new Array<boolean>(blobs.length);
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < blobs.length) {
      const i = next++;
      held[i] = await inputs.has(blobs[i]!.sha256);
    }
  };
  await Promise.all(Array.from({ length: Math.min(HAS_CONCURRENCY, blobs.length) }, lane));
  const missing = blobs.filter((_, i) => !held[i]);
  const missingBytes = missing.reduce((n, b) => n + b.size, 0);
  const rows = new Map<string, HostRow>();
  for (const b of missing) {
    b.urls.forEach((u, i) => {
      const url = new URL(u);
      const key = `${url.protocol}//${hostPort(url)}`;
      let row = rows.get(key);
      if (!row) {
        const proxy = inputs.http.proxyFor(u);
        row = { host: hostPort(url), scheme: url.protocol.replace(':', ''), via: proxy ? proxy.origin : 'direct', files: 0, bytes: 0 };
        rows.set(key, row);
      }
      // bytes are counted on the first URL (the one normally used); fallbacks still need to be allowed
      if (i === 0) {
        row.files += 1;
        row.bytes += b.size;
      }
    });
  }
  const registries = [
    ...new Set(manifest.artifacts.filter((a): a is OciImageArtifact => a.kind === 'oci-image').map((a) => hostPort(inputs.registry.origin(parseImageRef(a.image))))),
  ];
  // the mirrors come first: every missing file is asked of each, directly (their bytes count there too)
  const mirrorRows: HostRow[] = [];
  for (const m of inputs.mirrors ?? []) {
    const url = new URL(m);
    if (mirrorRows.some((r) => r.host === hostPort(url) && r.scheme === url.protocol.replace(':', ''))) continue;
    mirrorRows.push({ host: hostPort(url), scheme: url.protocol.replace(':', ''), via: 'direct', files: missing.length, bytes: missingBytes, mirror: true });
  }
  const { free, at } = await freeDiskBytes(inputs.cacheDir);
  // with blobs in a bucket the local disk needs room for the biggest downloads in flight, not the release
  const local = inputs.partialsOnly
    ? missing
        .map((b) => b.size)
        .sort((a, b) => b - a)
        .slice(0, inputs.partialsOnly)
        .reduce((n, s) => n + s, 0)
    : missingBytes;
  const margin = spaceMargin(local);
  return {
    release: manifest.release,
    product: manifest.product,
    blobs,
    missing,
    present: blobs.length - missing.length,
    bytes: { total: blobs.reduce((n, b) => n + b.size, 0), missing: missingBytes },
    space: { needed: missing.length === 0 ? 0 : local + margin, free, margin, filesystemOf: at },
    hosts: [...mirrorRows, ...[...rows.values()].sort((a, b) => a.host.localeCompare(b.host))],
    registries,
  };
}
