/** Read a (small) tar into memory and write one back: the hostile-bundle factory. */
import { createReadStream, createWriteStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import tar, { type Header } from 'tar-stream';

export interface TarItem {
  header: Partial<Header> & { name: string };
  body: Buffer;
}

export async function readTar(file: string): Promise<TarItem[]> {
  const out: TarItem[] = [];
  const ex = tar.extract();
  const done = pipeline(createReadStream(file), ex);
  for await (const e of ex) {
    const chunks: Buffer[] = [];
    for await (const c of e) chunks.push(c as Buffer);
    out.push({ header: { ...e.header }, body: Buffer.concat(chunks) });
  }
  await done;
  return out;
}

export async function writeTar(file: string, items: TarItem[]): Promise<void> {
  const pack = tar.pack();
  const done = pipeline(pack, createWriteStream(file));
  for (const it of items) {
    const type = it.header.type ?? 'file';
    const body = type === 'file' ? it.body : Buffer.alloc(0);
    await new Promise<void>((resolve, reject) =>
      pack.entry({ ...it.header, type, size: body.length }, body, (e) => (e ? reject(e) : resolve())),
    );
  }
  pack.finalize();
  await done;
}
