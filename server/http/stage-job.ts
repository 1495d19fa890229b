/**
 * POST /stage runs staging inside the server process: the same
 * `stageRelease` as `airlock stage`, one run at a time, in the background
 * (the request answers 202 once the run started; GET /stage tells how it
 * went). Its operator output goes to the server log as JSON lines.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { Logger } from 'pino';
import { AirlockError, toAirlockError } from '../../manifests/errors.js';
import { createOutput } from '../../common/output.js';
import { readTrustFile } from '../../common/trust-file.js';
import { requireTrust, type AirlockConfig } from '../config.js';
import type { StageStarter } from './env.js';

export interface StageJobs {
  starter: StageStarter;
  /** aborts a run in progress (shutdown) */
  abort(): void;
}

/** The run's JSON lines go to the server log; each `fetched` event also counts into `counts`. */
function logSink(logger: Logger, counts: { bytes: number; files: number }): Writable {
  return new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (!line.trim()) continue;
        logger.info({ stage: line }, 'stage');
        if (!line.includes('"fetched"')) continue;
        try {
          const e = JSON.parse(line) as { event?: string; transferred?: unknown; size?: unknown };
          if (e.event !== 'fetched') continue;
          counts.files++;
          const n = typeof e.transferred === 'number' ? e.transferred : typeof e.size === 'number' ? e.size : 0;
          counts.bytes += n;
        } catch {
          // not an event line: logged above, not counted
        }
      }
      done();
    },
  });
}

export function inProcessStager(config: AirlockConfig, logger: Logger): StageJobs {
  let running: { source: string; since: string; abort: AbortController } | null = null;
  let last: Record<string, unknown> | null = null;
  const counts = { bytes: 0, files: 0, failures: {} as Record<string, number> };
  const starter: StageStarter = Object.assign(
    async ({ url, inline }: { url?: string; inline?: Buffer }) => {
      // a trust root that is missing, unreadable or a URL is the caller's answer now, not a failed run later
      readTrustFile(requireTrust(config));
      if (running) {
        throw new AirlockError('ELOCKED', `a staging run is already in progress on this cache node (${running.source}, since ${running.since})`);
      }
      let source = url ?? '';
      let tmp: string | null = null;
      if (!url) {
        tmp = await mkdtemp(join(tmpdir(), 'airlock-stage-'));
        source = join(tmp, 'envelope.json');
        await writeFile(source, inline ?? Buffer.alloc(0));
      }
      const abort = new AbortController();
      const job = { source: url ?? 'inline envelope', since: new Date().toISOString(), abort };
      running = job;
      const sink = logSink(logger, counts);
      const out = createOutput(true, { stdout: sink, stderr: sink });
      // loaded on first use: the stage code and its got-based fetcher are most of the CLI's weight, and a serving node rarely stages
      void import('../stage/stage.js')
        .then(({ stageRelease }) => stageRelease(config, out, { source }, { signal: abort.signal }))
        .then((s) => {
          last = { ok: true, source: job.source, release: s.release, serial: s.serial, fetched: s.fetched, seconds: s.seconds };
          logger.info(last, 'staging finished');
        })
        .catch((e: unknown) => {
          const err = toAirlockError(e);
          last = { ok: false, source: job.source, error: { code: err.code, message: err.message } };
          counts.failures[err.code] = (counts.failures[err.code] ?? 0) + 1;
          logger.warn(last, 'staging failed');
        })
        .finally(async () => {
          running = null;
          if (tmp) await rm(tmp, { recursive: true, force: true });
        });
      return { started: true, source: job.source };
    },
    {
      status: () => ({ running: running ? { source: running.source, since: running.since } : null, last }),
      counts: () => ({ bytes: counts.bytes, files: counts.files, failures: { ...counts.failures } }),
    },
  );
  return { starter, abort: () => running?.abort.abort() };
}
