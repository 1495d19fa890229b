/**
 * The store `airlock serve` answers from, able to move: on `reload()`
 * (SIGHUP, `systemctl reload`, or `airlock relocate`'s hand-over, which sends
 * SIGHUP) it re-reads the config; when cache_dir changed there, or the
 * current folder's relocate journal says the cache moved, it opens the new
 * folder read-only and every request from then on is answered from it.
 * Downloads in flight keep the descriptors they opened: an unlinked file
 * stays readable until it is closed, so they finish with the right bytes.
 *
 * It registers in the folder it serves (storage/serving.ts), so that relocate
 * knows whom to hand over and waits for it before removing the old copy.
 *
 * With blobs in a bucket it polls the bucket's release records every
 * `pollMs` (one LIST, changed records only): a release staged by any process
 * over the same bucket lands in index/envelopes/, whose new mtime makes the
 * catalog rebuild (catalog.ts), so every replica serves it within a poll.
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Logger } from 'pino';
import { openStore, type RecordsOptions, type Store } from '../../storage/store.js';
import type { BlobBackend } from '../../storage/types.js';
import { registerServer, relocatedTo, storageLabel } from '../../storage/serving.js';
import { backendFromConfig, type StorageConfig } from '../../storage/backend/select.js';

export interface FollowingStore {
  /** stands for the current store: hand it to createServer */
  readonly store: Store;
  cacheDir(): string;
  /** re-reads the config (and the relocate journal); resolves to the folder served from now on */
  reload(reason: string): Promise<string>;
  close(): Promise<void>;
}

export interface FollowOptions {
  cacheDir: string;
  /** cache_dir as the config says now (throws on a broken config: the current folder is kept) */
  configuredCacheDir: () => string;
  logger: Logger;
  /** after each switch (e.g. drop the release catalog) */
  onSwitch?: (from: string, to: string) => void;
  /** how long the old store stays open for requests that already hold it (default 60 s) */
  closeOldAfterMs?: number;
  /** reload on this signal (default SIGHUP; null: only by calling reload) */
  signal?: NodeJS.Signals | null;
  /** blobs elsewhere than cache_dir (an S3 bucket): the same backend whichever folder is served, until `storage` changes */
  backend?: BlobBackend;
  /** how release records read from the backend's bucket are checked */
  records?: RecordsOptions;
  /** how often the bucket's release records are synced (only with a backend that has them; default 5 s) */
  pollMs?: number;
  /** the storage config `backend` was made from (default: the filesystem under cache_dir) */
  storage?: StorageConfig;
  /** the `storage:` section as the config says now (throws on a broken config); absent: the storage never changes */
  configuredStorage?: () => StorageConfig | undefined;
  /** how records are checked once the storage moved (a bucket's records against the trust root); default: `records` */
  recordsFor?: (storage: StorageConfig | undefined) => RecordsOptions | undefined;
}

/**
 * Registers in `cacheDir`; a folder this process cannot write (a read-only
 * mount, a unit's ReadWritePaths= that does not name it) is served all the
 * same, with a warning: relocate will not know to hand it over.
 */
async function register(cacheDir: string, storage: string, logger: Logger): Promise<{ release(): Promise<void> }> {
  try {
    return await registerServer(cacheDir, storage);
  } catch (e) {
    logger.warn(
      { cacheDir, err: (e as Error).message },
      'cannot register in cache_dir/serving/: serving all the same, but "airlock relocate" will not hand this server over (restart it after one)',
    );
    return { release: async () => {} };
  }
}

