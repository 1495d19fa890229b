/**
 * `airlock stage ENVELOPE`: make the cache node hold every file a signed
 * release lists, so the maintenance window needs no public network.
 *
 * Order: one clock reading → trust root → envelope (path or URL, through the
 * same proxy code) → writer lock → verify (signatures first, rollback against
 * the store's accepted serials, expiry) → plan → preflight (disk, memory) →
 * store the envelope → download only what the store lacks, `parallel` at a
 * time, each blob verified before it is committed (storage's ingest retries,
 * resumes from its partial file and coalesces). Ctrl-C aborts the downloads;
 * partial files stay, so the same command resumes.
 */
import { readFile, stat } from 'node:fs/promises';
import { Readable } from 'node:stream';
import {
  AirlockError,
  isAirlockError,
  openTrustGate,
  toAirlockError,
  LIMITS,
  type TrustGate,
  type VerifiedRelease,
} from '../../manifests/index.js';
import { backendFromConfig, openStore, pullBlobs, type Fetcher, type IngestResult, type PullItem, type PullReport, type Store, type UrlFailure } from '../../storage/index.js';
import { createHttpClient, fetchRange, fetchWhole, type HttpClient, type HttpClientOptions } from '../../storage/index.js';
import { humanBytes, type Output } from '../../common/output.js';
import { readTrustFile } from '../../common/trust-file.js';
import type { AirlockConfig } from '../config.js';
import { requireTrust } from '../config.js';
import { planStage, type PlannedBlob, type StagePlan } from './plan.js';
import { preflight } from './preflight.js';
import { assertSameBlobs, parseImageRef, RegistryClient } from './registry.js';
import { openMirrors, type Mirrors } from './mirrors.js';
import { recordsOptions } from '../store-records.js';

export interface StageRequest {
  /** a path or an http(s) URL of the signed envelope */
  source: string;
  /** print what would be done and change nothing */
  plan?: boolean;
  skipPreflight?: boolean;
  memoryFloor?: number;
}

export interface StageDeps {
  /** extra http client settings (tests: dnsLookup, stallTimeoutMs) */
  http?: Partial<HttpClientOptions>;
  /** aborts the run (the command wires SIGINT/SIGTERM to it) */
  signal?: AbortSignal;
  now?: Date;
  freeMemory?: number;
  /** ingest retries per URL (default storage's) */
  retries?: number;
  /** first retry delay (default storage's) */
  backoffMs?: number;
  /** override config min_rate / rate_window (tests use small windows) */
  minRate?: number;
  rateWindowMs?: number;
}

/** Where one fetched artifact came from: the URL that served it, and the ones given up before it. */
export interface ArtifactSource {
  sha256: string;
  paths: string[];
  url: string | null;
  /** the mirror (another airlock cache) that served it; absent for an upstream URL */
  mirror?: string;
  /** URLs given up first, except a mirror's 404 (in `lackedBy`: a mirror need not hold everything) */
  failed: UrlFailure[];
  /** mirrors that do not hold it (absent when none) */
  lackedBy?: string[];
}

/** What one mirror did in this run. */
export interface MirrorTally {
  url: string;
  /** files it served, and their bytes */
  files: number;
  bytes: number;
  /** files it does not hold (404) */
  lacked: number;
  /** files it failed otherwise (wrong bytes, too slow, errors) */
  failed: number;
  /** why it was given up for the run (unreachable), or null */
  down: string | null;
}

export interface StageSummary {
  release: string;
  product: string;
  serial: number;
  digest: string;
  plan: StagePlan;
  /** false when only --plan ran */
  staged: boolean;
  fetched: number;
  alreadyPresent: number;
  bytesFetched: number;
  bytesTransferred: number;
  resumedBytes: number;
  retries: number;
  seconds: number;
  /** per fetched artifact, which URL served it and which failed first */
  sources: ArtifactSource[];
  /** per mirror (config `mirrors`, `--mirror`), in order */
  mirrors: MirrorTally[];
}

