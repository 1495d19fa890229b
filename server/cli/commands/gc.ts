/** `airlock gc [--keep RELEASE…] [--dry-run]`: reclaim space no kept release needs. */
import type { Command } from 'commander';
import { parseDuration } from '../../../common/config.js';
import { gc } from '../../../storage/gc.js';
import { backendFromConfig, openStore } from '../../../storage/index.js';
import { humanBytes } from '../../../common/output.js';
import { action, withCommon } from '../frame.js';
import type { CommonFlags } from '../../config.js';
import { recordsOptions } from '../../store-records.js';

interface GcFlags extends CommonFlags {
  keep?: string[];
  dryRun?: boolean;
  partialOlderThan?: string;
  grace?: string;
}

/** 3600000 → "1h", 90000 → "90s" */
function graceText(ms: number): string {
  for (const [unit, size] of [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1000]] as const) {
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

export function register(program: Command): void {
  withCommon(
    program
      .command('gc')
      .description(
        'Delete blobs that no kept release needs (counted across releases, so image layers shared ' +
          'with a kept release stay), partial downloads older than a threshold, and quarantined blobs. ' +
          'Releases not kept are removed from the cache index. Takes the writer lock; blobs being ' +
          'served meanwhile are still delivered whole.',
      )
      .option('--keep <release...>', 'releases to keep (default: every stored release)')
      .option('--dry-run', 'only say what would be deleted and how much it would free')
      .option('--partial-older-than <duration>', 'delete partial downloads untouched for this long (e.g. 30m, 24h, 7d)', '24h')
      .option(
        '--grace <duration>',
        'keep unreferenced blobs younger than this (a stage on another node sharing the bucket may still be writing its release); ' +
          'default 1h with blobs in S3 (storage.s3.gc_grace), 0 on the filesystem',
      ),
    ['cache-dir'],
  )
    .addHelpText('after', '\nExit status: 0 done, 1 failure, unknown --keep release or cache locked, 2 usage.')
    .action(
      action<[], GcFlags>(async ({ config, out }, opts) => {
        const partialOlderThanMs = parseDuration(opts.partialOlderThan ?? '24h', '--partial-older-than');
        const graceMs =
          opts.grace !== undefined ? parseDuration(opts.grace, '--grace') : config.storage?.backend === 's3' ? config.storage.s3.gcGraceMs : undefined;
        const store = await openStore({ cacheDir: config.cacheDir, write: true, backend: await backendFromConfig(config), records: recordsOptions(config, (l, d) => out.warn(l, d)) });
        try {
          const r = await gc(store, { keep: opts.keep ?? null, dryRun: opts.dryRun ?? false, partialOlderThanMs, graceMs });
          const verb = r.dryRun ? 'would free' : 'freed';
          out.result(
            { ...r },
            `${r.dryRun ? '(dry run) ' : ''}kept ${r.releases.kept.length} release(s) [${r.releases.kept.join(', ')}]` +
              (r.releases.removed.length ? `, ${r.dryRun ? 'would remove' : 'removed'} [${r.releases.removed.join(', ')}]` : '') +
              `; blobs: ${r.blobs.kept.count} kept (${humanBytes(r.blobs.kept.bytes)}` +
              (r.blobs.young.count ? `, of which ${r.blobs.young.count} unreferenced but younger than the ${graceText(r.graceMs)} grace (${humanBytes(r.blobs.young.bytes)})` : '') +
              `), ${r.blobs.deleted.count} deleted (${humanBytes(r.blobs.deleted.bytes)}); ` +
              `partial: ${r.partial.count} (${humanBytes(r.partial.bytes)}); quarantine: ${r.quarantine.count} (${humanBytes(r.quarantine.bytes)}); ` +
              `${verb} ${humanBytes(r.freed)}`,
          );
        } finally {
          await store.close();
        }
      }),
    );
}
