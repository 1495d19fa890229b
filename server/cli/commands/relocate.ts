/**
 * `airlock relocate NEW_DIR | s3://BUCKET[/PREFIX] | --to-fs [NEW_DIR]`:
 * move the cache to another disk (storage/relocate.ts), or its blobs into an
 * S3 bucket or back (storage/relocate-storage.ts), then point the config at
 * the new place.
 */
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { AirlockError, isAirlockError } from '../../../manifests/errors.js';
import { relocate } from '../../../storage/relocate.js';
import { relocateStorage, type RelocateStorageResult } from '../../../storage/relocate-storage.js';
import type { StorageConfig } from '../../../storage/backend/select.js';
import { humanBytes, type Output } from '../../../common/output.js';
import { readTrustFile } from '../../../common/trust-file.js';
import { action, withCommon, type ProgramDeps } from '../frame.js';
import { DEFAULT_CONFIG_FILE, storageConfig, type AirlockConfig, type CommonFlags } from '../../config.js';

interface RelocateFlags extends CommonFlags {
  keepOld?: boolean;
  toFs?: boolean;
  endpoint?: string;
  region?: string;
  pathStyle?: boolean;
  removeFromBucket?: boolean;
}

type Bar = ReturnType<Output['progress']>;

/** s3://BUCKET[/PREFIX] and the flags beside it, checked as the storage: key of airlock.yml is */
function s3Target(url: string, opts: RelocateFlags): StorageConfig {
  const m = /^s3:\/\/([^/]*)\/?(.*)$/.exec(url);
  try {
    if (!m) throw new AirlockError('EUSAGE', `storage.s3.bucket: "${url}" is not s3://BUCKET[/PREFIX]`);
    return storageConfig(
      {
        backend: 's3',
        s3: { bucket: m[1]!, prefix: m[2]!.replace(/\/+$/, ''), endpoint: opts.endpoint, region: opts.region, force_path_style: opts.pathStyle },
      },
      null,
    );
  } catch (e) {
    // the same rules as the config key, said in terms of this command line
    if (!isAirlockError(e)) throw e;
    const why = e.message.replace(/^config null: /, '').replace(/^storage\.s3\.(bucket|prefix)/, 's3://BUCKET/PREFIX: $1').replace(/^storage\.s3\.endpoint/, '--endpoint');
    throw new AirlockError('EUSAGE', `relocate ${url}: ${why}`, { target: url });
  }
}

function storageReport(r: RelocateStorageResult, out: Output, viaCacheDirFlag: boolean): void {
  const { moved, stuck } = r.servers;
  const dirMoved = r.from !== r.to;
  const handOver =
    (stuck.length > 0
      ? `airlock serve (pid ${stuck.join(', ')}) still serves from the old copy, which is kept: restart it (or send it SIGHUP), then run the same relocate again`
      : moved.length > 0
        ? `airlock serve (pid ${moved.join(', ')}) now serves the blobs from ${r.target}: no restart needed`
        : 'no airlock serve was running on this cache') +
    (dirMoved && viaCacheDirFlag ? `; you passed --cache-dir: use --cache-dir ${r.to} from now on` : '');
  if (r.outcome === 'nothing') {
    out.result({ ...r }, `the blobs are already there (${r.target}); nothing to do`);
    return;
  }
  const b = r.blobs;
  const old =
    r.direction === 'to-s3'
      ? r.oldRemoved
        ? `${r.from}/blobs removed`
        : `${r.from}/blobs kept`
      : (dirMoved ? (r.oldRemoved ? `old folder ${r.from} removed; ` : `old folder ${r.from} kept; `) : '') +
        (r.bucket ? `${r.bucket.removed} blob(s) removed from the bucket, ${r.bucket.kept} kept` : 'the bucket keeps its copy');
  const summary =
    r.outcome === 'finished'
      ? `${stuck.length > 0 ? 'could not finish' : 'finished'} the earlier move of the blobs to ${r.target}; ${old}`
      : `moved ${b.total} blobs (${humanBytes(b.bytes)}; ${b.copied} copied now, ${b.present} already there and verified` +
        `${b.replaced ? `, ${b.replaced} there but wrong and sent again` : ''}, each checked there) from ${r.source} to ${r.target}` +
        `${r.records.published.length ? `; ${r.records.published.length} release record(s) put in the bucket` : ''}; ` +
        `${r.configFile}: storage${dirMoved ? ' and cache_dir' : ''} switched; ${old}`;
  out.result({ ...r, handOver }, `${summary}\n${handOver}`);
}

