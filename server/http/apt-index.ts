/**
 * A flat apt repository (`deb [trusted=yes] http://cache/apt/R ./`) for one
 * release: `Packages` built from the control files of the release's debs,
 * `Packages.gz`, and a `Release` with their sizes and hashes. Built once per
 * release manifest digest and kept in memory (a few KiB per package).
 *
 * Each stanza's `Filename` is the artifact's manifest path, which is also
 * where the route serves it, so apt's `base + Filename` lands on the .deb.
 */
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import type { DebArtifact } from '../../manifests/types.js';
import type { Store, StoredRelease } from '../../storage/index.js';
import { readDebControl } from './deb-control.js';

export interface AptIndex {
  packages: Buffer;
  packagesGz: Buffer;
  release: Buffer;
  /** manifest path → deb artifact */
  debs: Map<string, DebArtifact>;
}

function stanza(control: string, deb: DebArtifact): string {
  const lines = control.replace(/\r\n/g, '\n').replace(/\n+$/, '').split('\n');
  const extra = [`Filename: ${deb.path}`, `Size: ${deb.size}`, `SHA256: ${deb.sha256}`];
  const at = lines.findIndex((l) => /^Description:/i.test(l));
  const kept = lines.filter((l) => !/^(Filename|Size|MD5sum|SHA1|SHA256|SHA512):/i.test(l));
  const descAt = kept.findIndex((l) => /^Description:/i.test(l));
  if (at < 0 || descAt < 0) kept.push(...extra);
  else kept.splice(descAt, 0, ...extra);
  return `${kept.join('\n')}\n`;
}

function hashes(algo: 'md5' | 'sha256', files: Array<[string, Buffer]>): string {
  return files.map(([name, b]) => ` ${createHash(algo).update(b).digest('hex')} ${String(b.length).padStart(8)} ${name}`).join('\n');
}

export async function buildAptIndex(store: Store, rel: StoredRelease, now: Date): Promise<AptIndex> {
  const debs = new Map<string, DebArtifact>();
  const stanzas: string[] = [];
  for (const a of rel.manifest.artifacts) {
    if (a.kind !== 'deb') continue;
    debs.set(a.path, a);
    const control = await readDebControl(store, a.sha256, a.size, `deb ${a.path} of release ${rel.release}`);
    stanzas.push(stanza(control, a));
  }
  const packages = Buffer.from(stanzas.join('\n'), 'utf8');
  const packagesGz = gzipSync(packages, { level: 9 });
  // Date: the manifest's issue date, unless that lies in the future (apt refuses "not valid yet")
  const issued = new Date(rel.manifest.issued);
  const date = Number.isNaN(issued.getTime()) || issued > now ? now : issued;
  const files: Array<[string, Buffer]> = [
    ['Packages', packages],
    ['Packages.gz', packagesGz],
  ];
  const release = Buffer.from(
    [
      'Origin: airlock',
      `Label: airlock ${rel.product} ${rel.release}`,
      `Version: ${rel.release}`,
      `Date: ${date.toUTCString()}`,
      'MD5Sum:',
      hashes('md5', files),
      'SHA256:',
      hashes('sha256', files),
      '',
    ].join('\n'),
    'utf8',
  );
  return { packages, packagesGz, release, debs };
}

/** Indexes keyed by release and manifest digest, built on first use; a failed build is retried next time. */
export function aptIndexCache(store: Store, clock: () => Date) {
  const cache = new Map<string, Promise<AptIndex>>();
  return (rel: StoredRelease): Promise<AptIndex> => {
    const key = `${rel.release}\0${rel.digest}`;
    let p = cache.get(key);
    if (!p) {
      p = buildAptIndex(store, rel, clock());
      cache.set(key, p);
      p.catch(() => cache.delete(key));
    }
    return p;
  };
}
