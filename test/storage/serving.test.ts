/**
 * storage/serving.ts: the registry of running servers of a cache folder and
 * relocate's hand-over. A server that does not move keeps the old copy (and
 * both journals) in place; the next run finishes once it is gone. Entries of
 * ended processes, or of a reused pid, are never signalled.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { openStore } from '../../storage/index.js';
import { journalPath, relocate } from '../../storage/relocate.js';
import { handOverServers, liveServers, processStart, registerServer, relocatedTo, servingDir } from '../../storage/serving.js';
import { fileArtifact, makeRelease, sha, tmp } from './fixtures.js';

async function cacheWithOneRelease(dir: string): Promise<void> {
  const store = await openStore({ cacheDir: dir, write: true });
  const body = Buffer.from('payload\n');
  await store.ingestStream({ sha256: sha(body), size: body.length }, Readable.from([body]));
  await store.putRelease(makeRelease('1.0.0', [fileArtifact('p.txt', body)]));
  await store.close();
}

/** a live process that ignores SIGHUP, registered as a server of `cacheDir` */
async function deafServer(cacheDir: string): Promise<{ pid: number; stop(): Promise<void> }> {
  const child = spawn('sh', ['-c', 'trap "" HUP; sleep 60'], { stdio: 'ignore' });
  const pid = child.pid!;
  await mkdir(servingDir(cacheDir), { recursive: true });
  await writeFile(join(servingDir(cacheDir), `${pid}.json`), JSON.stringify({ pid, start: processStart(pid), cacheDir }));
  return {
    pid,
    stop: async () => {
      const gone = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await gone;
    },
  };
}

describe('the serving registry', () => {
  it('registers this process, sees it live, forgets it on release; entries of ended processes and reused pids are dropped unsignalled', async () => {
    const dir = await tmp();
    const me = await registerServer(dir);
    expect((await liveServers(dir)).map((s) => s.pid)).toEqual([process.pid]);
    await me.release();
    expect(await liveServers(dir)).toEqual([]);
    // pid 1 with a start time that is not init's: a reused pid, never signalled
    await writeFile(join(servingDir(dir), '1.json'), JSON.stringify({ pid: 1, start: '12345678901', cacheDir: dir }));
    await writeFile(join(servingDir(dir), '999999999.json'), JSON.stringify({ pid: 999_999_999, start: '1', cacheDir: dir }));
    await writeFile(join(servingDir(dir), '7.json'), 'not json');
    expect(await handOverServers(dir, { waitMs: 100 })).toEqual({ moved: [], stuck: [] });
    expect(await readdir(servingDir(dir))).toEqual([]);
  });

  it('relocatedTo names NEW only once the journal in OLD says switched', async () => {
    const dir = await tmp();
    expect(await relocatedTo(dir)).toBeNull();
    await writeFile(journalPath(dir), JSON.stringify({ phase: 'verified', to: '/x' }));
    expect(await relocatedTo(dir)).toBeNull();
    await writeFile(journalPath(dir), JSON.stringify({ phase: 'switched', to: '/x' }));
    expect(await relocatedTo(dir)).toBe('/x');
  });
});

describe('relocate with a server that does not move', () => {
  it('keeps the old copy and both journals, says so, and the next run removes it once that server is gone', async () => {
    const base = await tmp();
    const from = join(base, 'old');
    const to = join(base, 'new');
    const configFile = join(base, 'airlock.yml');
    await cacheWithOneRelease(from);
    await writeFile(configFile, `cache_dir: ${from}\n`);
    const deaf = await deafServer(from);
    const notes: string[] = [];
    try {
      const first = await relocate({ from, to, configFile, handOverWaitMs: 300, onNote: (m) => notes.push(m) });
      expect(first.outcome).toBe('relocated');
      expect(first.servers).toEqual({ moved: [], stuck: [deaf.pid] });
      expect(first.oldRemoved).toBe(false);
      expect(existsSync(join(from, 'blobs'))).toBe(true);
      expect(existsSync(journalPath(from)) && existsSync(journalPath(to))).toBe(true);
      expect(notes.join('\n')).toContain(`airlock serve (pid ${deaf.pid}) still serves from ${from}, so it is kept`);
      // the registry is not copied to the new folder
      expect(existsSync(servingDir(to))).toBe(false);
    } finally {
      await deaf.stop();
    }
    const second = await relocate({ from: to, to, configFile, handOverWaitMs: 300 });
    expect(second.outcome).toBe('finished');
    expect(second.oldRemoved).toBe(true);
    expect(existsSync(from)).toBe(false);
    expect(existsSync(journalPath(to))).toBe(false);
  });
});
