/**
 * What the cache node may serve, derived from the staged releases: files by
 * release and path, artifact URLs (proxy mode), and OCI repositories with
 * their tags, manifests and blobs. Serving only ever looks things up here, so
 * nothing outside a verified manifest is reachable by name.
 *
 * The store is the source of truth; the catalog is rebuilt when it is older
 * than `ttlMs` (another process may stage while we serve) or invalidated.
 */
import type { Artifact, OciImageArtifact } from '../../manifests/types.js';
import type { Store, StoredRelease } from '../../storage/index.js';
import { parseImageRef } from '../../manifests/image-ref.js';

export interface ImageEntry {
  release: string;
  serial: number;
  artifact: OciImageArtifact;
}

export interface Repository {
  name: string;
  /** tag → image; across releases the highest serial wins */
  tags: Map<string, ImageEntry>;
  /** manifest digest (hex) → image */
  manifests: Map<string, ImageEntry>;
  /** every blob hex this repository's images list (config, layers, manifests) → size */
  blobs: Map<string, number>;
}

export interface Catalog {
  builtAt: number;
  releases: Map<string, StoredRelease>;
  /** release → manifest path → artifact */
  files: Map<string, Map<string, Artifact>>;
  /** normalized artifact URL → artifact (first release that lists it) */
  urls: Map<string, Artifact>;
  repositories: Map<string, Repository>;
}

/** One spelling per URL, so `http://h:80/a` and `http://h/a` meet. */
export function normalizeUrl(url: string): string | null {
  try {
    const u = new URL(url);
    u.hash = '';
    return u.href;
  } catch {
    return null;
  }
}

export function buildCatalog(releases: StoredRelease[], now = Date.now()): Catalog {
  const sorted = [...releases].sort((a, b) => a.serial - b.serial);
  const cat: Catalog = { builtAt: now, releases: new Map(), files: new Map(), urls: new Map(), repositories: new Map() };
  for (const rel of sorted) {
    cat.releases.set(rel.release, rel);
    const files = new Map<string, Artifact>();
    cat.files.set(rel.release, files);
    for (const a of rel.manifest.artifacts) {
      files.set(a.path, a);
      if (a.kind === 'oci-image') {
        addImage(cat, rel, a);
        continue;
      }
      for (const url of a.urls) {
        const key = normalizeUrl(url);
        if (key && !cat.urls.has(key)) cat.urls.set(key, a);
      }
    }
  }
  return cat;
}

function addImage(cat: Catalog, rel: StoredRelease, a: OciImageArtifact): void {
  const ref = parseImageRef(a.image, 'EMANIFEST');
  let repo = cat.repositories.get(ref.path);
  if (!repo) {
    repo = { name: ref.path, tags: new Map(), manifests: new Map(), blobs: new Map() };
    cat.repositories.set(ref.path, repo);
  }
  const entry: ImageEntry = { release: rel.release, serial: rel.serial, artifact: a };
  if (ref.tag) repo.tags.set(ref.tag, entry);
  repo.manifests.set(a.sha256, entry);
  repo.blobs.set(a.sha256, a.size);
  for (const b of a.blobs) repo.blobs.set(b.sha256, b.size);
}

export interface CatalogSource {
  get(): Promise<Catalog>;
  invalidate(): void;
}

export function catalogSource(store: Store, ttlMs: number, clock: () => number = Date.now): CatalogSource {
  let current: Catalog | null = null;
  let stamp = -1;
  let building: Promise<Catalog> | null = null;
  return {
    async get() {
      // Fresh while young AND no release was stored or removed since (one stat):
      // a release staged by another process is served at once, not after the TTL.
      const now = await store.releasesStamp();
      if (current && clock() - current.builtAt < ttlMs && now === stamp) return current;
      // one rebuild at a time; concurrent requests share it
      building ??= store
        .listReleases()
        .then((rels) => {
          stamp = now;
          return (current = buildCatalog(rels, clock()));
        })
        .finally(() => {
          building = null;
        });
      return building;
    },
    invalidate() {
      current = null;
    },
  };
}
