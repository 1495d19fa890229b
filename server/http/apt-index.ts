/**
 * The apt indexes of the staged releases, signed with the cache node's key
 * (apt-signer.ts). Two shapes:
 *
 * - a flat repository per release (`deb [signed-by=…] http://cache/apt/R ./`):
 *   `Packages`, `Packages.gz`, `Release`, `InRelease`, `Release.gpg`; each
 *   stanza's `Filename` is the artifact's manifest path, which is also where
 *   the route serves it;
 * - a repository per product (`deb [signed-by=…] http://cache/apt/P SUITE
 *   main`), one suite per release plus `current`:
 *   `dists/SUITE/{InRelease,Release,Release.gpg}` and
 *   `dists/SUITE/main/binary-ARCH/Packages{,.gz,.xz}`; `Filename` is
 *   `pool/<sha256>/<file name>`, served from the store by digest.
 *
 * Packages are built from the control files of the stored debs (not from
 * what a manifest claims), once per release manifest digest, and kept in
 * memory (a few KiB per package); signatures once per Release text.
 *
 * Dates: a release's `Date` (also the indexes' Last-Modified) is its
 * manifest's `issued` (now, if that lies ahead), raised to one second past
 * the previous serial's of the same product when it is not later: so a newer
 * `current` always has a later date, and If-Modified-Since never hides it.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { posix } from 'node:path';
import { gzipSync } from 'node:zlib';
import type { DebArtifact } from '../../manifests/types.js';
import type { Store, StoredRelease } from '../../storage/index.js';
import type { AptSigner } from './apt-signer.js';
import { readDebControl } from './deb-control.js';

/** A set of index files (path → bytes) with one Last-Modified. */
export interface AptFiles {
  files: Map<string, Buffer>;
  lastModified: Date;
}

/** The flat repository of one release. */
export interface AptIndex extends AptFiles {
  /** manifest path → deb artifact */
  debs: Map<string, DebArtifact>;
}

export const APT_COMPONENT = 'main';
const DEFAULT_ARCH = 'amd64';

interface Control {
  deb: DebArtifact;
  control: string;
}

function stanza(control: string, deb: DebArtifact, filename: string): string {
  const lines = control.replace(/\r\n/g, '\n').replace(/\n+$/, '').split('\n');
  const extra = [`Filename: ${filename}`, `Size: ${deb.size}`, `SHA256: ${deb.sha256}`];
  const kept = lines.filter((l) => !/^(Filename|Size|MD5sum|SHA1|SHA256|SHA512):/i.test(l));
  const descAt = kept.findIndex((l) => /^Description:/i.test(l));
  if (descAt < 0) kept.push(...extra);
  else kept.splice(descAt, 0, ...extra);
  return `${kept.join('\n')}\n`;
}

function hashes(algo: 'md5' | 'sha256', files: Array<[string, Buffer]>): string[] {
  return files.map(([name, b]) => ` ${createHash(algo).update(b).digest('hex')} ${String(b.length).padStart(8)} ${name}`);
}

/** Where the product repository's pool serves a deb: `pool/<sha256>/<file name of its manifest path>`. */
export const poolPath = (deb: DebArtifact): string => `pool/${deb.sha256}/${posix.basename(deb.path)}`;

/** `xz -c`, or null when the tool is missing or fails (the index is then offered without .xz). */
function xz(input: Buffer): Promise<Buffer | null> {
  return new Promise((resolve) => {
    const child = spawn('xz', ['-c', '-6'], { stdio: ['pipe', 'pipe', 'ignore'] });
    const out: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.on('error', () => resolve(null));
    child.on('close', (code) => resolve(code === 0 ? Buffer.concat(out) : null));
    child.stdin.on('error', () => {});
    child.stdin.end(input);
  });
}

/**
 * Each stored release's apt date (see the header): per product, by serial,
 * `max(issued clamped to now, previous + 1 s)`, in whole seconds.
 */
export function aptDates(releases: Iterable<StoredRelease>, now: Date): Map<string, Date> {
  const byProduct = new Map<string, StoredRelease[]>();
  for (const r of releases) byProduct.set(r.product, [...(byProduct.get(r.product) ?? []), r]);
  const out = new Map<string, Date>();
  const nowS = Math.floor(now.getTime() / 1000);
  for (const rels of byProduct.values()) {
    let prev = -Infinity;
    for (const r of [...rels].sort((a, b) => a.serial - b.serial)) {
      const issued = Math.floor(new Date(r.manifest.issued).getTime() / 1000);
      const own = Number.isNaN(issued) || issued > nowS ? nowS : issued;
      prev = Math.max(own, prev + 1);
      out.set(r.release, new Date(prev * 1000));
    }
  }
  return out;
}

