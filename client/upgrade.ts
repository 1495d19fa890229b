/**
 * `airlock-node upgrade`: the steps of docs/operations.md "The node", in order —
 * verify the manifest against the node's own trust root, self-update, version
 * check, preflight, download into staging, install with a journal, record.
 */
import { existsSync, mkdirSync, renameSync } from 'node:fs';
import { AirlockError } from '../manifests/errors.js';
import { passTrustGate, type VerifiedRelease } from '../manifests/index.js';
import { acquireWriterLock, openStore, type Store } from '../storage/index.js';
import { humanBytes, type Output } from '../common/output.js';
import { memoryFloor, type NodeConfig } from './config.js';
import { downloadBlobs, type DownloadSummary } from './download.js';
import { runStep, type InstallContext } from './install/index.js';
import { appendJournal, finishedSteps, stepKey } from './journal.js';
import { installSteps, neededBlobs, selectArtifacts } from './plan.js';
import { preflight } from './preflight.js';
import { cachePool, type CachePool } from './caches.js';
import { cacheClient, newestReady } from './remote.js';
import { cacheWaiter } from './wait.js';
import { findClientUpdate, installClient, reexec } from './selfupdate.js';
import {
  envelopeFile,
  journalFile,
  readAccepted,
  readInstalled,
  statePaths,
  writeAccepted,
  writeInstalled,
  writeStateFile,
  type StatePaths,
} from './state.js';
import { nodeTrust } from './trust.js';

export interface UpgradeOptions {
  release?: string;
  downloadOnly: boolean;
  force: boolean;
  updateClient: boolean;
  /** the raw argv after `node main.js`, to re-run after a self-update */
  argv: readonly string[];
}

export interface UpgradeResult {
  status: 'installed' | 'already' | 'downloaded' | 'client-updated';
  release: string;
  serial: number;
  exitCode?: number;
  data: Record<string, unknown>;
  text: string;
}

export interface UpgradeHooks {
  /** called with the count of finished install steps after each one (SIGKILL tests stop the run at a known moment) */
  afterStep?: (finished: number) => void;
  /** a blob's bytes held after each write, and its size */
  downloadBytes?: (bytes: number, size: number) => void;
}

async function fetchVerified(config: NodeConfig, caches: CachePool, state: StatePaths, release: string | undefined, now: Date, out: Output): Promise<VerifiedRelease> {
  const trust = nodeTrust(config.trust, state, out);
  const name =
    release ??
    (await caches.ask('the release list', async (c) => newestReady(await c.releases(), c.base, readInstalled(state)?.product ?? null))).value;
  const { cache, value: envelope } = await caches.ask(`the manifest of ${name}`, (c) => c.manifest(name));
  const verified = passTrustGate({
    envelope,
    localRoot: trust.localRoot,
    offeredRoots: trust.offeredRoots,
    accepted: readAccepted(state),
    clock: { now, acceptExpiredUntil: config.acceptExpiredUntil },
  });
  if (verified.manifest.release !== name) {
    throw new AirlockError('EMANIFEST', `cache ${cache.base} answered release "${verified.manifest.release}" when asked for "${name}"`, {
      asked: name,
      got: verified.manifest.release,
    });
  }
  for (const w of verified.warnings) out.warn(w, { release: name });
  // persist before using anything of it (docs/manifest.md "Order of checks")
  trust.keep(verified);
  writeAccepted(state, verified.accepted);
  writeStateFile(envelopeFile(state, name), verified.envelope);
  out.event('verified', { release: name, serial: verified.manifest.serial, digest: verified.digest, signers: verified.signers });
  return verified;
}

