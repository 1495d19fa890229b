/**
 * A small part of a stored blob read whole, refused past `cap` bytes: the
 * deb control member and the gem metadata are read this way, so a hostile
 * archive header cannot make the server buffer a blob's worth of memory.
 */
import type { Readable } from 'node:stream';
import { AirlockError } from '../../manifests/errors.js';

export async function readCapped(stream: Readable, cap: number, what: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  let n = 0;
  for await (const chunk of stream) {
    const b = chunk as Buffer;
    n += b.length;
    if (n > cap) {
      stream.destroy();
      throw new AirlockError('EINTEGRITY', `${what} larger than ${cap} bytes`);
    }
    parts.push(b);
  }
  return Buffer.concat(parts);
}