async function folderMove(config: AirlockConfig, out: Output, opts: RelocateFlags, newDir: string, configFile: string, deps: ProgramDeps): Promise<void> {
  let bar: Bar | null = null;
  let phase = '';
  const r = await relocate({
    from: config.cacheDir,
    to: newDir,
    configFile,
    keepOld: opts.keepOld ? true : undefined,
    onNote: (m) => out.note(m),
    hooks: { pause: deps.hooks?.relocatePause },
    onProgress: (p) => {
      if (p.phase !== phase) {
        bar?.stop();
        phase = p.phase;
        bar = out.progress(p.phase === 'copy' ? 'copy' : 'verify', p.total);
      }
      bar!.update(p.bytes, { current: p.current });
    },
  });
  (bar as Bar | null)?.stop();
  const { moved, stuck } = r.servers;
  const handOver =
    (stuck.length > 0
      ? `airlock serve (pid ${stuck.join(', ')}) still serves from ${r.from}, which is kept: restart it (or send it SIGHUP), then run "airlock relocate ${r.to}" again`
      : moved.length > 0
        ? `airlock serve (pid ${moved.join(', ')}) now serves from ${r.to}: no restart needed`
        : `no airlock serve was serving from ${r.from}`) + (opts.cacheDir ? `; you passed --cache-dir: use --cache-dir ${r.to} from now on` : '');
  if (r.outcome === 'nothing') {
    out.result({ ...r }, `cache_dir is already ${r.to}; nothing to do`);
    return;
  }
  out.result(
    { ...r, handOver },
    (r.outcome === 'finished'
      ? `${stuck.length > 0 ? 'could not finish' : 'finished'} the earlier relocation from ${r.from} to ${r.to}${r.oldRemoved ? ' (old copy removed)' : ''}`
      : `relocated ${r.files} files (${humanBytes(r.bytes)}; ${r.copied.files} copied now, ${r.blobsVerified} blobs re-hashed) ` +
        `from ${r.from} to ${r.to}; ${r.configFile}: cache_dir = ${r.to}; ` +
        (r.oldRemoved ? 'old copy removed' : `old copy kept at ${r.from}`)) + `\n${handOver}`,
  );
}