export async function upgrade(config: NodeConfig, opts: UpgradeOptions, out: Output, hooks: UpgradeHooks = {}): Promise<UpgradeResult> {
  if (config.caches.length === 0) throw new AirlockError('EUSAGE', 'no cache: pass --cache URL (e.g. http://cache:7070) or set "cache" in the config');
  const now = new Date();
  const state = statePaths(config.stateDir);
  // One upgrade per state dir: a second one is refused at once, naming the holder; a lock left by a
  // SIGKILLed run (the case the journal exists for) is taken over at once. Long staleness: a live run
  // is never taken over for a busy moment.
  const lock = await acquireWriterLock(state.dir, { waitMs: 0, staleMs: 60_000, what: 'state dir', command: ['airlock-node', ...opts.argv].join(' ') });
  const unlock = (): Promise<void> => lock.release();
  // one outage of the cache(s) is waited out within cacheWaitMs, whether it comes at the manifest or mid-download
  const wait = cacheWaiter({ budgetMs: config.cacheWaitMs, out });
  const caches = cachePool(config.caches, out, (base) => cacheClient(base, { caFile: config.caFile }), wait);
  let store: Store | null = null;
  try {
    // 1. manifest, verified against the node's own trust root
    const verified = await fetchVerified(config, caches, state, opts.release, now, out);
    const m = verified.manifest;
    const base = { release: m.release, serial: m.serial, product: m.product, digest: verified.digest };
    out.note(`release ${m.release} (serial ${m.serial}) verified: ${verified.signers.length} signature(s)`);
    store = await openStore({ cacheDir: state.staging, write: true });

    // 2. self-update
    const update = findClientUpdate(m);
    if (update) {
      if (opts.updateClient && !process.env.AIRLOCK_NODE_REEXEC) {
        await downloadBlobs(store, caches.clients, [{ sha256: update.artifact.sha256, size: update.artifact.size, paths: [update.artifact.path] }], {
          parallel: 1,
          out,
          minRate: config.minRate,
          rateWindowMs: config.rateWindowMs,
          wait,
        });
        const main = await installClient(update, store, state, out);
        await store.close();
        store = null;
        await unlock();
        caches.close();
        const code = reexec(main, opts.argv);
        return { status: 'client-updated', ...base, exitCode: code, data: { ...base, clientVersion: update.version }, text: '' };
      }
      out.warn(`this release carries airlock-node ${update.version} (${update.artifact.path}); run with --update-client to install it first`);
    }

    // 3. version check
    const installed = readInstalled(state);
    if (installed && installed.release === m.release && installed.digest === verified.digest && !opts.force) {
      return { status: 'already', ...base, data: { ...base, already: true }, text: `already at ${m.release} (serial ${m.serial}); --force to run it again` };
    }

    // 4. preflight
    const artifacts = selectArtifacts(m, config.roles);
    const blobs = neededBlobs(artifacts);
    let missing = 0;
    for (const b of blobs) if (!(await store.stat(b.sha256))) missing += b.size;
    const installBytes = opts.downloadOnly ? 0 : artifacts.reduce((n, a) => n + a.size, 0);
    const largest = artifacts.reduce((n, a) => Math.max(n, a.size), 0);
    const report = await preflight({
      staging: { path: state.staging, bytes: missing + (opts.downloadOnly ? 0 : largest) },
      install: { path: config.root, bytes: installBytes },
      margin: config.diskMargin,
      memoryFloor: memoryFloor(config),
      roles: config.roles,
    });
    out.event('preflight', { ...report });

    // 5. download into staging
    out.note(`downloading ${blobs.length} blob(s), ${humanBytes(missing)} not yet staged, from ${caches.names}`);
    const dl: DownloadSummary = await downloadBlobs(store, caches.clients, blobs, {
      parallel: config.parallel,
      out,
      minRate: config.minRate,
      rateWindowMs: config.rateWindowMs,
      onBlobBytes: hooks.downloadBytes,
      wait,
    });
    if (opts.downloadOnly) {
      return {
        status: 'downloaded',
        ...base,
        data: { ...base, download: dl },
        text: `release ${m.release}: ${dl.blobs} blob(s) staged in ${state.staging} (${humanBytes(dl.bytesTransferred)} transferred); nothing installed (--download-only)`,
      };
    }

    // 6. install in manifest order, journaled
    const journal = journalFile(state, m.release);
    if (opts.force && installed?.release === m.release && existsSync(journal)) {
      // a forced re-run of the installed release starts a fresh journal; the old one is kept
      renameSync(journal, `${journal}.${now.toISOString().replace(/[:.]/g, '-')}`);
    }
    const done = finishedSteps(journal);
    mkdirSync(config.root, { recursive: true });
    const steps = installSteps(artifacts);
    const ctx: InstallContext = { root: config.root, release: m.release, state, source: store, commands: config.installers, out, now };
    const lines: string[] = [];
    const backups: string[] = [];
    let ran = 0;
    let skipped = 0;
    let finished = 0;
    for (const step of steps) {
      if (done.has(stepKey({ step: step.index, path: step.path, sha256: step.sha256 }))) {
        skipped++;
        finished++;
        out.event('step', { step: step.index, path: step.path, kind: step.kind, skipped: true });
        continue;
      }
      out.note(`[${step.index + 1}/${steps.length}] ${step.kind} ${step.path}`);
      const outcome = await runStep(ctx, step);
      appendJournal(journal, { step: step.index, path: step.path, kind: step.kind, sha256: step.sha256, note: outcome.note });
      backups.push(...(outcome.backups ?? []));
      lines.push(`  ${step.kind.padEnd(9)} ${step.path}: ${outcome.note}`);
      out.event('step', { step: step.index, path: step.path, kind: step.kind, note: outcome.note, backups: outcome.backups ?? [] });
      ran++;
      finished++;
      hooks.afterStep?.(finished);
    }

    // 7. record
    writeInstalled(state, { ...base, installedAt: new Date().toISOString() });
    const text = [
      `installed ${m.release} (serial ${m.serial}) under ${config.root}: ${ran} step(s) run${skipped ? `, ${skipped} already done (journal)` : ''}`,
      `  downloaded ${dl.fetched} blob(s), ${humanBytes(dl.bytesTransferred)}${dl.bytesResumed ? ` (resumed ${humanBytes(dl.bytesResumed)})` : ''}; ${dl.alreadyStaged} already staged`,
      ...lines,
      ...(backups.length ? ['locally changed files kept as:', ...backups.map((b) => `  ${b}`)] : []),
    ].join('\n');
    return { status: 'installed', ...base, data: { ...base, steps: steps.length, ran, skipped, backups, download: dl }, text };
  } finally {
    if (store) await store.close();
    caches.close();
    await unlock().catch(() => {});
  }
}