function releaseText(fields: Array<[string, string]>, files: Array<[string, Buffer]>, md5: boolean): string {
  const lines = fields.map(([k, v]) => `${k}: ${v}`);
  if (md5) lines.push('MD5Sum:', ...hashes('md5', files));
  lines.push('SHA256:', ...hashes('sha256', files));
  return `${lines.join('\n')}\n`;
}

async function signed(files: Map<string, Buffer>, release: string, signer: AptSigner): Promise<void> {
  const bytes = Buffer.from(release, 'utf8');
  files.set('Release', bytes);
  files.set('InRelease', await signer.clearsign(release));
  files.set('Release.gpg', await signer.detach(bytes));
}

export interface AptRepos {
  /** the flat repository of `rel`, dated `date` */
  flat(rel: StoredRelease, date: Date): Promise<AptIndex>;
  /** suite `suite` of the product repository, holding `rel`, dated `date`; paths relative to `dists/SUITE/` */
  suite(rel: StoredRelease, suite: string, date: Date): Promise<AptFiles>;
  /** the signer (its public key for /apt/airlock.gpg) */
  signer(): Promise<AptSigner>;
}

/**
 * Indexes built on first use and kept by release digest, suite and date; a
 * failed build is retried next time. Entries of releases no longer asked for
 * stay until the process ends (a few KiB each).
 */
export function aptRepos(store: Store, signer: () => Promise<AptSigner>): AptRepos {
  const controls = new Map<string, Promise<Control[]>>();
  const built = new Map<string, Promise<AptFiles | AptIndex>>();

  const once = <T>(cache: Map<string, Promise<T>>, key: string, make: () => Promise<T>): Promise<T> => {
    let p = cache.get(key);
    if (!p) {
      p = make();
      cache.set(key, p);
      p.catch(() => cache.delete(key));
    }
    return p;
  };

  const controlsOf = (rel: StoredRelease): Promise<Control[]> =>
    once(controls, rel.digest, async () => {
      const out: Control[] = [];
      for (const a of rel.manifest.artifacts) {
        if (a.kind !== 'deb') continue;
        out.push({ deb: a, control: await readDebControl(store, a.sha256, a.size, `deb ${a.path} of release ${rel.release}`) });
      }
      return out;
    });

  return {
    signer,
    flat: (rel, date) =>
      once(built, `flat\0${rel.release}\0${rel.digest}\0${date.getTime()}`, async (): Promise<AptIndex> => {
        const cs = await controlsOf(rel);
        const packages = Buffer.from(cs.map((c) => stanza(c.control, c.deb, c.deb.path)).join('\n'), 'utf8');
        const packagesGz = gzipSync(packages, { level: 9 });
        const index: Array<[string, Buffer]> = [
          ['Packages', packages],
          ['Packages.gz', packagesGz],
        ];
        const files = new Map(index);
        const release = releaseText(
          [
            ['Origin', 'airlock'],
            ['Label', `airlock ${rel.product} ${rel.release}`],
            ['Version', rel.release],
            ['Date', date.toUTCString()],
          ],
          index,
          true,
        );
        await signed(files, release, await signer());
        return { files, lastModified: date, debs: new Map(cs.map((c) => [c.deb.path, c.deb])) };
      }) as Promise<AptIndex>,
    suite: (rel, suite, date) =>
      once(built, `suite\0${rel.release}\0${rel.digest}\0${suite}\0${date.getTime()}`, async (): Promise<AptFiles> => {
        const cs = await controlsOf(rel);
        const archs = [...new Set(cs.map((c) => c.deb.arch).filter((a) => a !== 'all'))].sort();
        if (archs.length === 0) archs.push(DEFAULT_ARCH);
        const index: Array<[string, Buffer]> = [];
        for (const arch of archs) {
          const dir = `${APT_COMPONENT}/binary-${arch}`;
          const packages = Buffer.from(
            cs
              .filter((c) => c.deb.arch === arch || c.deb.arch === 'all')
              .map((c) => stanza(c.control, c.deb, poolPath(c.deb)))
              .join('\n'),
            'utf8',
          );
          index.push([`${dir}/Packages`, packages], [`${dir}/Packages.gz`, gzipSync(packages, { level: 9 })]);
          const packagesXz = await xz(packages);
          if (packagesXz) index.push([`${dir}/Packages.xz`, packagesXz]);
        }
        const files = new Map(index);
        const release = releaseText(
          [
            ['Origin', 'airlock'],
            // Label and Codename never change for a suite: apt refuses a repository whose
            // Origin, Label or Codename changed unless told to; Version may (current moves on)
            ['Label', `airlock ${rel.product}`],
            ['Suite', suite],
            ['Codename', suite],
            ['Version', rel.release],
            ['Date', date.toUTCString()],
            ['Architectures', archs.join(' ')],
            ['Components', APT_COMPONENT],
            ['Description', `airlock ${rel.product} release ${rel.release} (serial ${rel.serial})`],
          ],
          index,
          false,
        );
        await signed(files, release, await signer());
        return { files, lastModified: date };
      }),
  };
}
