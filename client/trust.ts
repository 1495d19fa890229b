/**
 * The node's own trust root. The operator gives `--trust ROOT.json` (out of
 * band) once; a copy is kept at `STATE/trust/root.json` and is what the node
 * trusts from then on. A newer root given later is accepted only when the
 * kept one vouches for it (TUF rotation: version N+1 signed by both
 * thresholds); nothing ever comes from the cache.
 */
import { readFileSync } from 'node:fs';
import { AirlockError } from '../manifests/errors.js';
import { loadTrustedRoot, readSelfSignedRoot, updateTrustedRoot, type TrustedRoot } from '../manifests/index.js';
import type { Output } from '../storage/support/output.js';
import { writeFileAtomic, type StatePaths } from './state.js';

function readBytes(path: string, what: string): Buffer | null {
  try {
    return readFileSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new AirlockError('EUSAGE', `${what} ${path}: cannot read: ${(e as Error).message}`, { path });
  }
}

export function loadNodeTrust(
  given: string | null,
  state: StatePaths,
  now: Date,
  out: Output,
  acceptExpiredUntil: Date | null = null,
): TrustedRoot {
  const kept = readBytes(state.trust, 'kept trust root');
  const offered = given ? readBytes(given, '--trust') : null;
  if (given && !offered) throw new AirlockError('EUSAGE', `--trust ${given}: no such file`, { path: given });
  if (!kept && !offered) {
    throw new AirlockError('EUSAGE', `no trust root: pass --trust ROOT.json once (a copy is kept in ${state.trust}) or set "trust" in the config`);
  }
  const clock = { acceptExpiredUntil };
  if (!kept) {
    const root = loadTrustedRoot(offered!, now, clock);
    writeFileAtomic(state.trust, offered!);
    out.note(`trust root version ${root.version} kept in ${state.trust}`);
    return root;
  }
  // the kept root may itself be expired now; a rotation below can still replace it
  const keptRoot = readSelfSignedRoot(kept, state.trust);
  if (!offered || offered.equals(kept)) return loadTrustedRoot(kept, now, clock);
  const offeredVersion = readSelfSignedRoot(offered, given!).version;
  if (offeredVersion <= keptRoot.version) {
    if (offeredVersion === keptRoot.version) {
      throw new AirlockError(
        'ESIGNATURE',
        `--trust ${given}: version ${offeredVersion} differs from the kept root of the same version (${state.trust}); refusing both`,
        { given, kept: state.trust },
      );
    }
    out.warn(`--trust ${given} is version ${offeredVersion}, older than the kept root version ${keptRoot.version}; using the kept one`);
    return loadTrustedRoot(kept, now, clock);
  }
  const newer = updateTrustedRoot(keptRoot, [offered], now, clock);
  writeFileAtomic(state.trust, newer.bytes);
  out.note(`trust root rotated from version ${keptRoot.version} to ${newer.version}`);
  return newer;
}
