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
  /** the registry the images came from, normalized (registryOf) */
  registry: string;
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
  /**
   * repository path → registry → repository. A path is served per registry:
   * `docker.io/library/app` and `quay.io/library/app` never share tags or
   * blobs (routes/oci.ts picks one with `?ns=HOST`, see findRepository).
   */
  repositories: Map<string, Map<string, Repository>>;
}

/** Docker Hub, which a reference without a host means; what containerd sends as `ns` for it. */
export const DEFAULT_REGISTRY = 'docker.io';

/** One spelling per registry: no host and Docker Hub's aliases are `docker.io`; host names are case-insensitive. */
export function registryOf(host: string | null): string {
  const h = (host ?? DEFAULT_REGISTRY).toLowerCase();
  return h === 'index.docker.io' || h === 'registry-1.docker.io' ? DEFAULT_REGISTRY : h;
}

/**
 * The repository a request names: with `ns` (containerd's mirror parameter,
 * the upstream registry host), the one from that registry; without it, the
 * only registry that has the path, or else the default registry's. Null
 * when there is none; `choices` lists the registries that do hold the path.
 */
export function findRepository(cat: Catalog, name: string, ns: string | null): { repo: Repository | null; choices: string[] } {
  const byRegistry = cat.repositories.get(name);
  const choices = byRegistry ? [...byRegistry.keys()].sort() : [];
  if (!byRegistry) return { repo: null, choices };
  if (ns !== null) return { repo: byRegistry.get(registryOf(ns)) ?? null, choices };
  if (byRegistry.size === 1) return { repo: [...byRegistry.values()][0]!, choices };
  return { repo: byRegistry.get(DEFAULT_REGISTRY) ?? null, choices };
}

/** Repository paths in byte order, those of one registry when `ns` is given (`/v2/_catalog`). */
export function repositoryNames(cat: Catalog, ns: string | null): string[] {
  const names: string[] = [];
  for (const [name, byRegistry] of cat.repositories) if (ns === null || byRegistry.has(registryOf(ns))) names.push(name);
  return names.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
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
  const registry = registryOf(ref.host);
  let byRegistry = cat.repositories.get(ref.path);
  if (!byRegistry) {
    byRegistry = new Map();
    cat.repositories.set(ref.path, byRegistry);
  }
  let repo = byRegistry.get(registry);
  if (!repo) {
    repo = { name: ref.path, registry, tags: new Map(), manifests: new Map(), blobs: new Map() };
    byRegistry.set(registry, repo);
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
