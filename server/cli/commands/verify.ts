/** `airlock verify [RELEASE] [--rebuild-index]`: re-hash the store, quarantine what is corrupt. */
import type { Command } from 'commander';
import { backendFromConfig, openStore } from '../../../storage/index.js';
import type { CommonFlags } from '../../config.js';
import { action, withCommon } from '../frame.js';
import { recordsOptions } from '../../store-records.js';

interface VerifyFlags extends CommonFlags {
  rebuildIndex?: boolean;
}

const CORRUPT = 3;

export function register(program: Command): void {
  withCommon(
    program
      .command('verify [release]')
      .description(
        'Re-hash every blob in the cache (or those RELEASE needs) against its sha256. A corrupt blob\n' +
          'is moved to cache_dir/quarantine/, or PREFIX/quarantine/ in the bucket with storage.backend s3\n' +
          '(never served again; `airlock stage` fetches it anew)\n' +
          'and reported with expected and found digest and size; missing blobs are listed too.\n' +
          '--rebuild-index first rebuilds the index database from blobs/ and the stored envelopes.\n' +
          'Takes the writer lock. Needs no trust root.',
      )
      .option('--rebuild-index', 'rebuild the index (index/level) from blobs/ and index/envelopes/ first'),
    ['cache-dir'],
  )
    .addHelpText('after', '\nExit status: 0 all blobs intact, 1 failure (e.g. cache locked), 2 usage, 3 corrupt blobs found.')
    .action(
      action<[string | undefined], VerifyFlags>(async ({ config, out }, opts, release) => {
        const store = await openStore({ cacheDir: config.cacheDir, write: true, backend: await backendFromConfig(config), records: recordsOptions(config, (l, d) => out.warn(l, d)) });
        try {
          if (opts.rebuildIndex) {
            const r = await store.rebuildIndex();
            out.note(`index rebuilt: ${r.releases} release(s), ${r.blobs} blob(s)`, { releases: r.releases, blobs: r.blobs });
          }
          let bar: ReturnType<typeof out.progress> | null = null;
          const report = await store.rehash(release, {
            onProgress: (done, total) => {
              bar ??= out.progress('verify', total);
              bar.update(done);
              out.event('progress', { done, total });
            },
          });
          (bar as ReturnType<typeof out.progress> | null)?.stop();
          const lines = [`checked ${report.checked} blob(s): ${report.ok} ok, ${report.corrupt.length} corrupt, ${report.missing.length} missing`];
          for (const c of report.corrupt) {
            lines.push(
              `  CORRUPT sha256:${c.sha256}: expected ${c.expectedSize ?? '?'} bytes, found ${c.foundSize} bytes with sha256:${c.foundSha256}; moved to ${c.quarantinedAs}`,
            );
          }
          for (const m of report.missing) lines.push(`  missing ${m.paths.join(', ')}  sha256:${m.sha256}  ${m.size} bytes`);
          const { ok: intact, ...rest } = report;
          out.result({ ok: report.corrupt.length === 0, intact, ...rest }, lines.join('\n'));
          return report.corrupt.length > 0 ? CORRUPT : 0;
        } finally {
          await store.close();
        }
      }),
    );
}