export function register(program: Command, deps: ProgramDeps = {}): void {
  withCommon(
    program
      .command('relocate')
      .argument('[target]', 'NEW_DIR: the new cache folder (empty or not existing); or s3://BUCKET[/PREFIX]: move the blobs into that bucket')
      .description(
        'Move the cache to NEW_DIR, or its blobs into an S3 bucket (s3://BUCKET[/PREFIX]) or back into a ' +
          'folder (--to-fs), without downloading anything again. Every blob is verified where it lands ' +
          'before the config file is switched (atomically: cache_dir, or the storage: section); only then ' +
          'is the old copy removed. A journal (relocate.json in cache_dir) makes it safe to interrupt at ' +
          'any point: the config always names one complete copy; run the same command again to finish. ' +
          '"airlock serve" keeps answering from the old copy during the move and is handed over to the ' +
          'new one (SIGHUP) before the old copy goes: downloads in flight finish, no restart.',
      )
      .option('--to-fs', 'move the blobs out of the bucket back under cache_dir/blobs (or under TARGET, the new cache_dir)')
      .option('--endpoint <url>', 'with s3://: the S3 endpoint, e.g. http://rgw.site:7480 (default: AWS)')
      .option('--region <region>', 'with s3://: the region (default us-east-1)')
      .option('--path-style', 'with s3://: path-style URLs (default: on when --endpoint is given, as RGW needs)')
      .option('--no-path-style', 'with s3://: virtual-host URLs even with --endpoint')
      .option('--keep-old', 'keep the old copy after the switch (the old folder, or cache_dir/blobs after a move into a bucket)')
      .option(
        '--remove-from-bucket',
        'with --to-fs: once switched, delete from the bucket the blobs this cache now holds, but none that a release ' +
          'record in the bucket which this cache does not hold needs (by default the bucket keeps its copy: other cache nodes may share it)',
      ),
    ['cache-dir', 'trust'],
  )
    .addHelpText(
      'after',
      '\nInto a bucket: credentials come from the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, or\n' +
        'AWS_PROFILE); the bucket must exist and answer, checked before anything is copied (exit 2 no\n' +
        'credentials, denied or no such bucket; exit 5 the endpoint does not answer). A prefix that already\n' +
        'holds blobs is fine: blobs are content-addressed, those there are hashed in the bucket and kept\n' +
        'when they match (sent again when not); others are left alone. Each blob is uploaded as stage\n' +
        'uploads: its file hashed once (sha256 against its name, and the MD5 of each part), then sent\n' +
        'from the file, each request with the Content-MD5 of the bytes hashed, so the gateway takes no\n' +
        'other bytes; then it is read back from the bucket and hashed again (size and sha256). Release\n' +
        'records (index/envelopes, accepted serials) are put in the bucket (and read back) before the switch;\n' +
        'a release whose record there is another envelope is refused before anything is copied.\n' +
        'Back to a folder (--to-fs): each blob is read from the bucket, hashed as it is written, fsynced\n' +
        'and renamed into place; a blob the bucket holds wrong is EINTEGRITY (exit 3) and nothing is\n' +
        "switched. index/ is synced from the bucket's release records first (checked against --trust)\n" +
        'and kept. The bucket keeps its copy unless --remove-from-bucket, which deletes the records of\n' +
        "the releases now held here, then the blobs, but none that another record there names.\n" +
        '\nExamples:\n' +
        '  airlock relocate /mnt/bigdisk/airlock\n' +
        '  airlock relocate s3://airlock/site-a --endpoint http://rgw.site:7480\n' +
        '  airlock relocate --to-fs                        # blobs back under cache_dir/blobs\n' +
        '  airlock relocate --to-fs /mnt/bigdisk/airlock   # ... under a new cache_dir\n' +
        '\nExit status: 0 moved (or nothing to do), 1 failure or cache locked, 2 usage (or no credentials,\n' +
        'access denied, no such bucket), 3 a copy did not verify, 4 NEW_DIR too small, 5 the bucket does not answer.',
    )
    .action(
      action<[string | undefined], RelocateFlags>(async ({ config, out }, opts, target) => {
        const configFile = config.configFile ?? resolve(DEFAULT_CONFIG_FILE);
        const storage: StorageConfig = config.storage ?? { backend: 'fs' };
        const toS3 = target?.startsWith('s3://') ?? false;
        const s3Only = (flag: string): never => {
          throw new AirlockError('EUSAGE', `relocate: ${flag} goes with s3://BUCKET[/PREFIX]`);
        };
        if (!toS3) {
          if (opts.endpoint !== undefined) s3Only('--endpoint');
          if (opts.region !== undefined) s3Only('--region');
          if (opts.pathStyle !== undefined) s3Only(opts.pathStyle ? '--path-style' : '--no-path-style');
        }
        if (opts.removeFromBucket && !opts.toFs) throw new AirlockError('EUSAGE', 'relocate: --remove-from-bucket goes with --to-fs');
        if (toS3 && opts.toFs) throw new AirlockError('EUSAGE', 'relocate: s3://… and --to-fs go opposite ways; give one');
        if (!toS3 && !opts.toFs && !target) throw new AirlockError('EUSAGE', 'relocate: give NEW_DIR, s3://BUCKET[/PREFIX] or --to-fs');
        const bucket = toS3 ? s3Target(target!, opts) : null;
        if (!config.configFile) {
          out.note(`no config file in use: the new place will be written to ${configFile} (the file airlock reads by default)`);
        }
        if (!toS3 && !opts.toFs && target) {
          if (storage.backend === 's3') {
            throw new AirlockError(
              'EUSAGE',
              `relocate ${target}: the blobs are in s3://${storage.s3.bucket}/${storage.s3.prefix}; "airlock relocate --to-fs ${target}" brings them back into that folder (moving only cache_dir's local files is not supported)`,
              { target },
            );
          }
          return folderMove(config, out, opts, target, configFile, deps);
        }
        let bar: Bar | null = null;
        const r = await relocateStorage({
          cacheDir: config.cacheDir,
          storage,
          target: bucket ?? { backend: 'fs' },
          to: opts.toFs ? target : undefined,
          configFile,
          keepOld: opts.keepOld ? true : undefined,
          removeFromBucket: opts.removeFromBucket ? true : undefined,
          // release records read from the bucket are taken only with the trust root's signatures, as every store over it does
          trustRoot: config.trust ? readTrustFile(config.trust) : null,
          onNote: (m) => out.note(m),
          hooks: { pause: deps.hooks?.relocatePause },
          onProgress: (p) => {
            bar ??= out.progress(p.phase, p.total);
            bar.update(p.bytes, { current: p.current });
          },
        });
        (bar as Bar | null)?.stop();
        storageReport(r, out, Boolean(opts.cacheDir));
      }),
    );
}
