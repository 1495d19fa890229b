/** `airlock relocate NEW_DIR [--keep-old]`: move the cache to another disk, then point the config at it. */
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { relocate } from '../../../storage/relocate.js';
import { humanBytes } from '../../../common/output.js';
import { action, withCommon, type ProgramDeps } from '../frame.js';
import { DEFAULT_CONFIG_FILE, requireFsStorage, type CommonFlags } from '../../config.js';

interface RelocateFlags extends CommonFlags {
  keepOld?: boolean;
}

export function register(program: Command, deps: ProgramDeps = {}): void {
  withCommon(
    program
      .command('relocate')
      .argument('<new_dir>', 'the new cache folder, typically on another disk (empty or not existing)')
      .description(
        'Move the cache to NEW_DIR: check free space there, copy everything, re-hash every blob in ' +
          'the copy, then switch cache_dir in the config file atomically, and only then remove the ' +
          'old copy (unless --keep-old). A journal (relocate.json) makes it safe to interrupt at any ' +
          'point: the config always names one complete cache; run the same command again to finish. ' +
          '"airlock serve" keeps answering from the old folder during the copy, and is handed over ' +
          'to the new one (SIGHUP) before the old copy goes: downloads in flight finish, no restart.',
      )
      .option('--keep-old', 'keep the old copy after the switch'),
    ['cache-dir'],
  )
    .addHelpText('after', '\nExit status: 0 moved (or nothing to do), 1 failure or cache locked, 2 usage, 3 a copy did not verify, 4 NEW_DIR too small.')
    .action(
      action<[string], RelocateFlags>(async ({ config, out }, opts, newDir) => {
        requireFsStorage(config, 'relocate');
        const configFile = config.configFile ?? resolve(DEFAULT_CONFIG_FILE);
        if (!config.configFile) {
          out.note(`no config file in use: cache_dir will be written to ${configFile} (the file airlock reads by default)`);
        }
        let bar: ReturnType<typeof out.progress> | null = null;
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
        (bar as ReturnType<typeof out.progress> | null)?.stop();
        const { moved, stuck } = r.servers;
        const handOver =
          (stuck.length > 0
            ? `airlock serve (pid ${stuck.join(', ')}) still serves from ${r.from}, which is kept: restart it (or send it SIGHUP), then run "airlock relocate ${r.to}" again`
            : moved.length > 0
              ? `airlock serve (pid ${moved.join(', ')}) now serves from ${r.to}: no restart needed`
              : `no airlock serve was serving from ${r.from}`) +
          (opts.cacheDir ? `; you passed --cache-dir: use --cache-dir ${r.to} from now on` : '');
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
      }),
    );
}
