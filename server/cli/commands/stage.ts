/** `airlock stage ENVELOPE [--plan] [--skip-preflight] [--parallel N]` */
import { setFlagsFromString } from 'node:v8';
import { Command, Option } from 'commander';
import { withCommon, UPSTREAM_FLAGS, action } from '../frame.js';
import type { CommonFlags } from '../../config.js';
import { parseSize } from '../../../common/config.js';
import { humanBytes } from '../../../common/output.js';
import { stageRelease, type StageSummary } from '../../stage/stage.js';
import type { StagePlan } from '../../stage/plan.js';

const collect = (v: string, prev: string[] = []): string[] => [...prev, v];

interface StageFlags extends CommonFlags {
  plan?: boolean;
  skipPreflight?: boolean;
  memoryFloor?: string;
}

export function formatPlan(plan: StagePlan): string {
  const lines = [
    `release ${plan.product} ${plan.release}: ${plan.blobs.length} files, ${plan.present} already in the cache, ${plan.missing.length} to fetch (${humanBytes(plan.bytes.missing)})`,
    `disk: needs ${humanBytes(plan.space.needed)} (missing + ${humanBytes(plan.space.margin)} margin), ${humanBytes(plan.space.free)} free on the filesystem of ${plan.space.filesystemOf}` +
      (plan.space.needed > plan.space.free ? '  ← NOT ENOUGH' : ''),
  ];
  if (plan.hosts.length > 0) {
    const mirrors = plan.hosts.some((h) => h.mirror);
    lines.push('', mirrors ? 'mirrors (asked first, directly) and upstream hosts the proxy and firewall must allow:' : 'upstream hosts the proxy and firewall must allow:');
    const rows = [
      ['HOST:PORT', 'SCHEME', 'VIA', 'FILES', 'BYTES'],
      ...plan.hosts.map((h) => [h.host, h.scheme, h.mirror ? 'direct (mirror)' : h.via, String(h.files), humanBytes(h.bytes)]),
    ];
    const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
    for (const r of rows) lines.push(`  ${r.map((c, i) => c.padEnd(widths[i]!)).join('  ')}`.trimEnd());
  }
  if (plan.registries.length > 0) {
    lines.push('', `note: registries (${plan.registries.join(', ')}) may also send clients to a token service and to blob storage on other hosts`);
  }
  if (plan.missing.length > 0) {
    lines.push('', 'files to fetch:');
    for (const b of plan.missing) lines.push(`  ${b.paths.join(', ')}  ${humanBytes(b.size)}  sha256:${b.sha256.slice(0, 12)}…  ${b.urls[0] ?? ''}`);
  }
  return lines.join('\n');
}

function planData(plan: StagePlan): Record<string, unknown> {
  return {
    release: plan.release,
    product: plan.product,
    files: plan.blobs.length,
    present: plan.present,
    missing: plan.missing.map((b) => ({ sha256: b.sha256, size: b.size, paths: b.paths, urls: b.urls })),
    bytes: plan.bytes,
    space: plan.space,
    hosts: plan.hosts,
    registries: plan.registries,
  };
}

function formatSummary(s: StageSummary): string {
  const fallbacks = s.sources.filter((a) => a.failed.length > 0);
  return (
    `staged ${s.product} ${s.release} (serial ${s.serial}): ready\n` +
    `  fetched ${s.fetched} files (${humanBytes(s.bytesFetched)}; ${humanBytes(s.bytesTransferred)} over the wire, ${humanBytes(s.resumedBytes)} resumed), ` +
    `${s.alreadyPresent} already present, ${s.retries} retries, ${s.seconds.toFixed(1)} s` +
    // a listed URL that failed is worth knowing about even though another one served the file
    s.mirrors
      .map(
        (m) =>
          `\n  mirror ${m.url}: served ${m.files} files (${humanBytes(m.bytes)}), ${m.lacked} not held there` +
          (m.failed > 0 ? `, ${m.failed} failed` : '') +
          (m.down ? `; given up: ${m.down}` : ''),
      )
      .join('') +
    fallbacks.map((a) => `\n  ${a.paths[0]}: from ${a.url}${a.mirror ? ' (mirror)' : ''} after ${a.failed.map((f) => `${f.url} failed (${f.code})`).join(', ')}`).join('')
  );
}

