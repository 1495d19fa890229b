/**
 * `airlock root init` and `airlock root rotate` (publisher): make the trust
 * root.json and its successors, exactly as docs/manifest.md "The trust
 * root" says. Each result is verified the way a node will verify it
 * before it is written.
 */
import type { Command } from 'commander';
import type { KeyObject } from 'node:crypto';
import { AirlockError } from '../../../manifests/errors.js';
import { canonicalBytes } from '../../../manifests/canonical.js';
import { signEnvelope } from '../../../manifests/dsse.js';
import { keyIdOf, rawPublicKey } from '../../../manifests/keys.js';
import { loadTrustedRoot, readSelfSignedRoot, updateTrustedRoot, type TrustedRoot } from '../../../manifests/root.js';
import { validateRootPayload } from '../../../manifests/schema.js';
import { ROOT_PAYLOAD_TYPE, type RootPayload } from '../../../manifests/types.js';
import { parseDate } from '../../../common/config.js';
import type { CommonFlags } from '../../config.js';
import { action, withCommon } from '../frame.js';
import { readInput, readPrivateKeys, readPublicKeys, writeOutputFile } from './publisher-files.js';

export interface RootSpec {
  /** private keys of the new root role */
  rootKeys: string[];
  rootThreshold: string | number;
  /** public (or private) keys of the release role */
  releaseKeys: string[];
  releaseThreshold: string | number;
  expires: string;
  out: string;
}

const threshold = (value: string | number, flag: string, keys: number): number => {
  const n = typeof value === 'number' ? value : /^\d+$/.test(value) ? Number(value) : NaN;
  if (!Number.isInteger(n) || n < 1) throw new AirlockError('EUSAGE', `${flag} must be a whole number ≥ 1, got "${value}"`);
  if (n > keys) throw new AirlockError('EUSAGE', `${flag} ${n} is more than the ${keys} distinct key(s) given`);
  return n;
};

const rfc3339 = (d: Date): string => d.toISOString().replace(/\.\d{3}Z$/, 'Z');

/** One entry per distinct key, in the order given. */
function distinct(keys: KeyObject[]): Map<string, KeyObject> {
  const byId = new Map<string, KeyObject>();
  for (const k of keys) if (!byId.has(keyIdOf(k))) byId.set(keyIdOf(k), k);
  return byId;
}

async function buildPayload(spec: RootSpec, version: number, now: Date): Promise<{ payload: RootPayload; rootSigners: KeyObject[] }> {
  if (spec.rootKeys.length === 0) throw new AirlockError('EUSAGE', 'give at least one --root-key (a private key file)');
  if (spec.releaseKeys.length === 0) throw new AirlockError('EUSAGE', 'give at least one --release-key (a public key file)');
  const rootSigners = [...distinct(await readPrivateKeys(spec.rootKeys)).values()];
  const release = distinct(await readPublicKeys(spec.releaseKeys));
  const rootIds = rootSigners.map((k) => keyIdOf(k));
  const expires = parseDate(spec.expires, '--expires');
  if (expires.getTime() <= now.getTime()) throw new AirlockError('EUSAGE', `--expires ${spec.expires} is already past`);
  const keys: RootPayload['keys'] = {};
  for (const k of [...rootSigners, ...release.values()]) {
    keys[keyIdOf(k)] = { keytype: 'ed25519', public: rawPublicKey(k).toString('base64') };
  }
  const payload: RootPayload = {
    type: 'airlock-root',
    spec: 1,
    version,
    expires: rfc3339(expires),
    keys,
    roles: {
      root: { keyids: rootIds, threshold: threshold(spec.rootThreshold, '--root-threshold', rootIds.length) },
      release: { keyids: [...release.keys()], threshold: threshold(spec.releaseThreshold, '--release-threshold', release.size) },
    },
  };
  return { payload: validateRootPayload(payload), rootSigners };
}

/** `root init`: version 1, signed by the root keys; verified as a node would before it is written. */
export async function rootInit(spec: RootSpec, now: Date): Promise<TrustedRoot> {
  const { payload, rootSigners } = await buildPayload(spec, 1, now);
  const bytes = signEnvelope(ROOT_PAYLOAD_TYPE, canonicalBytes(payload), rootSigners);
  const root = loadTrustedRoot(bytes, now);
  await writeOutputFile(spec.out, bytes);
  return root;
}

