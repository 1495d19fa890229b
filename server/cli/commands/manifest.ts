/**
 * `airlock manifest sign` and `airlock manifest verify` (publisher): sign a
 * release manifest into a DSSE envelope, and check one envelope against a
 * trust root exactly as a cache node or node would (minus rollback state:
 * this verifies one file on its own).
 */
import type { Command } from 'commander';
import { AirlockError, isAirlockError } from '../../../manifests/errors.js';
import { canonicalBytes } from '../../../manifests/canonical.js';
import { sha256Hex } from '../../../manifests/digest.js';
import { signEnvelope } from '../../../manifests/dsse.js';
import { parseStrictJson } from '../../../manifests/json.js';
import { keyIdOf } from '../../../manifests/keys.js';
import { passTrustGate, type GateResult } from '../../../manifests/gate.js';
import { validateReleaseManifest } from '../../../manifests/schema.js';
import { RELEASE_PAYLOAD_TYPE, type ReleaseManifest } from '../../../manifests/types.js';
import type { Output } from '../../../common/output.js';
import { readTrustFile } from '../../../common/trust-file.js';
import { requireTrust, type CommonFlags } from '../../config.js';
import { action, withCommon } from '../frame.js';
import { manifestGroup } from './manifest-group.js';
import { readInput, readPrivateKeys, writeOutputFile } from './publisher-files.js';

export interface SignResult {
  manifest: ReleaseManifest;
  digest: string;
  keyids: string[];
}

/**
 * Reads the payload JSON (any formatting, but strict: no duplicate keys or
 * floats), checks the schema BEFORE signing so a mistake is never signed,
 * canonicalizes, signs with every key, writes the envelope atomically.
 */
export async function manifestSign(payloadPath: string, keyPaths: string[], outPath: string): Promise<SignResult> {
  if (keyPaths.length === 0) throw new AirlockError('EUSAGE', 'give at least one --key (a private key file)');
  const manifest = validateReleaseManifest(parseStrictJson(await readInput(payloadPath, 'manifest'), payloadPath));
  const keys = await readPrivateKeys(keyPaths);
  const payload = canonicalBytes(manifest);
  await writeOutputFile(outPath, signEnvelope(RELEASE_PAYLOAD_TYPE, payload, keys));
  return { manifest, digest: sha256Hex(payload), keyids: [...new Set(keys.map((k) => keyIdOf(k)))] };
}

/** Verifies one envelope file against a root file through the trust gate; warns (via `out`) when only an extension let it through. */
export async function manifestVerify(
  envelopePath: string,
  trustPath: string,
  now: Date,
  acceptExpiredUntil: Date | null,
  out: Output,
): Promise<GateResult> {
  const localRoot = readTrustFile(trustPath);
  const envelope = await readInput(envelopePath, 'manifest envelope');
  let v: GateResult;
  try {
    v = passTrustGate({ envelope, localRoot, clock: { now, acceptExpiredUntil } });
  } catch (e) {
    if (isAirlockError(e) && Array.isArray(e.details.checksPassed)) {
      for (const c of e.details.checksPassed as string[]) out.note(`ok  ${c}`, { check: c });
    }
    throw e;
  }
  for (const w of v.warnings) out.warn(w, { expires: v.manifest.expires, acceptExpiredUntil: acceptExpiredUntil?.toISOString() });
  return v;
}

interface SignFlags extends CommonFlags {
  key?: string[];
  out?: string;
}

export function register(program: Command): void {
  const manifest = manifestGroup(program);

  withCommon(
    manifest
      .command('sign')
      .description(
        'Sign a release manifest: reads PAYLOAD.json (any formatting), checks its schema first ' +
          '(so a mistake is reported, never signed), writes its RFC 8785 canonical form in a DSSE ' +
          'envelope signed by every --key.',
      )
      .argument('<payload.json>', 'the release manifest JSON')
      .requiredOption('--key <file...>', 'private key file(s) of the release role')
      .requiredOption('--out <envelope.json>', 'where to write the signed envelope (atomically)')
      .addHelpText('after', '\nExit status: 0 ok, 1 failure, 2 usage, 3 the manifest is malformed (EMANIFEST, EPATH).'),
    [],
  ).action(
    action<[string], SignFlags>(async ({ out }, opts, payloadPath) => {
      const r = await manifestSign(payloadPath, opts.key ?? [], opts.out ?? '');
      const m = r.manifest;
      out.result(
        { out: opts.out, product: m.product, release: m.release, serial: m.serial, digest: r.digest, keyids: r.keyids },
        `signed ${m.product} ${m.release} serial ${m.serial} (${m.artifacts.length} artifacts) → ${opts.out}\n` +
          `  digest sha256:${r.digest}\n  keys   ${r.keyids.join(', ')}`,
      );
    }),
  );

  withCommon(
    manifest
      .command('verify')
      .description(
        'Verify a signed manifest against --trust root.json as a node would: size cap, signatures and ' +
          'threshold over the raw bytes, strict canonical JSON, schema, expiry. Prints each check passed. ' +
          'No rollback state: it checks this one file. --accept-expired-until DATE lets an expired ' +
          'manifest pass until DATE (with a warning) and skips nothing else.',
      )
      .argument('<envelope.json>', 'the signed manifest envelope')
      .addHelpText('after', '\nExit status: 0 verified, 2 usage (e.g. no --trust), 3 verification failed (the error code says which check).'),
    ['trust', 'accept-expired-until'],
  ).action(
    action<[string], CommonFlags>(async ({ config, out }, _opts, envelopePath) => {
      const now = new Date();
      const v = await manifestVerify(envelopePath, requireTrust(config), now, config.acceptExpiredUntil, out);
      const m = v.manifest;
      out.result(
        {
          product: m.product,
          release: m.release,
          serial: m.serial,
          digest: v.digest,
          signers: v.signers,
          expiredAccepted: v.expiredAccepted,
          checks: v.checks,
        },
        `${v.checks.map((c) => `ok  ${c}`).join('\n')}\nverified ${m.product} ${m.release} serial ${m.serial}`,
      );
    }),
  );
}
