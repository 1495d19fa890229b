/** `airlock export RELEASE --out FILE.tar [--split SIZE]`: a bundle to carry across the air gap. */
import type { Command } from 'commander';
import { AirlockError } from '../../../manifests/errors.js';
import { exportBundle } from '../../../storage/bundle/index.js';
import { backendFromConfig, openStore } from '../../../storage/index.js';
import { parseSize } from '../../../common/config.js';
import { humanBytes } from '../../../common/output.js';
import { readTrustFile } from '../../../common/trust-file.js';
import { action, withCommon } from '../frame.js';
import type { CommonFlags } from '../../config.js';
import { recordsOptions } from '../../store-records.js';

interface ExportFlags extends CommonFlags {
  out?: string;
  split?: string;
  root?: string[];
}

const collect = (v: string, prev: string[] = []): string[] => [...prev, v];

export function register(program: Command): void {
  withCommon(
    program
      .command('export')
      .argument('<release>', 'a release stored in the cache (see airlock status)')
      .description(
        'Write RELEASE as a bundle for an air-gapped site: one tar holding a header, the trust root ' +
          'chain, the signed manifest, then every blob the release needs in manifest order. ' +
          'Carry it across and run "airlock import FILE.tar" on the cache node there.',
      )
      .requiredOption('--out <file.tar>', 'where to write the bundle (a FILE.tar.sha256 checksum is written beside it)')
      .option('--split <size>', 'cut into volumes of at most SIZE (e.g. 4G) named FILE.tar.000, .001…, each with its .sha256')
      .option('--root <root.json>', 'a newer root of the chain to carry as well (repeatable; --trust is always carried)', collect),
    ['cache-dir', 'trust'],
  )
    .addHelpText(
      'after',
      '\nThe release must be complete in the cache (airlock stage first).\n' +
        'Exit status: 0 written, 1 release unknown or incomplete, 2 usage, 4 no space.',
    )
    .action(
      action<[string], ExportFlags>(async ({ config, out }, opts, release) => {
        const split = opts.split === undefined ? null : parseSize(opts.split, '--split');
        if (split !== null && split < 1024 * 1024) throw new AirlockError('EUSAGE', `--split ${opts.split}: volumes must be at least 1M`);
        const rootFiles = [...(config.trust ? [config.trust] : []), ...(opts.root ?? [])];
        const roots = rootFiles.map((f) => readTrustFile(f));
        if (roots.length === 0) out.warn('no --trust root given: the bundle carries no root chain (the importer uses its own root)');
        const store = await openStore({ cacheDir: config.cacheDir, backend: await backendFromConfig(config), records: recordsOptions(config, (l, d) => out.warn(l, d)) });
        try {
          let bar: ReturnType<typeof out.progress> | null = null;
          const r = await exportBundle(store, release, {
            out: opts.out!,
            split,
            roots,
            onProgress: (p) => {
              bar ??= out.progress(`export ${release}`, p.total);
              bar.update(p.bytes, { current: p.current });
            },
          });
          (bar as ReturnType<typeof out.progress> | null)?.stop();
          const lines = r.volumes.map((v) => `  ${v.path}  ${humanBytes(v.bytes)}  sha256 ${v.sha256}`);
          out.result(
            { release: r.release, product: r.product, serial: r.serial, blobs: r.blobs, bytes: r.bytes, roots: r.roots, volumes: r.volumes },
            `exported ${r.product} ${r.release} (serial ${r.serial}): ${r.blobs} blobs, ${humanBytes(r.bytes)}, ` +
              `root chain [${r.roots.join(', ')}] in ${r.volumes.length} file(s):\n${lines.join('\n')}`,
          );
        } finally {
          await store.close();
        }
      }),
    );
}
