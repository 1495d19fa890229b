/**
 * The shapes of the signed documents (docs/manifest.md). Everything here is data; parsing and checks live beside it.
 */

export const RELEASE_PAYLOAD_TYPE = 'application/vnd.airlock.release.v1+json';
export const ROOT_PAYLOAD_TYPE = 'application/vnd.airlock.root.v1+json';

/** A DSSE envelope as it travels (JSON). */
export interface Envelope {
  payloadType: string;
  /** base64 of the payload bytes */
  payload: string;
  signatures: EnvelopeSignature[];
}

export interface EnvelopeSignature {
  /** a hint only, never a decision */
  keyid?: string;
  /** base64 ed25519 signature over PAE(payloadType, payload) */
  sig: string;
}

export type ArtifactKind = 'file' | 'deb' | 'gem' | 'oci-image';

export interface BlobRef {
  /** lowercase hex, 64 chars */
  sha256: string;
  size: number;
}

interface ArtifactBase extends BlobRef {
  /** safe relative POSIX path, unique in the manifest */
  path: string;
  kind: ArtifactKind;
  /** node roles that need this artifact; absent/empty = every node */
  roles?: string[];
}

export interface FileArtifact extends ArtifactBase {
  kind: 'file';
  urls: string[];
  /** where the node client puts it: `extract` a tar(.gz) into a dir, or `copy` to a path; absolute inside --root */
  install?: { extract?: string; copy?: string; mode?: string };
}

export interface DebArtifact extends ArtifactBase {
  kind: 'deb';
  urls: string[];
  package: string;
  version: string;
  arch: string;
}

export interface GemArtifact extends ArtifactBase {
  kind: 'gem';
  urls: string[];
  gem: string;
  version: string;
}

/** sha256/size are the image manifest's; `blobs` are its config and layers. */
export interface OciImageArtifact extends ArtifactBase {
  kind: 'oci-image';
  /** e.g. docker.example.com/stackato/router:3.6.2 */
  image: string;
  /** media type of the image manifest as the registry served it */
  mediaType?: string;
  blobs: BlobRef[];
}

export type Artifact = FileArtifact | DebArtifact | GemArtifact | OciImageArtifact;

export interface ReleaseManifest {
  type: 'airlock-release';
  spec: 1;
  product: string;
  release: string;
  serial: number;
  /** RFC 3339 UTC */
  issued: string;
  /** RFC 3339 UTC */
  expires: string;
  artifacts: Artifact[];
}

export interface RootKey {
  keytype: 'ed25519';
  /** base64 of the raw 32 bytes */
  public: string;
}

export interface RoleSpec {
  keyids: string[];
  threshold: number;
}

export interface RootPayload {
  type: 'airlock-root';
  spec: 1;
  version: number;
  expires: string;
  keys: Record<string, RootKey>;
  roles: { root: RoleSpec; release: RoleSpec };
}

/** What a caller remembers per product to refuse rollback. */
export interface AcceptedSerial {
  product: string;
  serial: number;
  /** sha256 hex of the canonical payload bytes */
  digest: string;
}

/** Size caps (bytes / counts). */
export const LIMITS = Object.freeze({
  envelopeBytes: 64 * 1024 * 1024,
  rootBytes: 1024 * 1024,
  artifacts: 200_000,
  blobsPerImage: 1_000,
  urlsPerArtifact: 16,
  pathLength: 1024,
  /** one artifact or blob: 1 TiB */
  artifactSize: 2 ** 40,
  /**
   * signatures in one envelope: a root rotation carries the old and the new
   * root keys (64 each at most). Parsing cost only: threshold.ts verifies at
   * most one signature per role key, whatever the envelope carries.
   */
  signatures: 256,
});
