/**
 * Image references read the way Docker reads them: `host:5000/a/b:tag`,
 * `a/b@sha256:…`, `ubuntu`. The first path component is a registry host
 * when it has a dot or a port or is `localhost`; a digest wins over a tag.
 * One parser for the publisher (`manifest build`), staging (which registry
 * to ask) and serving (which repository name the cache answers to).
 */
import { AirlockError, type ErrorCode } from './errors.js';

export interface ImageRef {
  /** registry host[:port] as written, or null when the reference names none */
  host: string | null;
  /** repository path as written, without host: `stackato/router` */
  path: string;
  tag: string | null;
  /** `sha256:<hex>` when the reference pins one */
  digest: string | null;
}

/** Repository names as the distribution spec allows them (lowercase path components). */
export const REPOSITORY_NAME = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/;
export const TAG_NAME = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;

export function parseImageRef(text: string, code: ErrorCode = 'EUSAGE'): ImageRef {
  const bad = (why: string): never => {
    throw new AirlockError(code, `image reference "${text}": ${why}`, { image: text });
  };
  let rest = text.trim();
  let digest: string | null = null;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!/^sha256:[0-9a-f]{64}$/.test(digest)) bad('digest must be sha256:<64 hex>');
  }
  let tag: string | null = null;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG_NAME.test(tag)) bad(`bad tag "${tag}"`);
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
  if (!REPOSITORY_NAME.test(rest)) bad(`bad repository "${rest}"`);
  return { host, path: rest, tag, digest };
}
