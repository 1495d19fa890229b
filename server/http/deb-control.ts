/**
 * Reads the control file out of a stored .deb, so the apt index is built
 * from the packages themselves and not from what a manifest claims.
 *
 * A .deb is an `ar` archive: `debian-binary`, then `control.tar[.gz|.xz|.zst]`,
 * then the data. Only the head of the blob is read (a range), the control
 * member is decompressed (zlib in-process; xz and zstd by their tools, fed on
 * stdin — Node 20 has neither) and its `./control` entry is taken from the
 * tar by hand: a few fixed-offset header fields are all it takes.
 */
import { spawn } from 'node:child_process';
import { gunzipSync } from 'node:zlib';
import { AirlockError } from '../../manifests/errors.js';
import type { Store } from '../../storage/index.js';
import { readCapped } from './read-capped.js';

const AR_MAGIC = '!<arch>\n';
const MAX_CONTROL = 16 * 1024 * 1024;
const HEAD_BYTES = 128 * 1024;

function decompressWith(cmd: string, input: Buffer, what: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, ['-dc'], { stdio: ['pipe', 'pipe', 'ignore'] });
    const out: Buffer[] = [];
    let n = 0;
    child.stdout.on('data', (b: Buffer) => {
      n += b.length;
      if (n > MAX_CONTROL) child.kill();
      else out.push(b);
    });
    child.on('error', (e) => reject(new AirlockError('EINTERNAL', `${what}: cannot run ${cmd}: ${e.message}`)));
    child.on('close', (code) => {
      if (code === 0) resolve(Buffer.concat(out));
      else reject(new AirlockError('EINTEGRITY', `${what}: ${cmd} could not decompress the control member (exit ${code})`));
    });
    child.stdin.on('error', () => {}); // the tool may exit before reading everything
    child.stdin.end(input);
  });
}

function tarEntry(tar: Buffer, wanted: (name: string) => boolean): Buffer | null {
  let off = 0;
  let longName: string | null = null;
  while (off + 512 <= tar.length) {
    const header = tar.subarray(off, off + 512);
    if (header.every((b) => b === 0)) return null;
    const field = (a: number, b: number): string => header.subarray(a, b).toString('latin1').replace(/\0.*$/s, '');
    const size = parseInt(field(124, 136).trim() || '0', 8);
    const type = field(156, 157);
    const prefix = field(345, 500);
    let name = longName ?? (prefix ? `${prefix}/${field(0, 100)}` : field(0, 100));
    longName = null;
    const body = tar.subarray(off + 512, off + 512 + size);
    if (type === 'L') longName = body.toString('latin1').replace(/\0.*$/s, '');
    else if ((type === '0' || type === '') && wanted(name)) return Buffer.from(body);
    name = '';
    off += 512 + Math.ceil(size / 512) * 512;
  }
  return null;
}

/** The control file text of the .deb stored as `sha256` (`what` names it in errors). */
export async function readDebControl(store: Store, sha256: string, size: number, what: string): Promise<string> {
  const head = await readCapped(await store.read(sha256, { start: 0, end: Math.min(size, HEAD_BYTES) - 1 }), HEAD_BYTES, 'deb header');
  if (head.subarray(0, 8).toString('latin1') !== AR_MAGIC) {
    throw new AirlockError('EINTEGRITY', `${what} is not a Debian package (no ar header)`, { sha256 });
  }
  let off = 8;
  for (let i = 0; i < 3 && off + 60 <= head.length; i++) {
    const name = head.subarray(off, off + 16).toString('latin1').trim().replace(/\/$/, '');
    const memberSize = parseInt(head.subarray(off + 48, off + 58).toString('latin1').trim(), 10);
    const start = off + 60;
    if (!Number.isFinite(memberSize) || memberSize < 0) break;
    if (name.startsWith('control.tar')) {
      if (memberSize > MAX_CONTROL) throw new AirlockError('EINTEGRITY', `${what}: control member of ${memberSize} bytes is too large`);
      const member =
        start + memberSize <= head.length
          ? head.subarray(start, start + memberSize)
          : await readCapped(await store.read(sha256, { start, end: start + memberSize - 1 }), MAX_CONTROL, 'control data');
      let tar: Buffer;
      if (name === 'control.tar') tar = Buffer.from(member);
      else if (name === 'control.tar.gz') tar = gunzipSync(member);
      else if (name === 'control.tar.xz') tar = await decompressWith('xz', member, what);
      else if (name === 'control.tar.zst') tar = await decompressWith('zstd', member, what);
      else throw new AirlockError('EINTEGRITY', `${what}: unknown control member compression "${name}"`);
      const control = tarEntry(tar, (n) => n === './control' || n === 'control');
      if (!control) throw new AirlockError('EINTEGRITY', `${what}: no control file in ${name}`);
      return control.toString('utf8');
    }
    off = start + memberSize + (memberSize % 2);
  }
  throw new AirlockError('EINTEGRITY', `${what}: no control.tar member found`, { sha256 });
}
