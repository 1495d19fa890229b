/** `airlock import FILE.tar…`: verify a bundle against the local trust root and add it to the store. */
import type { Command } from 'commander';
import { openTrustGate } from '../../../manifests/index.js';
import { importBundle } from '../../../storage/bundle/index.js';
import { backendFromConfig, openStore } from '../../../storage/index.js';
import { humanBytes } from '../../../common/output.js';
import { readTrustFile } from '../../../common/trust-file.js';
import { action, withCommon } from '../frame.js';
import { requireTrust, type CommonFlags } from '../../config.js';
import { recordsOptions } from '../../store-records.js';

interface ImportFlags extends CommonFlags {
  checkVolumes?: boolean;
}

export function register(program: Command): void {
  withCommon(
    program
      .command('import')
      .argument('<bundle...>', 'FILE.tar, or its volumes FILE.tar.000 FILE.tar.001… in order (FILE.tar finds them)')
      .description(
        'Add a bundle made by "airlock export" to this cache. The signed manifest is checked against ' +
          'the LOCAL trust root (--trust or "trust" in the config; the bundle\'s roots are only followed ' +
          'as rotations signed from it) before any blob is read; then each blob is hashed while it ' +
          'streams in. Anything that is not exactly the next expected blob is refused. Blobs already ' +
          'in the cache are skipped; an interrupted import is finished by running it again.',
      )
      .option(
        '--check-volumes',
        'also check each volume against its .sha256 beside it (a second hash pass; every blob is verified against the signed manifest either way)',
      ),
    ['cache-dir', 'trust', 'accept-expired-until'],
  )
    .addHelpText(
      'after',
      '\nExit status: 0 imported (airlock status RELEASE says ready), 1 failure or cache locked,\n' +
        '2 usage, 3 verification failed (signature, expiry, rollback, digest, unsafe entry, bad bundle), 4 no space.',
    )
    .action(
      action<[string[]], ImportFlags>(async ({ config, out }, opts, files) => {
        const now = new Date();
        // --accept-expired-until covers the local root too: on an air-gapped site it may expire while nobody can replace it
        const gate = openTrustGate(readTrustFile(requireTrust(config)), { now, acceptExpiredUntil: config.acceptExpiredUntil });
        const store = await openStore({ cacheDir: config.cacheDir, write: true, backend: await backendFromConfig(config), records: recordsOptions(config, (l, d) => out.warn(l, d)) });
        try {
          let bar: ReturnType<typeof out.progress> | null = null;
          const r = await importBundle(store, files, {
            gate,
            checkVolumes: opts.checkVolumes === true,
            onVerified: ({ verified, root: used }) => {
              const m = verified.manifest;
              out.note(
                `verified ${m.product} ${m.release} serial ${m.serial} (signed by ${verified.signers.length} release key(s), trust root v${used.version})`,
              );
              for (const w of verified.warnings) out.warn(w, { release: m.release });
            },
            onProgress: (p) => {
              bar ??= out.progress(`import`, p.total);
              bar.update(p.bytes, { current: p.current });
            },
          });
          (bar as ReturnType<typeof out.progress> | null)?.stop();
          out.result(
            { ...r },
            `imported ${r.product} ${r.release} (serial ${r.serial}): ${r.blobs.total} blobs, ${humanBytes(r.bytes.total)} ` +
              `(${r.blobs.imported} new, ${humanBytes(r.bytes.imported)}; ${r.blobs.skipped} already present). ` +
              `airlock status ${r.release} now says ready.`,
          );
        } finally {
          await store.close();
        }
      }),
    );
}
