/**
 * Splits an image reference the way Docker does, so the cache serves
 * `docker.example.com/stackato/router:3.6.2` as repository `stackato/router`
 * with tag `3.6.2`: the first component is a registry host when it has a dot
 * or a port or is `localhost`; a digest (`@sha256:…`) wins over a tag.
 */
export interface ImageRef {
  /** registry host (and port), or null when the reference names none */
  host: string | null;
  /** repository path without host: `stackato/router` */
  repository: string;
  /** the tag, or null when the reference has none */
  tag: string | null;
  /** `sha256:<hex>` when the reference pins one */
  digest: string | null;
}

/** Repository names as the distribution spec allows them (lowercase path components). */
export const REPOSITORY_NAME = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/;
export const TAG_NAME = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;

export function parseImageRef(image: string): ImageRef {
  let rest = image.trim();
  let digest: string | null = null;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
  }
  let tag: string | null = null;
  const lastSlash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  if (colon > lastSlash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
  }
  let host: string | null = null;
  const firstSlash = rest.indexOf('/');
  if (firstSlash > 0) {
    const first = rest.slice(0, firstSlash);
    if (first.includes('.') || first.includes(':') || first === 'localhost') {
      host = first;
      rest = rest.slice(firstSlash + 1);
    }
  }
  return { host, repository: rest, tag, digest };
}
