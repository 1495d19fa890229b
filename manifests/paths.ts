/**
 * Artifact paths (DESIGN.md "Paths"): a relative POSIX path with no `..`,
 * no leading `/`, no empty or `.` segment, no backslash or NUL, unique in
 * the manifest. They become URL paths on the cache and file names on nodes,
 * so anything that could climb out of a folder is refused, not cleaned up.
 */
import { AirlockError } from './errors.js';
import { LIMITS } from './types.js';

/** Why `path` is unsafe, or null when it is safe. */
export function unsafePathReason(path: string): string | null {
  if (path === '') return 'is empty';
  if (path.length > LIMITS.pathLength) return `is longer than ${LIMITS.pathLength} characters`;
  if (path.includes('\0')) return 'contains a NUL character';
  if (path.includes('\\')) return 'contains a backslash';
  if (path.startsWith('/')) return 'is absolute (starts with "/")';
  // other control characters would smuggle line breaks into logs and apt indexes
  if (/[\u0001-\u001f\u007f]/.test(path)) return 'contains a control character';
  for (const segment of path.split('/')) {
    if (segment === '') return 'has an empty segment ("//" or a trailing "/")';
    if (segment === '.') return 'has a "." segment';
    if (segment === '..') return 'has a ".." segment';
  }
  return null;
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
  paths.forEach((p, i) => {
    const first = seen.get(p);
    if (first !== undefined) {
      throw new AirlockError('EPATH', `artifacts[${i}]: path ${JSON.stringify(p)} repeats artifacts[${first}]`, { path: p, index: i });
    }
    seen.set(p, i);
  });
  for (const [p, i] of seen) {
    const parts = p.split('/');
    for (let k = 1; k < parts.length; k++) {
      const dir = parts.slice(0, k).join('/');
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
