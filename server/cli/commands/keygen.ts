/** `airlock keygen --out NAME`: a new ed25519 key pair for publishing (NAME.key, NAME.pub). */
import type { Command } from 'commander';
import { generateKey } from '../../../manifests/keys.js';
import { AirlockError } from '../../../manifests/errors.js';
import { action, withCommon } from '../frame.js';
import type { CommonFlags } from '../../config.js';
import { writeOutputFile } from './publisher-files.js';
import { rm } from 'node:fs/promises';

export interface KeygenResult {
  keyid: string;
  privateKey: string;
  publicKey: string;
}

/** Writes NAME.key (PKCS#8 PEM, 0600, never overwritten) and NAME.pub (SPKI PEM). */
export async function keygen(name: string): Promise<KeygenResult> {
  const k = generateKey();
  const privateKey = `${name}.key`;
  const publicKey = `${name}.pub`;
  await writeOutputFile(privateKey, k.privatePem, { mode: 0o600, exclusive: true });
  try {
    await writeOutputFile(publicKey, k.publicPem, { mode: 0o644, exclusive: true });
  } catch (e) {
    await rm(privateKey, { force: true }); // we just made it: no half pair left behind
    throw e;
  }
  return { keyid: k.keyid, privateKey, publicKey };
}

interface KeygenFlags extends CommonFlags {
  out?: string;
}

export function register(program: Command): void {
  withCommon(
    program
      .command('keygen')
      .summary('make an ed25519 signing key pair (publisher)')
      .description(
        'Make an ed25519 key pair for signing roots or release manifests: ' +
          'NAME.key (PKCS#8 PEM, mode 0600, never overwritten) and NAME.pub (SPKI PEM). ' +
          'Prints the key id: the lowercase hex sha256 of the raw 32-byte public key.',
      )
      .requiredOption('--out <name>', 'path prefix of the key files (writes NAME.key and NAME.pub)')
      .addHelpText('after', '\nExit status: 0 ok, 2 usage (e.g. NAME.key already exists).'),
    [],
  ).action(
    action<[], KeygenFlags>(async ({ out }, opts) => {
      if (!opts.out) throw new AirlockError('EUSAGE', '--out NAME is required');
      const r = await keygen(opts.out);
      out.result({ ...r }, `${r.keyid}\n  private key: ${r.privateKey} (keep it secret)\n  public key:  ${r.publicKey}`);
    }),
  );
}
