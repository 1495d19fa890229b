/**
 * The example configs shipped in packaging/ (and in the .deb): both programs
 * accept them as shipped, and with every commented-out setting ("# key: …")
 * switched on; between them they name every key the programs know, so a key
 * added to a schema without an example here fails this test.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { CONFIG_SCHEMA, loadConfig } from '../../server/config.js';
import { loadNodeConfig, NODE_CONFIG_SCHEMA } from '../../client/config.js';
import { AIRLOCK, NODE_CLI, REPO, runCli } from '../support/cli.js';

const CACHE_EXAMPLE = join(REPO, 'packaging', 'airlock.yml');
const NODE_EXAMPLE = join(REPO, 'packaging', 'airlock-node.yml');

/** Every "# key: value" line (and the indented lines under a commented-out map) made live. */
export function uncommentSettings(text: string): string {
  return text
    .split('\n')
    .map((l) => (/^# ?( *)[a-z][a-z0-9_-]*:( |$)/.test(l) ? l.replace(/^# ?/, '') : l))
    .join('\n');
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'airlock-examples-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

async function allOn(example: string, name: string): Promise<string> {
  const file = join(dir, name);
  await writeFile(file, uncommentSettings(await readFile(example, 'utf8')));
  return file;
}

const keysOf = (yamlText: string): string[] => Object.keys(parse(yamlText) as Record<string, unknown>).sort();

describe('packaging/airlock.yml', () => {
  it('loads through loadConfig as shipped, with the documented defaults', () => {
    const c = loadConfig({ config: CACHE_EXAMPLE });
    expect(c.cacheDir).toBe('/var/lib/airlock/cache');
    expect(c.trust).toBe('/etc/airlock/root.json');
    expect(c.listen).toBe('0.0.0.0:7070');
    expect([c.parallel, c.minRate, c.rateWindowMs, c.maxConnections, c.passthrough]).toEqual([8, 1024, 60_000, 1024, false]);
    expect([c.proxy, c.adminToken, c.tls, c.caFile]).toEqual([null, null, null, null]);
  });

  it('with every commented-out setting switched on, it still loads and names every key airlock knows', async () => {
    const file = await allOn(CACHE_EXAMPLE, 'airlock-all.yml');
    expect(keysOf(await readFile(file, 'utf8'))).toEqual(Object.keys(CONFIG_SCHEMA).sort());
    const c = loadConfig({ config: file });
    expect(c.tls).toEqual({ cert: '/etc/airlock/tls.crt', key: '/etc/airlock/tls.key' });
    expect(c.insecureRegistries).toEqual(['registry.lab.example:5000']);
    expect(c.acceptExpiredUntil).not.toBeNull();
  });

  it('the airlock CLI accepts both (status of an empty cache: "no release staged", exit 1, not a usage error)', async () => {
    // with every setting on, the blobs would be in a bucket on 127.0.0.1:7480, whose records status
    // reads (test/e2e/s3*.test.ts run that against a real Ceph): here the rest of the file, on the filesystem
    const all = parse(await readFile(await allOn(CACHE_EXAMPLE, 'airlock-cli.yml'), 'utf8')) as Record<string, unknown>;
    for (const key of ['storage', 'redirect_blobs', 'redirect_ttl']) delete all[key];
    const onFs = join(dir, 'airlock-cli-fs.yml');
    await writeFile(onFs, stringify(all));
    for (const cfg of [CACHE_EXAMPLE, onFs]) {
      const r = await runCli(AIRLOCK, ['status', '--config', cfg, '--cache-dir', join(dir, 'cache')]);
      expect(r.stderr).toBe('');
      expect(r.stdout).toMatch(/^no release staged in /);
      expect(r.code).toBe(1);
    }
  });
});

describe('packaging/airlock-node.yml', () => {
  it('loads through loadNodeConfig as shipped', () => {
    const c = loadNodeConfig({ config: NODE_EXAMPLE }, REPO, null);
    expect(c.caches).toEqual(['http://cache.example.org:7070']);
    expect([c.stateDir, c.root, c.parallel, c.diskMargin]).toEqual(['/var/lib/airlock-node', '/', 4, 256 * 2 ** 20]);
    expect([c.memoryFloorCore, c.memoryFloorOther]).toEqual([2 ** 30, 512 * 2 ** 20]);
    expect(c.installers).toEqual({ file: null, deb: null, gem: null, 'oci-image': null });
  });

  it('with every commented-out setting switched on, it still loads and names every key airlock-node knows', async () => {
    const file = await allOn(NODE_EXAMPLE, 'node-all.yml');
    const text = await readFile(file, 'utf8');
    expect(keysOf(text)).toEqual(Object.keys(NODE_CONFIG_SCHEMA).sort());
    const installers = (parse(text) as { installers: Record<string, string> }).installers;
    expect(Object.keys(installers).sort()).toEqual(Object.keys(NODE_CONFIG_SCHEMA.installers!.fields!).sort());
    const c = loadNodeConfig({ config: file }, REPO, null);
    expect(c.roles).toEqual(['core']);
    expect(c.installers['oci-image']).toContain('{archive}');
  });

  it('the airlock-node CLI accepts both (status with a fresh state dir: exit 0)', async () => {
    for (const cfg of [NODE_EXAMPLE, await allOn(NODE_EXAMPLE, 'node-cli.yml')]) {
      const r = await runCli(NODE_CLI, ['status', '--config', cfg, '--state-dir', join(dir, 'state')]);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
    }
  });
});
