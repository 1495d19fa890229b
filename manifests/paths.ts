/**
 * Artifact paths (docs/manifest.md "Release manifest schema"): a relative POSIX path with no `..`,
 * no leading `/`, no empty or `.` segment, no backslash or NUL, unique in
 * the manifest. They become URL paths on the cache and file names on nodes,
 * so anything that could climb out of a folder is refused, not cleaned up.
 */
import { AirlockError } from './errors.js';
import { LIMITS } from './types.js';

/** Why `path` is unsafe, or null when it is safe. */
export function unsafePathReason(path: string): string | null {
  if (path === '') return 'is empty';
  const n = path.length;
  if (n > LIMITS.pathLength) return `is longer than ${LIMITS.pathLength} characters`;
  // One pass over the characters (this runs for every artifact of a 100,000-artifact
  // manifest); the reasons are still reported in the order below.
  let nul = false;
  let backslash = false;
  let control = false;
  let segment: string | null = null;
  let segStart = 0;
  for (let i = 0; i <= n; i++) {
    const c = i < n ? path.charCodeAt(i) : 0x2f; // a "/" after the end closes the last segment
    if (c === 0x2f) {
      if (segment === null) {
        const len = i - segStart;
        if (len === 0) segment = 'has an empty segment ("//" or a trailing "/")';
        else if (len <= 2 && path.charCodeAt(segStart) === 0x2e && (len === 1 || path.charCodeAt(segStart + 1) === 0x2e)) {
          segment = len === 1 ? 'has a "." segment' : 'has a ".." segment';
        }
      }
      segStart = i + 1;
    } else if (c === 0) nul = true;
    else if (c === 0x5c) backslash = true;
    // other control characters would smuggle line breaks into logs and apt indexes
    else if (c < 0x20 || c === 0x7f) control = true;
  }
  if (nul) return 'contains a NUL character';
  if (backslash) return 'contains a backslash';
  if (path.charCodeAt(0) === 0x2f) return 'is absolute (starts with "/")';
  if (control) return 'contains a control character';
  return segment;
}

/** EPATH unless a safe relative POSIX path. `where` names the place (e.g. `artifacts[3]`). */
export function assertSafePath(path: string, where?: string): void {
  const reason = typeof path === 'string' ? unsafePathReason(path) : 'is not a string';
  if (reason) {
    throw new AirlockError('EPATH', `${where ? `${where}: ` : ''}path ${JSON.stringify(path)} ${reason}`, {
      path,
      ...(where ? { where } : {}),
    });
  }
}

/**
 * EPATH when two artifacts share a path, or when one path is a folder of
 * another (`a` and `a/b` cannot both be files on a node).
 */
export function assertUniquePaths(paths: readonly string[]): void {
  const seen = new Map<string, number>();
  for (let i = 0; i < paths.length; i++) {
    const p = paths[i]!;
    const first = seen.get(p);
    if (first !== undefined) {
      throw new AirlockError('EPATH', `artifacts[${i}]: path ${JSON.stringify(p)} repeats artifacts[${first}]`, { path: p, index: i });
    }
    seen.set(p, i);
  }
  for (const [p, i] of seen) {
    // each folder of p, shortest first: "a", "a/b" for "a/b/c"
    for (let k = p.indexOf('/'); k !== -1; k = p.indexOf('/', k + 1)) {
      const dir = p.slice(0, k);
      const j = seen.get(dir);
      if (j !== undefined) {
        throw new AirlockError('EPATH', `artifacts[${i}]: path ${JSON.stringify(p)} lies under artifacts[${j}] path ${JSON.stringify(dir)}, which is a file`, {
          path: p,
          index: i,
        });
      }
    }
  }
}
