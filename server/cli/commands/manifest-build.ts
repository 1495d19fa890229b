/**
 * `airlock manifest build SOURCES.yml --out PAYLOAD.json` (publisher). Shares
 * the `manifest` parent with manifest.ts (sign, verify): whichever registers
 * first creates it.
 */
import type { Command } from 'commander';
import type { CommonFlags } from '../../config.js';
import { AirlockError } from '../../../manifests/errors.js';
import { humanBytes } from '../../../common/output.js';
import { buildPayload, readSources } from '../../stage/build.js';
import { upstreamClients } from '../../stage/stage.js';
import { action, withCommon, UPSTREAM_FLAGS } from '../frame.js';
import { manifestGroup } from './manifest-group.js';
import { writeOutputFile } from './publisher-files.js';

interface BuildFlags extends CommonFlags {
  out?: string;
}

export function register(program: Command): void {
  const manifest = manifestGroup(program);
  withCommon(
    manifest
      .command('build')
      .description(
        'Build a release manifest payload from SOURCES.yml: fetch every listed URL (through --proxy or ' +
          'http_proxy/https_proxy, no_proxy honoured), hash it, read deb fields with dpkg-deb and gem ' +
          'name/version from the file name when not given, resolve image tags to digests (an index to ' +
          'linux/amd64) and list their blobs. Writes PAYLOAD.json for `airlock manifest sign`.',
      )
      .summary('build a release payload from upstream URLs and image tags (fetches and hashes them)')
      .argument('<sources.yml>', 'what the release contains')
      .requiredOption('--out <payload.json>', 'where to write the payload (atomically)')
      .addHelpText(
        'after',
        '\nSOURCES.yml:\n' +
          '  product: stackato\n  release: 3.6.2\n  serial: 17\n  expires: 2027-03-01      # default: 90 days after now\n' +
          '  files:  [ {url, urls?, path?, roles?, install: {extract|copy}?} or a URL ]\n' +
          '  debs:   [ {url, urls?, path?, roles?, package?, version?, arch?} or a URL ]\n' +
          '  gems:   [ {url, urls?, path?, roles?, gem?, version?} or a URL ]\n' +
          '  images: [ {image: host[:port]/repo:tag, path?, roles?} or a reference ]\n' +
          '\nExit status: 0 written, 2 usage (bad SOURCES.yml), 3 bad manifest or digest mismatch, 5 upstream unreachable.',
      ),
    UPSTREAM_FLAGS,
  ).action(
    action<[string], BuildFlags>(async ({ config, out }, opts, sourcesPath) => {
      if (!opts.out) throw new AirlockError('EUSAGE', 'give --out PAYLOAD.json');
      const { http, registry } = upstreamClients(config);
      try {
        const payload = await buildPayload(await readSources(sourcesPath), { http, registry, out });
        await writeOutputFile(opts.out, `${JSON.stringify(payload, null, 2)}\n`);
        const bytes = payload.artifacts.reduce((n, a) => n + a.size + (a.kind === 'oci-image' ? a.blobs.reduce((m, b) => m + b.size, 0) : 0), 0);
        out.result(
          { out: opts.out, product: payload.product, release: payload.release, serial: payload.serial, artifacts: payload.artifacts.length, bytes },
          `wrote ${opts.out}: ${payload.product} ${payload.release} serial ${payload.serial}, ${payload.artifacts.length} artifacts (${humanBytes(bytes)})\n` +
            `next: airlock manifest sign ${opts.out} --key RELEASE.key --out ENVELOPE.json`,
        );
      } finally {
        http.close();
      }
    }),
  );
}
