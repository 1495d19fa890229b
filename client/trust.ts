/**
 * The node's own trust root. The operator gives `--trust ROOT.json` (a local
 * file, out of band) once; a copy is kept at `STATE/trust/root.json` and is
 * what the node trusts from then on. A newer root given later is only offered
 * to the trust gate, which accepts it when the kept one vouches for it (TUF
 * rotation: version N+1 signed by both thresholds); nothing ever comes from
 * the cache. The copy is written only after a release passed the gate.
 */
import { readSelfSignedRoot, type GateResult, type OfferedRoot } from '../manifests/index.js';
import { AirlockError } from '../manifests/errors.js';
import type { Output } from '../common/output.js';
import { readTrustFile } from '../common/trust-file.js';
import { writeStateFile, type StatePaths } from './state.js';

export interface NodeTrust {
  /** what the gate opens on: the kept root, or on a first run the given one */
  localRoot: Buffer;
  /** a newer --trust offered as a rotation from the kept root */
  offeredRoots: OfferedRoot[];
  /** after the gate: keep the root it verified against (first run, or a rotation) */
  keep(result: GateResult): void;
}

export function nodeTrust(given: string | null, state: StatePaths, out: Output): NodeTrust {
  const kept = readTrustFile(state.trust, { what: 'kept trust root', missingOk: true });
  const offered = given ? readTrustFile(given, { what: '--trust' }) : null;
  if (!kept && !offered) {
    throw new AirlockError('EUSAGE', `no trust root: pass --trust ROOT.json once (a copy is kept in ${state.trust}) or set "trust" in the config`);
  }
  if (!kept) {
    return {
      localRoot: offered!,
      offeredRoots: [],
      keep(result) {
        writeStateFile(state.trust, result.root.bytes);
        out.note(`trust root version ${result.root.version} kept in ${state.trust}`);
      },
    };
  }
  const offeredRoots = offered && !offered.equals(kept) ? [{ bytes: offered, what: `--trust ${given}` }] : [];
  if (offeredRoots.length > 0) {
    // only to say so: the gate skips an older root on its own
    const keptVersion = readSelfSignedRoot(kept, state.trust).version;
    const offeredVersion = readSelfSignedRoot(offered!, given!).version;
    if (offeredVersion < keptVersion) {
      out.warn(`--trust ${given} is version ${offeredVersion}, older than the kept root version ${keptVersion}; using the kept one`);
    }
  }
  return {
    localRoot: kept,
    offeredRoots,
    keep(result) {
      if (result.root.version <= result.localRootVersion) return;
      writeStateFile(state.trust, result.root.bytes);
      out.note(`trust root rotated from version ${result.localRootVersion} to ${result.root.version}`);
    },
  };
}
