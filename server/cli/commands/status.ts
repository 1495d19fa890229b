/** `airlock status [RELEASE]`: is a release ready to serve, and if not, exactly what is missing. */
import type { Command } from 'commander';
import { backendFromConfig, openStore, type ReleaseStatus } from '../../../storage/index.js';
import { humanBytes } from '../../../common/output.js';
import type { CommonFlags } from '../../config.js';
import { action, withCommon } from '../frame.js';
import { recordsOptions } from '../../store-records.js';

const NOT_READY = 1;

function oneLine(s: ReleaseStatus): string {
  const head = `${s.release}  ${s.product} serial ${s.serial}  `;
  if (s.ready) return `${head}ready      ${s.files.total} files, ${humanBytes(s.bytes.total)}`;
  return `${head}NOT READY  ${s.files.present}/${s.files.total} files, ${humanBytes(s.bytes.missing)} of ${humanBytes(s.bytes.total)} missing`;
}

const missingLine = (m: ReleaseStatus['missing'][number]): string => `  missing ${m.paths.join(', ')}  sha256:${m.sha256}  ${m.size} bytes`;

/** lines written at a time: 50,000 missing files are ~7 MB of text, never built as one string */
const LINES_AT_ONCE = 2000;

export function register(program: Command): void {
  withCommon(
    program
      .command('status [release]')
      .description(
        'Say whether a staged release is ready: every file it needs is in the cache, verified.\n' +
          'With RELEASE: "ready", or each missing file with its path, sha256 and size.\n' +
          'Without: one line per stored release. Reads only; works while `airlock stage` runs.\n' +
          'Needs no trust root (the cache only holds manifests that were verified when staged).',
      ),
    ['cache-dir'],
  )
    .addHelpText('after', '\nExit status: 0 ready (every release, without RELEASE), 1 not ready or no such release, 2 usage.')
    .action(
      action<[string | undefined], CommonFlags>(async ({ config, out }, _opts, release) => {
        const store = await openStore({ cacheDir: config.cacheDir, backend: await backendFromConfig(config), records: recordsOptions(config, (l, d) => out.warn(l, d)) });
        try {
          if (release) {
            const s = await store.status(release);
            if (out.json) out.result({ ok: s.ready, status: s }, '');
            else {
              // human text in pieces (the same lines, in order)
              out.result({}, oneLine(s));
              for (let i = 0; i < s.missing.length; i += LINES_AT_ONCE) {
                out.result({}, s.missing.slice(i, i + LINES_AT_ONCE).map(missingLine).join('\n'));
              }
            }
            return s.ready ? 0 : NOT_READY;
          }
          const all: ReleaseStatus[] = [];
          for (const r of await store.listReleases()) all.push(await store.status(r.release));
          if (all.length === 0) {
            out.result({ ok: false, releases: [] }, `no release staged in ${store.cacheDir}`);
            return NOT_READY;
          }
          out.result(
            { ok: all.every((s) => s.ready), releases: all.map(({ missing: _m, ...rest }) => ({ ...rest, missingBlobs: _m.length })) },
            all.map(oneLine).join('\n'),
          );
          return all.every((s) => s.ready) ? 0 : NOT_READY;
        } finally {
          await store.close();
        }
      }),
    );
}
