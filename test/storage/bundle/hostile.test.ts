/**
 * Hostile bundles: each is refused with its code, and the store keeps no new
 * release, no unverified byte, no partial leftover, and no blob outside the
 * release's signed set.
 */
import { rmSync } from 'node:fs';
import { createWriteStream } from 'node:fs';
import { readFile, rm, truncate, writeFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import tar from 'tar-stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ErrorCode } from '../../../manifests/index.js';
import { exportBundle, importBundle } from '../../../storage/bundle/index.js';
import { openStore, type Store } from '../../../storage/index.js';
import { readTar, writeTar, type TarItem } from './tarlib.js';
import { AIRLOCK, runCli } from '../../support/cli.js';
import {
  openFilled,
  randomBlob,
  root1Bytes,
  rootPayload,
  sampleRelease,
  signRelease,
  signRoot,
  snapshot,
  strangerKey,
  tmp,
  gate,
  trusted,
  fill,
} from './fixtures.js';

let dir: string;
let good: TarItem[];
const r = sampleRelease();
const blobNames = r.blobs.map((b) => `blobs/sha256/${b.sha256}`);

beforeAll(async () => {
  dir = await tmp();
  const src = await openFilled(join(dir, 'src'), r.envelope, r.blobs);
  await exportBundle(src, r.release, { out: join(dir, 'good.tar'), roots: [root1Bytes] });
  await src.close();
  good = await readTar(join(dir, 'good.tar'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const idx = (name: string): number => good.findIndex((i) => i.header.name === name);
const copy = (): TarItem[] => good.map((i) => ({ header: { ...i.header }, body: Buffer.from(i.body) }));
const header = (over: Record<string, unknown>): TarItem => {
  const h = JSON.parse(good[0]!.body.toString()) as Record<string, unknown>;
  return { header: { ...good[0]!.header }, body: Buffer.from(JSON.stringify({ ...h, ...over })) };
};
const envItem = (envelope: Buffer): TarItem => ({ header: { name: 'manifest.json', mode: 0o444 }, body: envelope });

let n = 0;
async function tarOf(items: TarItem[]): Promise<string> {
  const f = join(dir, `h${n++}.tar`);
  await writeTar(f, items);
  return f;
}

/** A cache that already holds another release (so "unchanged" means something), fresh per case. */
async function target(opts: { accepted18?: boolean } = {}): Promise<Store> {
  const store = await openStore({ cacheDir: join(dir, `c${n++}`), write: true });
  const other = randomBlob(1000);
  const envelope = signRelease({
    release: opts.accepted18 ? '3.7.0' : '3.5.0',
    serial: opts.accepted18 ? 18 : 10,
    artifacts: [{ path: 'old.bin', kind: 'file', sha256: other.sha256, size: other.size, urls: ['http://up.invalid/old.bin'] }],
  });
  await fill(store, envelope, [other]);
  return store;
}

async function refused(file: string, code: ErrorCode, opts: { accepted18?: boolean; message?: RegExp } = {}): Promise<void> {
  const store = await target(opts);
  try {
    const before = await snapshot(store);
    const err = await importBundle(store, [file], { gate: gate() }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err, 'import must fail').not.toBeNull();
    expect(err).toMatchObject({ code });
    if (opts.message) expect((err as Error).message).toMatch(opts.message);
    expect((err as Error).message).not.toContain('\n');
    const after = await snapshot(store);
    expect(after.releases).toEqual(before.releases);
    expect(after.corrupt).toEqual([]);
    expect(after.partial).toEqual([]);
    const allowed = new Set([...before.blobs, ...r.blobs.map((b) => b.sha256)]);
    expect(after.blobs.filter((d) => !allowed.has(d))).toEqual([]);
  } finally {
    await store.close();
  }
}

const at = (items: TarItem[], i: number, item: TarItem): TarItem[] => [...items.slice(0, i), item, ...items.slice(i)];
const firstBlob = (): number => idx(blobNames[0]!);

describe('hostile bundles are refused, the store unchanged', () => {
  it('the good bundle itself imports (control)', async () => {
    const store = await target();
    await importBundle(store, [join(dir, 'good.tar')], { gate: gate() });
    expect((await store.status(r.release)).ready).toBe(true);
    await store.close();
  });

  it('1 tar-slip entry name (../../etc/cron.d/x)', async () => {
    await refused(await tarOf(at(copy(), firstBlob(), { header: { name: '../../etc/cron.d/x' }, body: Buffer.from('evil') })), 'EPATH');
  });
  it('2 tar-slip hidden in a blob name (blobs/sha256/../../x)', async () => {
    const items = copy();
    items[firstBlob() + 1]!.header.name = 'blobs/sha256/../../x';
    await refused(await tarOf(items), 'EPATH');
  });
  it('3 absolute path', async () => {
    await refused(await tarOf(at(copy(), firstBlob(), { header: { name: '/etc/passwd' }, body: Buffer.from('root::0:0') })), 'EPATH');
  });
  it('4 symlink named like a blob', async () => {
    const items = copy();
    items[firstBlob()] = { header: { name: blobNames[0]!, type: 'symlink', linkname: '/etc/shadow' }, body: Buffer.alloc(0) };
    await refused(await tarOf(items), 'EPATH', { message: /symbolic link/ });
  });
  it('5 hard link', async () => {
    const items = copy();
    items[firstBlob() + 1] = { header: { name: blobNames[1]!, type: 'link', linkname: blobNames[0]! }, body: Buffer.alloc(0) };
    await refused(await tarOf(items), 'EPATH', { message: /hard link/ });
  });
  it('6 character device', async () => {
    const items = at(copy(), firstBlob(), { header: { name: 'dev/null', type: 'character-device', devmajor: 1, devminor: 3 }, body: Buffer.alloc(0) });
    await refused(await tarOf(items), 'EPATH', { message: /character device/ });
  });
  it('7 block device', async () => {
    const items = at(copy(), firstBlob(), { header: { name: 'sda', type: 'block-device', devmajor: 8, devminor: 0 }, body: Buffer.alloc(0) });
    await refused(await tarOf(items), 'EPATH');
  });
  it('8 fifo', async () => {
    await refused(await tarOf(at(copy(), firstBlob(), { header: { name: 'pipe', type: 'fifo' }, body: Buffer.alloc(0) })), 'EPATH', { message: /fifo/ });
  });
  it('9 directory entry', async () => {
    await refused(await tarOf(at(copy(), firstBlob(), { header: { name: 'blobs', type: 'directory' }, body: Buffer.alloc(0) })), 'EPATH');
  });
  it('10 flipped byte in a blob', async () => {
    const items = copy();
    const b = items[firstBlob() + 4]!.body;
    b[b.length >> 1] ^= 0xff;
    await refused(await tarOf(items), 'EINTEGRITY');
  });
  it('11 truncated in the middle of a blob', async () => {
    const f = await tarOf(copy());
    await truncate(f, (await stat(f)).size - 200_000);
    await refused(f, 'EINTEGRITY', { message: /truncated/ });
  });
  it('12 extra blob after the last one', async () => {
    const extra = randomBlob(100);
    await refused(await tarOf([...copy(), { header: { name: `blobs/sha256/${extra.sha256}` }, body: extra.bytes }]), 'EINTEGRITY', { message: /extra/ });
  });
  it('13 extra blob in the middle (not in the manifest)', async () => {
    const extra = randomBlob(100);
    await refused(await tarOf(at(copy(), firstBlob() + 2, { header: { name: `blobs/sha256/${extra.sha256}` }, body: extra.bytes })), 'EINTEGRITY', {
      message: /not in the signed manifest/,
    });
  });
  it('14 missing blob', async () => {
    await refused(await tarOf(copy().slice(0, -1)), 'EINTEGRITY', { message: /missing/ });
  });
  it('15 duplicate blob', async () => {
    const items = copy();
    await refused(await tarOf(at(items, firstBlob() + 1, items[firstBlob()]!)), 'EINTEGRITY', { message: /twice/ });
  });
  it('16 blobs in the wrong order', async () => {
    const items = copy();
    const i = firstBlob();
    [items[i], items[i + 1]] = [items[i + 1]!, items[i]!];
    await refused(await tarOf(items), 'EINTEGRITY', { message: /out of order/ });
  });
  it('17 blob entry with the wrong size', async () => {
    const items = copy();
    items[firstBlob()]!.body = Buffer.concat([items[firstBlob()]!.body, Buffer.from('more')]);
    await refused(await tarOf(items), 'EINTEGRITY', { message: /bytes in the bundle/ });
  });
  it('18 envelope signed by an unknown key', async () => {
    const items = copy();
    items[idx('manifest.json')] = envItem(signRelease({ release: r.release, serial: r.serial, artifacts: r.artifacts }, strangerKey));
    await refused(await tarOf(items), 'ESIGNATURE');
  });
  it('19 envelope with a tampered payload (signature over other bytes)', async () => {
    const items = copy();
    const env = JSON.parse(items[idx('manifest.json')]!.body.toString()) as { payload: string };
    const p = Buffer.from(env.payload, 'base64').toString().replace('"serial":17', '"serial":99');
    env.payload = Buffer.from(p).toString('base64');
    items[idx('manifest.json')] = envItem(Buffer.from(JSON.stringify(env)));
    await refused(await tarOf(items), 'ESIGNATURE');
  });
  it('20 older serial than the cache accepted (rollback)', async () => {
    await refused(join(dir, 'good.tar'), 'EROLLBACK', { accepted18: true });
  });
  it('21 expired manifest', async () => {
    const items = copy();
    items[idx('manifest.json')] = envItem(
      signRelease({ release: r.release, serial: r.serial, artifacts: r.artifacts, issued: '2019-01-01T00:00:00Z', expires: '2020-01-01T00:00:00Z' }),
    );
    await refused(await tarOf(items), 'EEXPIRED');
  });
  it('22 envelope not first (a blob before manifest.json)', async () => {
    const items = copy();
    const blob = items.splice(firstBlob(), 1)[0]!;
    await refused(await tarOf(at(items, idx('manifest.json'), blob)), 'EMANIFEST', { message: /must come first/ });
  });
  it('23 oversize envelope (refused from its tar header, before reading it)', async () => {
    const f = join(dir, `big${n++}.tar`);
    const pack = tar.pack();
    const done = pipeline(pack, createWriteStream(f));
    const small = (it: TarItem): Promise<void> =>
      new Promise((res, rej) => pack.entry({ ...it.header, size: it.body.length }, it.body, (e) => (e ? rej(e) : res())));
    await small(good[0]!);
    await small(good[1]!);
    const size = 64 * 1024 * 1024 + 1;
    await new Promise<void>((res, rej) => {
      const e = pack.entry({ name: 'manifest.json', size }, (err) => (err ? rej(err) : res()));
      const chunk = Buffer.alloc(1024 * 1024, 0x20);
      let left = size;
      const pump = (): void => {
        while (left > 0) {
          const c = chunk.subarray(0, Math.min(left, chunk.length));
          left -= c.length;
          if (!e.write(c)) {
            e.once('drain', pump);
            return;
          }
        }
        e.end();
      };
      pump();
    });
    pack.finalize();
    await done;
    await refused(f, 'EMANIFEST', { message: /cap/ });
  });
  it('24 header with a wrong format field', async () => {
    const items = copy();
    items[0] = header({ format: 'something-else' });
    await refused(await tarOf(items), 'EMANIFEST', { message: /format/ });
  });
  it('25 header that lies about the release (the signed manifest wins)', async () => {
    const items = copy();
    items[0] = header({ release: '9.9.9' });
    await refused(await tarOf(items), 'EMANIFEST', { message: /says release 9.9.9/ });
  });
  it('26 no header at all (manifest.json first)', async () => {
    await refused(await tarOf(copy().slice(1)), 'EMANIFEST', { message: /not an airlock bundle/ });
  });
  it('27 wrong root chain (root/2.json not signed by the trusted root)', async () => {
    const items = copy();
    const bogus = signRoot(rootPayload(2, [strangerKey], [strangerKey]), [strangerKey]);
    items.splice(idx('manifest.json'), 0, { header: { name: 'root/2.json' }, body: bogus });
    items[idx('manifest.json') + 1] = envItem(signRelease({ release: r.release, serial: r.serial, artifacts: r.artifacts }, strangerKey));
    await refused(await tarOf(items), 'ESIGNATURE');
  });
  it('28 roots out of order', async () => {
    const items = copy();
    items.splice(idx('manifest.json'), 0, { header: { name: 'root/1.json' }, body: root1Bytes });
    await refused(await tarOf(items), 'EMANIFEST', { message: /rising chain/ });
  });
  it('29 garbage file', async () => {
    const f = join(dir, `garbage${n++}.tar`);
    await writeFile(f, Buffer.alloc(8192, 'not a tar at all '));
    await refused(f, 'EMANIFEST');
  });
  it('30 empty file', async () => {
    const f = join(dir, `empty${n++}.tar`);
    await writeFile(f, '');
    await refused(f, 'EMANIFEST');
  });
  it('31 an unexpected non-blob file after the envelope', async () => {
    await refused(await tarOf(at(copy(), firstBlob(), { header: { name: 'README' }, body: Buffer.from('hi') })), 'EINTEGRITY', {
      message: /not a blob entry/,
    });
  });
});

void readFile;

/** Where each tar entry's header, body and padding lie (ustar: 512-byte blocks, size in octal at 124). */
function tarLayout(tarBytes: Buffer): { entries: Array<{ name: string; header: number; body: number; size: number; end: number }>; archiveEnd: number } {
  const entries = [];
  let at = 0;
  while (at + 512 <= tarBytes.length && tarBytes[at] !== 0) {
    const name = tarBytes.subarray(at, at + 100).toString('utf8').replace(/\0.*$/s, '');
    const size = parseInt(tarBytes.subarray(at + 124, at + 136).toString('ascii').replace(/\0.*$/s, '').trim(), 8);
    const end = at + 512 + Math.ceil(size / 512) * 512;
    entries.push({ name, header: at, body: at + 512, size, end });
    at = end;
  }
  return { entries, archiveEnd: at };
}

/** The bundle cut to its first `length` bytes (no .sha256 beside it: the cut is found by the tar reading alone). */
async function cut(length: number): Promise<string> {
  const f = join(dir, `cut${n++}.tar`);
  await writeFile(f, (await readFile(join(dir, 'good.tar'))).subarray(0, length));
  return f;
}

/** How an entry is named in a truncation message: a blob by its digest, anything else by its name. */
const named = (name: string): RegExp => new RegExp(name.startsWith('blobs/sha256/') ? `sha256:${name.slice(13)}` : name.replace(/[.]/g, '\\.'));

describe('a truncated bundle is EINTEGRITY naming the entry it ends in', () => {
  const cases: Array<[string, number, string]> = [];
  beforeAll(async () => {
    const { entries } = tarLayout(await readFile(join(dir, 'good.tar')));
    entries.forEach((e, k) => {
      // a cut header has no readable name: the entry before it (or, among blobs, the one expected) is named
      const before = k === 0 ? 'first tar header' : entries[k - 1]!.name;
      cases.push([`in the tar header of ${e.name}`, e.header + 100, e.name.startsWith('blobs/') ? e.name : before]);
      if (e.size > 0) {
        cases.push([`right after the tar header of ${e.name}`, e.body, e.name]);
        cases.push([`in the middle of ${e.name}`, e.body + (e.size >> 1), e.name]);
        cases.push([`one byte before the end of ${e.name}`, e.body + e.size - 1, e.name]);
      }
      if (e.end - (e.body + e.size) >= 2) cases.push([`in the padding after ${e.name}`, e.body + e.size + 1, e.name]);
      // cut between two blobs: the next one is missing
      if (e.name.startsWith('blobs/') && k + 1 < entries.length) cases.push([`right after ${e.name} (a whole entry)`, e.end, entries[k + 1]!.name]);
    });
  });

  it('every cut inside an entry (header, body, padding)', async () => {
    expect(cases.length).toBeGreaterThan(25);
    const failures: string[] = [];
    for (const [what, length, entry] of cases) {
      const store = await target();
      try {
        const err = await importBundle(store, [await cut(length)], { gate: gate() }).then(
          () => null,
          (e: unknown) => e as { code?: string; message?: string },
        );
        const ok = err !== null && err.code === 'EINTEGRITY' && /truncated|missing/.test(err.message ?? '') && named(entry).test(err.message ?? '');
        if (!ok) failures.push(`${what} (cut at ${length}): ${err === null ? 'imported' : `${err.code} ${err.message}`}`);
        expect((await store.listReleases()).map((x) => x.release)).not.toContain(r.release);
        expect((await snapshot(store)).partial).toEqual([]);
      } finally {
        await store.close();
      }
    }
    expect(failures).toEqual([]);
  }, 120_000);

  it('a cut between whole entries before manifest.json: EINTEGRITY naming manifest.json', async () => {
    const { entries } = tarLayout(await readFile(join(dir, 'good.tar')));
    const before = entries.filter((e) => e.name === 'airlock-bundle.json' || e.name.startsWith('root/'));
    expect(before.length).toBeGreaterThan(1);
    for (const e of before) await refused(await cut(e.end), 'EINTEGRITY', { message: /truncated: it ends before manifest\.json/ });
  });

  it('a cut in the end-of-archive blocks, after every blob: still refused (the bundle is not what was exported)', async () => {
    const { archiveEnd } = tarLayout(await readFile(join(dir, 'good.tar')));
    await refused(await cut(archiveEnd + 100), 'EINTEGRITY', { message: /truncated/ });
  });
});

describe('airlock import of a bundle cut inside a blob', () => {
  it('exits 3 with one EINTEGRITY line naming the blob (the built CLI)', async () => {
    const { entries } = tarLayout(await readFile(join(dir, 'good.tar')));
    const blob = entries.find((e) => e.name === blobNames[4])!;
    await writeFile(join(dir, 'root.json'), root1Bytes);
    const run = await runCli(AIRLOCK, ['import', await cut(blob.body + (blob.size >> 1)), '--cache-dir', join(dir, `cli${n++}`), '--trust', join(dir, 'root.json')]);
    expect(run.code, run.stderr).toBe(3);
    expect(run.stderr).toMatch(new RegExp(`EINTEGRITY.*truncated inside blob sha256:${blobNames[4]!.slice(13)}`));
    expect(run.stderr).not.toMatch(/\n\s+at /); // no stack trace
  }, 60_000);
});

describe('a split bundle with a volume missing or cut short is EINTEGRITY', () => {
  let vols: string[];
  beforeAll(async () => {
    const src = await openFilled(join(dir, 'vsrc'), r.envelope, r.blobs);
    const ex = await exportBundle(src, r.release, { out: join(dir, 'vol.tar'), split: 128 * 1024, roots: [root1Bytes] });
    await src.close();
    vols = ex.volumes.map((v) => v.path);
    expect(vols.length).toBeGreaterThan(3);
  });

  /** A copy of the volumes, edited; `sums` keeps the .sha256 files. */
  async function volumeSet(edit: (files: string[]) => Promise<string[]>, sums: boolean): Promise<string[]> {
    const base = join(dir, `vs${n++}.tar`);
    const files: string[] = [];
    for (let i = 0; i < vols.length; i++) {
      const f = `${base}.${String(i).padStart(3, '0')}`;
      await writeFile(f, await readFile(vols[i]!));
      if (sums) await writeFile(`${f}.sha256`, await readFile(`${vols[i]!}.sha256`));
      files.push(f);
    }
    return edit(files);
  }

  it('a volume removed while the import runs (media pulled out): EINTEGRITY naming it, no stack', async () => {
    const files = await volumeSet(async (fs) => fs, false);
    const store = await target();
    try {
      let removed = false;
      const err = await importBundle(store, files, {
        gate: gate(),
        onProgress: () => {
          if (!removed) {
            removed = true;
            rmSync(files.at(-1)!);
          }
        },
      }).then(
        () => null,
        (e: unknown) => e as { code?: string; message?: string },
      );
      expect(err?.code, err?.message).toBe('EINTEGRITY');
      expect(err?.message).toMatch(new RegExp(`bundle volume .*${files.at(-1)!.split('/').pop()}: cannot be read \\(ENOENT\\)`));
      expect((await store.listReleases()).map((x) => x.release)).not.toContain(r.release);
    } finally {
      await store.close();
    }
  });

  it.each([true, false])('the final volume missing (.sha256 files kept: %s), imported by base name', async (sums) => {
    const files = await volumeSet(async (fs) => {
      await rm(fs.at(-1)!, { force: true });
      await rm(`${fs.at(-1)!}.sha256`, { force: true });
      return [fs[0]!.slice(0, -4)];
    }, sums);
    await refused(files[0]!, 'EINTEGRITY', { message: /truncated (inside|after) blob sha256:[0-9a-f]{64}|missing sha256:[0-9a-f]{64}/ });
  });

  it.each([true, false])('a middle volume missing, volumes listed (.sha256 files kept: %s)', async (sums) => {
    const files = await volumeSet(async (fs) => fs.filter((_, i) => i !== 1), sums);
    const store = await target();
    try {
      const err = await importBundle(store, files, { gate: gate() }).then(() => null, (e: unknown) => e as { code?: string });
      expect(err?.code).toBe('EINTEGRITY');
    } finally {
      await store.close();
    }
  });

  it.each([true, false])('a volume cut short (.sha256 files kept and checked: %s)', async (sums) => {
    const files = await volumeSet(async (fs) => {
      await truncate(fs[2]!, 1000);
      return fs;
    }, sums);
    const store = await target();
    try {
      const err = await importBundle(store, files, { gate: gate(), checkVolumes: sums }).then(
        () => null,
        (e: unknown) => e as { code?: string; message?: string },
      );
      expect(err?.code, err?.message).toBe('EINTEGRITY');
      if (sums) expect(err?.message).toMatch(/\.002/);
    } finally {
      await store.close();
    }
  });

  it.each([true, false])('the last volume cut short (.sha256 files kept and checked: %s)', async (sums) => {
    const files = await volumeSet(async (fs) => {
      await truncate(fs.at(-1)!, Math.max(0, (await stat(fs.at(-1)!)).size - 700));
      return fs;
    }, sums);
    const store = await target();
    try {
      const err = await importBundle(store, files, { gate: gate(), checkVolumes: sums }).then(
        () => null,
        (e: unknown) => e as { code?: string; message?: string },
      );
      expect(err?.code, err?.message).toBe('EINTEGRITY');
      // with its checksum the volume is named; without, the entry the cut falls in
      expect(err?.message).toMatch(sums ? /\.sha256/ : /truncated (inside|after) blob sha256:[0-9a-f]{64}/);
    } finally {
      await store.close();
    }
  });
});
