/**
 * The shapes the test world hands out. Artifacts reuse the manifest's own
 * types (manifests/types.ts) so a test can put them in a release as they are.
 */
import type { BlobRef, DebArtifact, FileArtifact, GemArtifact, OciImageArtifact } from '../../manifests/types.js';

export type UpstreamName = 'debs' | 'gems' | 'files' | 'registry';

/** The fake host names only the world's squid resolves (its hosts_file). */
export const UPSTREAM_HOSTS: Readonly<Record<UpstreamName, string>> = Object.freeze({
  debs: 'debs.upstream.test',
  gems: 'gems.upstream.test',
  files: 'files.upstream.test',
  registry: 'registry.upstream.test',
});

export interface Upstream {
  /** base URL through the fake name, e.g. http://debs.upstream.test:41234 (reachable only via the proxy) */
  url: string;
  /** the same server at http://127.0.0.1:PORT, to bypass the proxy on purpose */
  direct: string;
  host: string;
  port: number;
}

/** An artifact as the manifest lists it, plus where the world keeps its bytes. */
export type WorldArtifact = (DebArtifact | GemArtifact | FileArtifact) & {
  /** the file nginx serves (compare bytes against it) */
  localPath: string;
  /** URL on 127.0.0.1 (no proxy) */
  directUrl: string;
  /** true for files asked for with `extraFiles` */
  extra?: boolean;
};

export interface PushedManifest {
  /** e.g. registry.upstream.test:41235/demo/app:1.0 */
  reference: string;
  tag: string;
  /** sha256:… of the manifest bytes as served */
  digest: string;
  size: number;
  /** Content-Type the registry answers with */
  mediaType: string;
}

export interface WorldImage extends PushedManifest {
  /** repository inside the registry, `demo/app` */
  repository: string;
  /** config first, then layers (what an oci-image artifact lists as `blobs`) */
  blobs: BlobRef[];
  config: BlobRef & { mediaType: string };
  layers: Array<BlobRef & { mediaType: string }>;
  /** the same image pushed as a Docker v2 schema 2 manifest (`:1.0-docker`) */
  docker: PushedManifest & { blobs: BlobRef[] };
  /** an OCI image index (`:1.0-index`) listing the amd64 manifest above and an arm64 sibling */
  index: PushedManifest & { manifests: Array<{ digest: string; size: number; platform: string }> };
  /** the manifest as an `oci-image` release artifact (path `images/demo/app`) */
  artifact: OciImageArtifact;
}

export interface SquidLogEntry {
  /** e.g. TCP_MISS, TCP_TUNNEL */
  action: string;
  status: number;
  bytes: number;
  method: string;
  url: string;
}

export interface ExtraFilesSpec {
  count: number;
  /** bytes per file */
  size: number;
}

export interface WorldOptions {
  /** folder to build the world in (default: a fresh mkdtemp under os.tmpdir()) */
  dir?: string;
  /** size of the big random file `files/blob.bin` (default 1 MiB) */
  bigFileSize?: number;
  /** generated random files for benchmarks: files/extra/extra-<size>-<i>.bin */
  extraFiles?: ExtraFilesSpec[];
  /** keep the folder after stop() (a folder given as `dir` is always kept) */
  keep?: boolean;
  /** skip the registry and the image (faster when a suite needs no images) */
  registry?: boolean;
}

/** What world.json holds (everything but the functions). */
export interface WorldInfo {
  dir: string;
  /** http://127.0.0.1:PORT of squid */
  proxyUrl: string;
  /** proxy variables for a child process (both cases, no_proxy emptied) */
  proxyEnv: Record<string, string>;
  upstreams: Record<UpstreamName, Upstream>;
  /** HOST:PORT for `--insecure-registry` (the fake name) */
  registryAddress: string;
  artifacts: WorldArtifact[];
  image: WorldImage | null;
  squidLogPath: string;
}

export interface World extends WorldInfo {
  /** squid's access log so far, parsed */
  squidLog(): SquidLogEntry[];
  /** wait until squid logged an entry that matches (it writes after the reply ends) */
  waitForSquidLog(match: (e: SquidLogEntry) => boolean, timeoutMs?: number): Promise<SquidLogEntry>;
  /** stop nginx and the registry (the proxy stays up), for "upstream is gone" tests */
  stopUpstreams(): Promise<void>;
  /** start them again on the same ports, same content */
  startUpstreams(): Promise<void>;
  /** stop every server and wait until its ports are closed */
  stop(): Promise<void>;
}