/** The http client and registry client built from the config, shared by `stage` and `manifest build`. */
export function upstreamClients(config: AirlockConfig, extra: Partial<HttpClientOptions> = {}): { http: HttpClient; registry: RegistryClient } {
  const http = createHttpClient({ proxy: config.proxy, caFile: config.caFile, ...extra });
  return { http, registry: new RegistryClient({ http, insecureRegistries: config.insecureRegistries }) };
}

/** Reads the envelope from a path or a URL, capped at the envelope size limit. */
export async function readSource(source: string, http: HttpClient, what = 'envelope', cap: number = LIMITS.envelopeBytes): Promise<Buffer> {
  // an envelope is at most tens of MiB: five minutes is generous, and a trickling upstream cannot hold the stage
  if (/^https?:\/\//i.test(source)) return fetchWhole(http, source, { cap, deadlineMs: 300_000, what });
  try {
    const s = await stat(source);
    if (s.size > cap) throw new AirlockError('EMANIFEST', `${what} ${source}: larger than ${cap} bytes`, { source });
    return await readFile(source);
  } catch (e) {
    if (isAirlockError(e)) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new AirlockError('ENOTFOUND', `${what} ${source}: no such file`, { source });
    throw new AirlockError('EUSAGE', `${what} ${source}: cannot read: ${(e as Error).message}`, { source });
  }
}

/** blobs in a bucket: the disk preflight counts only the partial files of `parallel` downloads (undefined: the whole release lands in cache_dir) */
const partialsOnly = (config: AirlockConfig): number | undefined => (config.storage?.backend === 's3' ? config.parallel : undefined);

async function cacheExists(dir: string): Promise<boolean> {
  return stat(dir).then(
    () => true,
    () => false,
  );
}

export async function stageRelease(config: AirlockConfig, out: Output, req: StageRequest, deps: StageDeps = {}): Promise<StageSummary> {
  const now = deps.now ?? new Date();
  const started = Date.now();
  const trustPath = requireTrust(config);
  const { http, registry } = upstreamClients(config, deps.http);
  // other airlock caches, asked first for each blob (config `mirrors`, `--mirror`)
  const mirrorBases = config.mirrors ?? [];
  let store: Store | null = null;
  let mirrors: Mirrors | null = null;
  try {
    // the root is a local file only; the envelope may come from anywhere, the gate decides
    const gate = openTrustGate(readTrustFile(trustPath), { now, acceptExpiredUntil: config.acceptExpiredUntil });
    const envelope = await readSource(req.source, http);

    // --plan changes nothing: no lock, no directory created, nothing persisted.
    if (req.plan) {
      const reader = (await cacheExists(config.cacheDir))
        ? await openStore({ cacheDir: config.cacheDir, write: false, backend: await backendFromConfig(config), records: recordsOptions(config, (l, d) => out.warn(l, d)) })
        : null;
      try {
        const verified = admit(gate, envelope, out, reader ? await reader.acceptedSerials() : {});
        const plan = await planStage({
          manifest: verified.manifest,
          cacheDir: config.cacheDir,
          has: async (d) => (reader ? (await reader.stat(d)) !== null : false),
          http,
          registry,
          mirrors: mirrorBases,
          partialsOnly: partialsOnly(config),
        });
        return summary(verified, plan, false, started, mirrorBases);
      } finally {
        await reader?.close();
      }
    }

    store = await openStore({ cacheDir: config.cacheDir, write: true, backend: await backendFromConfig(config), records: recordsOptions(config, (l, d) => out.warn(l, d)) });
    const verified = admit(gate, envelope, out, await store.acceptedSerials());
    const s = store;
    const plan = await planStage({ manifest: verified.manifest, cacheDir: config.cacheDir, has: async (d) => (await s.stat(d)) !== null, http, registry, mirrors: mirrorBases, partialsOnly: partialsOnly(config) });
    if (!req.skipPreflight) preflight(plan, { memoryFloor: req.memoryFloor, freeMemory: deps.freeMemory });
    await store.putRelease(verified);
    out.event('plan', { release: plan.release, files: plan.blobs.length, missing: plan.missing.length, bytes: plan.bytes.missing });
    if (plan.missing.length > 0) {
      out.note(`staging ${plan.product} ${plan.release}: ${plan.missing.length} of ${plan.blobs.length} files to fetch (${fmt(plan.bytes.missing)})`);
    }
    const result = summary(verified, plan, true, started, mirrorBases);
    const rate = { minRate: deps.minRate ?? config.minRate, rateWindowMs: deps.rateWindowMs ?? config.rateWindowMs };
    mirrors = openMirrors(mirrorBases, {
      caFile: config.caFile,
      http: deps.http,
      onDown: (base, reason) => out.warn(`mirror ${base} is unreachable, given up for this run (upstream URLs are used): ${reason}`, { mirror: base }),
    });
    await download(store, plan, { http, registry, mirrors, out, parallel: config.parallel, signal: deps.signal, retries: deps.retries, backoffMs: deps.backoffMs, ...rate }, result);
    result.seconds = (Date.now() - started) / 1000;
    return result;
  } finally {
    await store?.close();
    mirrors?.close();
    http.close();
  }
}

/** The trust gate, with what only --accept-expired-until let through said as warnings. */
function admit(gate: TrustGate, envelope: Buffer, out: Output, accepted: Awaited<ReturnType<Store['acceptedSerials']>>): VerifiedRelease {
  const verified = gate.admit(envelope, { accepted });
  for (const w of verified.warnings) out.warn(w, { release: verified.manifest.release });
  return verified;
}

function summary(v: VerifiedRelease, plan: StagePlan, staged: boolean, started: number, mirrors: readonly string[]): StageSummary {
  return {
    release: v.manifest.release,
    product: v.manifest.product,
    serial: v.manifest.serial,
    digest: v.digest,
    plan,
    staged,
    fetched: 0,
    alreadyPresent: plan.present,
    bytesFetched: 0,
    bytesTransferred: 0,
    resumedBytes: 0,
    retries: 0,
    sources: [],
    mirrors: mirrors.map((url) => ({ url, files: 0, bytes: 0, lacked: 0, failed: 0, down: null })),
    seconds: (Date.now() - started) / 1000,
  };
}

interface DownloadContext {
  http: HttpClient;
  registry: RegistryClient;
  mirrors: Mirrors;
  out: Output;
  parallel: number;
  signal?: AbortSignal;
  retries?: number;
  backoffMs?: number;
  minRate?: number;
  rateWindowMs?: number;
}

/** Registry URLs go through the registry client (token flow); everything else is a plain GET. */
function dispatchingFetcher(plan: StagePlan, ctx: DownloadContext): Fetcher {
  const viaRegistry = new Set(plan.blobs.filter((b) => b.kind === 'oci-image').flatMap((b) => b.urls));
  const plain: Fetcher = {
    fetch: (url, opts) => fetchRange(url, opts, (offset) => ctx.http.request(url, { offset, maxLength: opts.maxLength, signal: opts.signal })),
  };
  const reg = ctx.registry.fetcher();
  const mirror = ctx.mirrors;
  return {
    fetch: (url, opts) => (mirror.baseOf(url) ? mirror.fetcher.fetch(url, opts) : viaRegistry.has(url) ? reg.fetch(url, opts) : plain.fetch(url, opts)),
  };
}

async function download(store: Store, plan: StagePlan, ctx: DownloadContext, result: StageSummary): Promise<void> {
  const { out } = ctx;
  // image manifests first: they are tiny and a wrong one should fail before its layers are pulled
  const queue = [...plan.missing.filter((b) => b.image), ...plan.missing.filter((b) => !b.image)];
  const items: PullItem[] = queue.map((b) => ({
    sha256: b.sha256,
    size: b.size,
    paths: b.paths,
    // read when the blob starts: the mirrors first (those not given up by then), then the signed URLs
    get urls() {
      return [...ctx.mirrors.urlsFor(b.sha256), ...b.urls];
    },
    ...(b.image ? { pullWith: (signal: AbortSignal | undefined) => fetchImageManifest(store, b, { ...ctx, signal }) } : {}),
  }));
  const tally = new Map(result.mirrors.map((m) => [m.url, m]));
  const bar = out.progress('staging', plan.bytes.missing);
  let report: PullReport;
  try {
    report = await pullBlobs(store, items, {
      parallel: ctx.parallel,
      fetcher: dispatchingFetcher(plan, ctx),
      signal: ctx.signal,
      retries: ctx.retries,
      backoffMs: ctx.backoffMs,
      minRate: ctx.minRate,
      rateWindowMs: ctx.rateWindowMs,
      // a full disk or a bug ends the run at once; anything else is one file's failure, reported at the end
      fatalCodes: ['EINTERNAL', 'ENOSPACE'],
      onProgress: (done, current) => bar.update(done, { current }),
      onRetry: (item, { url, attempt, error }) => {
        result.retries += 1;
        out.event('retry', { sha256: item.sha256, url, attempt, error: error.message });
      },
      onDone: ({ item, result: r }) => {
        if (r.fetched) {
          result.fetched += 1;
          result.bytesFetched += item.size;
        } else result.alreadyPresent += 1;
        result.bytesTransferred += r.transferred;
        result.resumedBytes += r.resumedFrom;
        const all = r.failed ?? [];
        const mirror = r.url ? ctx.mirrors.baseOf(r.url) : null;
        // a mirror without the file is normal (it is counted); anything else it did is worth a note
        const lackedBy: string[] = [];
        const failed = all.filter((f) => {
          const base = ctx.mirrors.baseOf(f.url);
          const t = base ? tally.get(base) : undefined;
          if (t && f.code === 'ENOTFOUND') {
            t.lacked += 1;
            lackedBy.push(base!);
            return false;
          }
          if (t) t.failed += 1;
          return true;
        });
        if (mirror) {
          const t = tally.get(mirror)!;
          t.files += 1;
          t.bytes += item.size;
        }
        if (r.fetched) {
          result.sources.push({ sha256: item.sha256, paths: item.paths, url: r.url ?? null, ...(mirror ? { mirror } : {}), failed, ...(lackedBy.length > 0 ? { lackedBy } : {}) });
        }
        out.event('fetched', {
          sha256: item.sha256,
          size: item.size,
          paths: item.paths,
          transferred: r.transferred,
          resumedFrom: r.resumedFrom,
          url: r.url ?? null,
          mirror,
          failed: all,
        });
        if (failed.length > 0 && !out.json) {
          // the operator should know a listed mirror is failing, even when another one saved the run
          out.note(
            `${item.paths.join(', ')}: served by ${r.url}${mirror ? ' (mirror)' : ''}; given up first: ${failed.map((f) => `${f.url} (${f.code}: ${shortReason(f)})`).join(', ')}`,
          );
        }
      },
      onFailed: ({ item, error }) => {
        if (!ctx.signal?.aborted) out.warn(`could not stage ${item.paths.join(', ')}: ${error.message}`, { sha256: item.sha256, code: error.code });
      },
    });
  } finally {
    bar.stop();
    for (const t of result.mirrors) t.down = ctx.mirrors.down.get(t.url) ?? null;
  }
  const left = queue.length - report.done.length;
  if (ctx.signal?.aborted) {
    throw new AirlockError('EUPSTREAM', `interrupted: ${left} of ${queue.length} files not staged yet; run the same command again to resume`, {
      interrupted: true,
      missing: left,
    });
  }
  const failures = report.failures;
  if (failures.length > 0) {
    // wrong bytes from every URL is a verification failure (exit 3); anything else is the network (exit 5)
    const integrity = failures.every((f) => f.error.code === 'EINTEGRITY');
    const first = failures[0]!;
    throw new AirlockError(
      integrity ? 'EINTEGRITY' : 'EUPSTREAM',
      `${failures.length} of ${queue.length} files could not be staged (first: ${first.item.paths[0]}: ${first.error.message}); ` +
        `\`airlock status ${plan.release}\` lists what is missing, a re-run resumes`,
      {
        release: plan.release,
        failed: failures.map((f) => ({ sha256: f.item.sha256, paths: f.item.paths, code: f.error.code, message: f.error.message, urls: f.error.details.urls ?? [] })),
      },
    );
  }
}

/** An image manifest is checked against the signed blob list before it is stored. */
async function fetchImageManifest(store: Store, b: PlannedBlob, ctx: DownloadContext): Promise<IngestResult> {
  const image = b.image!;
  const ref = parseImageRef(image.image);
  const where = `${image.path} (${image.image})`;
  let lastError: AirlockError | null = null;
  const attempts = Math.max(1, ctx.retries ?? 4);
  // The manifest is read whole, not through ingest: min_rate applies as a deadline per attempt instead
  // (a window plus its size at min_rate), so a registry trickling it cannot hold the run.
  const minRate = ctx.minRate ?? 0;
  const budgetMs = minRate > 0 ? (ctx.rateWindowMs ?? 60_000) + Math.ceil((b.size * 1000) / minRate) : 0;
  // the mirrors first, by digest like any blob (a verified answer is checked against the signed blob list too)
  const fromMirror = await ctx.mirrors.manifest(b.sha256, b.size, ctx.signal, budgetMs || 120_000);
  const failed = fromMirror.failed;
  if (fromMirror.body) {
    try {
      assertSameBlobs(fromMirror.body, image.blobs, where);
      const r = await store.ingestStream({ sha256: b.sha256, size: b.size }, Readable.from([fromMirror.body]));
      return { ...r, transferred: fromMirror.body.length, resumedFrom: 0, url: fromMirror.url, failed };
    } catch (e) {
      const err = toAirlockError(e);
      // the store failing is ours, not the mirror's
      if (err.code !== 'EINTEGRITY' && err.code !== 'EMANIFEST') throw err;
      failed.push({ url: fromMirror.url, code: err.code, reason: err.message, attempts: 1 });
    }
  }
  for (let attempt = 1; attempt <= attempts; attempt++) {
    if (ctx.signal?.aborted) break;
    const deadline = budgetMs > 0 ? AbortSignal.timeout(budgetMs) : null;
    const signal = deadline && ctx.signal ? AbortSignal.any([ctx.signal, deadline]) : (deadline ?? ctx.signal);
    try {
      const m = await ctx.registry.manifest(ref, `sha256:${b.sha256}`, signal, b.size + 1).catch((e: unknown) => {
        if (!deadline?.aborted || ctx.signal?.aborted) throw e;
        throw new AirlockError('EUPSTREAM', `${where}: too slow: the ${b.size}-byte image manifest did not arrive within ${(budgetMs / 1000).toFixed(1)} s`, {
          path: image.path,
          cause: 'too slow',
        });
      });
      if (m.digest !== `sha256:${b.sha256}` || m.body.length !== b.size) {
        throw new AirlockError('EINTEGRITY', `${where}: image manifest is ${m.digest} (${m.body.length} bytes), expected sha256:${b.sha256} (${b.size} bytes)`, {
          path: image.path,
          expected: b.sha256,
          found: m.digest,
        });
      }
      assertSameBlobs(m.body, image.blobs, where);
      const r = await store.ingestStream({ sha256: b.sha256, size: b.size }, Readable.from([m.body]));
      return { ...r, transferred: m.body.length, resumedFrom: 0, url: ctx.registry.manifestUrl(ref, `sha256:${b.sha256}`), failed };
    } catch (e) {
      lastError = toAirlockError(e);
      if (!(lastError.code === 'EUPSTREAM' && lastError.details.retryable !== false) || attempt === attempts) throw lastError;
      await new Promise((r) => setTimeout(r, 250 * 2 ** attempt));
    }
  }
  throw lastError ?? new AirlockError('EUPSTREAM', `${where}: aborted`, { aborted: true });
}

export const fmt = humanBytes;

/** A failure's reason without the URL it starts with (the URL is printed beside it). */
function shortReason(f: UrlFailure): string {
  return f.reason.startsWith(`${f.url}: `) ? f.reason.slice(f.url.length + 2) : f.reason;
}
