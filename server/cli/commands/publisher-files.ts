/**
 * File I/O of the publisher commands (keygen, root, manifest): reading the
 * files they are given and writing their results atomically — temp file
 * beside the target, fsync, then rename (or link, when an existing file must
 * never be replaced, as for private keys).
 */
import { readFile } from 'node:fs/promises';
import { writeFileAtomic, type AtomicWriteOptions } from '../../../common/atomic.js';
import { AirlockError } from '../../../manifests/errors.js';
import { loadPrivateKeyPem, loadPublicKeyPem } from '../../../manifests/keys.js';
import type { KeyObject } from 'node:crypto';

export async function readInput(path: string, what: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new AirlockError('ENOTFOUND', `${what} ${path} does not exist`, { path });
    throw new AirlockError('EUSAGE', `cannot read ${what} ${path}: ${(e as Error).message}`, { path });
  }
}

/** Writes a command's result atomically; a failure is the operator's to fix (EUSAGE naming the file). */
export async function writeOutputFile(path: string, data: Uint8Array | string, opts: AtomicWriteOptions = {}): Promise<void> {
  try {
    await writeFileAtomic(path, data, opts);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new AirlockError('EUSAGE', `${path} already exists: refusing to overwrite it`, { path });
    }
    throw new AirlockError('EUSAGE', `cannot write ${path}: ${(e as Error).message}`, { path });
  }
}

export async function readPrivateKeys(paths: readonly string[]): Promise<KeyObject[]> {
  return Promise.all(paths.map(async (p) => loadPrivateKeyPem(await readInput(p, 'private key'), p)));
}

export async function readPublicKeys(paths: readonly string[]): Promise<KeyObject[]> {
  return Promise.all(paths.map(async (p) => loadPublicKeyPem(await readInput(p, 'public key'), p)));
}