/** `root rotate`: version N+1, signed by the old root keys AND the new ones; checked with updateTrustedRoot. */
export async function rootRotate(spec: RootSpec & { from: string; signKeys: string[] }, now: Date): Promise<TrustedRoot> {
  // The old root may have expired: replacing it is exactly what rotation is for.
  const old = readSelfSignedRoot(await readInput(spec.from, 'root'), spec.from);
  if (spec.signKeys.length === 0) throw new AirlockError('EUSAGE', `give --sign-key: private keys of the root role of ${spec.from}`);
  const { payload, rootSigners } = await buildPayload(spec, old.version + 1, now);
  const signers = distinct([...(await readPrivateKeys(spec.signKeys)), ...rootSigners]);
  const bytes = signEnvelope(ROOT_PAYLOAD_TYPE, canonicalBytes(payload), [...signers.values()]);
  const root = updateTrustedRoot(old, [bytes], now);
  await writeOutputFile(spec.out, bytes);
  return root;
}

interface RootFlags extends CommonFlags {
  rootKey?: string[];
  rootThreshold?: string;
  releaseKey?: string[];
  releaseThreshold?: string;
  expires?: string;
  out?: string;
  from?: string;
  signKey?: string[];
}

const specOf = (f: RootFlags): RootSpec => ({
  rootKeys: f.rootKey ?? [],
  rootThreshold: f.rootThreshold ?? '1',
  releaseKeys: f.releaseKey ?? [],
  releaseThreshold: f.releaseThreshold ?? '1',
  expires: f.expires ?? '',
  out: f.out ?? '',
});

function roleFlags(cmd: Command): Command {
  return cmd
    .requiredOption('--root-key <file...>', 'private key file(s) of the (new) root role; their public keys go into the root')
    .option('--root-threshold <n>', 'signatures from distinct root keys needed', '1')
    .requiredOption('--release-key <file...>', 'public key file(s) of the release role (keys that sign manifests)')
    .option('--release-threshold <m>', 'signatures from distinct release keys a manifest needs', '1')
    .requiredOption('--expires <date>', 'expiry of the root, e.g. 2028-01-01 or 2028-01-01T00:00:00Z')
    .requiredOption('--out <file>', 'where to write the signed root (written atomically)')
    .addHelpText('after', '\nExit status: 0 ok, 1 failure, 2 usage, 3 the result or --from failed verification.');
}

const describeRoot = (r: TrustedRoot, out: string): string => {
  const roles = r.payload.roles;
  return (
    `wrote ${out}: root version ${r.version}, expires ${r.payload.expires}\n` +
    `  root role:    ${roles.root.threshold} of ${roles.root.keyids.join(', ')}\n` +
    `  release role: ${roles.release.threshold} of ${roles.release.keyids.join(', ')}`
  );
};

const rootData = (r: TrustedRoot, out: string): Record<string, unknown> => ({
  out,
  version: r.version,
  expires: r.payload.expires,
  roles: r.payload.roles,
});

export function register(program: Command): void {
  const root = program
    .command('root')
    .summary('make and rotate the trust root.json (publisher)')
    .description(
      'Make and rotate root.json, the trust root every cache node and node gets out of band: ' +
        'the ed25519 keys of the root role (signs roots) and the release role (signs manifests).',
    );
  withCommon(
    roleFlags(
      root
        .command('init')
        .description('Make root.json version 1, signed by the root keys (--root-key, private key files).'),
    ),
    [],
  ).action(
    action<[], RootFlags>(async ({ out }, opts) => {
      const spec = specOf(opts);
      const r = await rootInit(spec, new Date());
      out.result(rootData(r, spec.out), describeRoot(r, spec.out));
    }),
  );
  withCommon(
    roleFlags(
      root
        .command('rotate')
        .description(
          'Make the next root (version N+1) from --from root.json, signed by the old root keys (--sign-key) ' +
            'AND the new ones (--root-key), as nodes require; the result is checked against --from before it is written.',
        )
        .requiredOption('--from <root.json>', 'the current root')
        .requiredOption('--sign-key <file...>', 'private key file(s) of the current root role (enough for its threshold)'),
    ),
    [],
  ).action(
    action<[], RootFlags>(async ({ out }, opts) => {
      const spec = { ...specOf(opts), from: opts.from ?? '', signKeys: opts.signKey ?? [] };
      const r = await rootRotate(spec, new Date());
      out.result(rootData(r, spec.out), describeRoot(r, spec.out));
    }),
  );
}