export async function followingStore(opts: FollowOptions): Promise<FollowingStore> {
  let current = await openStore({ cacheDir: opts.cacheDir, write: false, backend: opts.backend, records: opts.records });
  // the handler first: once registered, relocate may signal at any time, and SIGHUP's default is to end the process
  const signal = opts.signal === undefined ? 'SIGHUP' : opts.signal;
  let following: FollowingStore | null = null;
  let early = false; // a signal before we are ready: handled once we are
  const onSignal = (): void => {
    if (following) void following.reload(signal ?? 'reload').catch(() => {});
    else early = true;
  };
  if (signal) process.on(signal, onSignal);
  let storage = opts.storage;
  let registration = await register(current.cacheDir, storageLabel(storage), opts.logger);
  // a change of cache_dir in the config is followed; the same value (e.g. --cache-dir on the command line) is not gone back to
  let configured = resolve(opts.cacheDir);
  let chain: Promise<unknown> = Promise.resolve();
  const timers = new Set<NodeJS.Timeout>();

  const store = new Proxy({} as Store, {
    get(_target, key) {
      const value = (current as unknown as Record<string | symbol, unknown>)[key];
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(current) : value;
    },
  });

  let backend = opts.backend;
  let records = opts.records;

  const switchTo = async (to: string, nextStorage: StorageConfig | undefined, reason: string): Promise<void> => {
    const from = current.cacheDir;
    const fromStorage = storageLabel(storage);
    const storageMoved = storageLabel(nextStorage) !== fromStorage;
    const nextBackend = storageMoved ? await backendFromConfig({ storage: nextStorage }) : backend;
    // a filesystem store had no records to check: a bucket's must be checked as any store over it checks them
    const nextRecords = storageMoved && opts.recordsFor ? opts.recordsFor(nextStorage) : records;
    const next = await openStore({ cacheDir: to, write: false, backend: nextBackend, records: nextRecords });
    const old = current;
    current = next;
    backend = nextBackend;
    records = nextRecords;
    storage = nextStorage;
    const oldRegistration = registration;
    // in the same folder the new entry replaces the old one (the same file), which must then stay
    registration = await register(next.cacheDir, storageLabel(storage), opts.logger);
    if (next.cacheDir !== from) await oldRegistration.release().catch(() => {});
    opts.onSwitch?.(from, next.cacheDir);
    if (next.cacheDir !== from) opts.logger.info({ from, to: next.cacheDir, reason }, 'cache_dir moved: serving from the new folder');
    if (storageMoved) opts.logger.info({ from: fromStorage, to: storageLabel(storage), reason }, 'blob storage moved: serving blobs from the new one');
    const t = setTimeout(() => {
      timers.delete(t);
      void old.close().catch(() => {});
    }, opts.closeOldAfterMs ?? 60_000);
    t.unref();
    timers.add(t);
  };

  const reload = async (reason: string): Promise<string> => {
    let fromConfig: string | null = null;
    try {
      fromConfig = resolve(opts.configuredCacheDir());
    } catch (e) {
      opts.logger.warn({ reason, err: (e as Error).message }, 'reload: the config cannot be read; still serving from the same folder');
    }
    let nextStorage = storage;
    if (opts.configuredStorage) {
      try {
        nextStorage = opts.configuredStorage();
      } catch (e) {
        opts.logger.warn({ reason, err: (e as Error).message }, 'reload: the config cannot be read; still serving from the same storage');
      }
    }
    const changed = fromConfig !== null && fromConfig !== configured ? fromConfig : null;
    const target = resolve(changed ?? (await relocatedTo(current.cacheDir)) ?? current.cacheDir);
    if (target === current.cacheDir && storageLabel(nextStorage) === storageLabel(storage)) {
      if (changed) configured = changed;
      opts.logger.info({ reason, cacheDir: current.cacheDir }, 'reload: cache_dir unchanged');
      return current.cacheDir;
    }
    if (!existsSync(target)) {
      // not taken as seen: the next reload tries it again (a disk mounted late)
      opts.logger.warn({ reason, cacheDir: target }, 'reload: the new cache_dir does not exist; still serving from the old one');
      return current.cacheDir;
    }
    await switchTo(target, nextStorage, reason);
    if (changed) configured = changed;
    return current.cacheDir;
  };

  // the bucket's records, every pollMs; a failed poll is said once until one succeeds again
  let polling = false;
  let failing: string | null = null;
  const poller = setInterval(() => {
    // the store served now: its backend may have changed on a reload
    if (polling || !current.backend.shelf) return;
    polling = true;
    const polled = current;
    void polled
      .syncRecords()
      .then((r) => {
        if (failing) opts.logger.info({ cacheDir: polled.cacheDir }, 'release records: the bucket answers again');
        failing = null;
        if (r && (r.fetched.length || r.removed.length)) {
          opts.logger.info({ fetched: r.fetched, removed: r.removed, releases: r.releases }, 'release records synced from the bucket');
        }
      })
      .catch((e: Error) => {
        if (failing !== e.message) opts.logger.warn({ err: e.message }, 'release records: polling the bucket failed; serving what index/ holds');
        failing = e.message;
      })
      .finally(() => {
        polling = false;
      });
  }, opts.pollMs ?? 5000);
  poller.unref();

  following = {
    store,
    cacheDir: () => current.cacheDir,
    // one reload at a time, in order; a failed one leaves the current folder in place
    reload: (reason) => {
      const run = chain.then(() => reload(reason));
      chain = run.catch((e: Error) => opts.logger.error({ reason, err: e.message }, 'reload failed; still serving from the same folder'));
      return run;
    },
    async close() {
      if (signal) process.off(signal, onSignal);
      clearInterval(poller);
      await chain;
      for (const t of timers) clearTimeout(t);
      await registration.release().catch(() => {});
      await current.close();
    },
  };
  if (early) onSignal();
  return following;
}
