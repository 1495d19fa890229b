/**
 * Where installers read staged, verified bytes from: by digest, never by a
 * name (the local staging store satisfies this interface).
 */
import type { Readable } from 'node:stream';
import type { ByteRange } from '../../storage/types.js';

export interface BlobSource {
  read(digest: string, range?: ByteRange): Promise<Readable>;
}
