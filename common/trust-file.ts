/**
 * Reads a trust root (root.json) from a local file: the one input that must
 * come out of band. A URL is refused instead of fetched: whoever answers it
 * would choose the keys everything else is checked against.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { AirlockError } from '../manifests/errors.js';
import { LIMITS } from '../manifests/types.js';

const URL_LIKE = /^[a-z][a-z0-9+.-]*:\/\//i;

/** The bytes of a local root.json (at most LIMITS.rootBytes); null only when `missingOk` and the file does not exist. */
export function readTrustFile(path: string, opts: { what?: string; missingOk: true }): Buffer | null;
export function readTrustFile(path: string, opts?: { what?: string; missingOk?: false }): Buffer;
export function readTrustFile(path: string, opts: { what?: string; missingOk?: boolean } = {}): Buffer | null {
  const what = opts.what ?? 'trust root';
  if (URL_LIKE.test(path)) {
    throw new AirlockError(
      'EUSAGE',
      `${what} ${path}: must be a local file got out of band, not a URL (download it, check it, then pass its path)`,
      { path },
    );
  }
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' && opts.missingOk) return null;
    const why = code === 'ENOENT' ? 'no such file' : `cannot read: ${code ?? (e as Error).message}`;
    throw new AirlockError('EUSAGE', `${what} ${path}: ${why}`, { path });
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new AirlockError('EUSAGE', `${what} ${path}: not a regular file`, { path });
    if (st.size > LIMITS.rootBytes) {
      throw new AirlockError('EMANIFEST', `${what} ${path}: ${st.size} bytes, larger than the ${LIMITS.rootBytes}-byte cap`, { path });
    }
    const buf = Buffer.alloc(st.size);
    let n = 0;
    while (n < buf.length) {
      const r = readSync(fd, buf, n, buf.length - n, n);
      if (r === 0) break;
      n += r;
    }
    return buf.subarray(0, n);
  } catch (e) {
    if (e instanceof AirlockError) throw e;
    throw new AirlockError('EUSAGE', `${what} ${path}: cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { path });
  } finally {
    closeSync(fd);
  }
}