export function register(program: Command): void {
  const cmd = new Command('stage')
    .summary('pull everything a signed release lists into the cache, through the proxy')
    .description(
      'Verify the signed release ENVELOPE (a path or an http(s) URL) against the trust root, store it, then ' +
        'download every file the cache still lacks from upstream, through --proxy or http_proxy/https_proxy ' +
        '(no_proxy honoured), each verified before it is stored. Resumable: interrupted or failed downloads ' +
        'continue from their partial files on the next run. Staging never installs anything.\n\n' +
        'Before downloading, checks free disk on cache_dir (missing bytes + margin) and free memory. ' +
        '--plan prints the files, bytes, free space needed and the upstream host:port table for the ' +
        'firewall, and changes nothing.\n\n' +
        'Mirrors (--mirror URL, or mirrors in the config) are other airlock caches, e.g. a site cache above ' +
        'this rack cache: each file is asked of them first by digest (URL/blobs/sha256/HEX), directly, then ' +
        'of its signed upstream URLs. Their bytes are verified like any others.',
    )
    .argument('<envelope>', 'signed release manifest (DSSE envelope): file path or URL');
  withCommon(cmd, ['cache-dir', 'trust', ...UPSTREAM_FLAGS, 'accept-expired-until'])
    .option('--plan', 'print what would be fetched, bytes, space needed and upstream hosts; change nothing')
    .option('--skip-preflight', 'do not refuse on low disk space or memory')
    .option('--parallel <n>', 'downloads at a time (default 8, or parallel in the config)')
    .addOption(new Option('--memory-floor <size>', 'free memory required to start (default 256M)'))
    .option('--min-rate <bytes/s>', 'a download slower than this over --rate-window moves on to the next URL (default 1K, or min_rate; 0: off)')
    .option('--rate-window <seconds>', 'the window --min-rate is measured over (default 60, or rate_window)')
    .addOption(
      new Option('--mirror <url>', 'another airlock cache to ask first for each file, by digest, directly (never through the proxy); repeatable, replaces mirrors in the config').argParser(collect),
    )
    .addHelpText(
      'after',
      '\nExit status: 0 staged (ready), 2 usage, 3 verification failed (signature, rollback, expiry, wrong bytes), ' +
        '4 preflight failed (ENOSPACE, EMEMORY), 5 files could not be fetched or interrupted (a re-run resumes; ' +
        '`airlock status RELEASE` lists what is missing), 1 other failure (ELOCKED…).',
    )
    .action(
      action<[string], StageFlags>(async ({ config, out }, opts, source) => {
        // V8 lets the young generation grow to 16 MiB per semi-space; a stage's garbage is mostly
        // 64 KiB socket-read buffers, freed only when their small handles are scavenged: kept at
        // its first size, scavenges come often enough that they do not pile up (bench/stage-s3)
        setFlagsFromString('--semi-space-growth-factor=1');
        const controller = new AbortController();
        const onSignal = (sig: NodeJS.Signals): void => {
          if (controller.signal.aborted) return;
          out.note(`${sig}: stopping; partial downloads are kept, run the same command again to resume`);
          controller.abort();
        };
        process.on('SIGINT', onSignal);
        process.on('SIGTERM', onSignal);
        try {
          const s = await stageRelease(
            config,
            out,
            {
              source,
              plan: opts.plan,
              skipPreflight: opts.skipPreflight,
              memoryFloor: opts.memoryFloor ? parseSize(opts.memoryFloor, '--memory-floor') : undefined,
            },
            { signal: controller.signal },
          );
          if (!s.staged) {
            out.result({ plan: planData(s.plan) }, formatPlan(s.plan));
            return;
          }
          out.result(
            {
              release: s.release,
              product: s.product,
              serial: s.serial,
              digest: s.digest,
              ready: true,
              fetched: s.fetched,
              alreadyPresent: s.alreadyPresent,
              bytesFetched: s.bytesFetched,
              bytesTransferred: s.bytesTransferred,
              resumedBytes: s.resumedBytes,
              retries: s.retries,
              seconds: s.seconds,
              // every file for which a listed URL failed, with the URL that served it in the end
              fallbacks: s.sources.filter((a) => a.failed.length > 0),
              // per mirror: files served and their bytes, not held, failed, given up
              mirrors: s.mirrors,
            },
            formatSummary(s),
          );
        } finally {
          process.off('SIGINT', onSignal);
          process.off('SIGTERM', onSignal);
        }
      }),
    );
  program.addCommand(cmd);
}
