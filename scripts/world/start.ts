/**
 * `node dist/scripts/world/start.js --dir DIR [--big-file BYTES] [--extra COUNTxBYTES]… [--no-registry]`
 *
 * Starts the test world in DIR, writes DIR/world.json (proxy, upstream URLs,
 * artifacts, image) and stays in the foreground until SIGTERM/SIGINT, then
 * stops every server. For the README demo and the benchmarks.
 */
import { writeFileSync } from 'node:fs';
import { resolve, join } from 'node:path';
import { parseArgs } from 'node:util';
import { startWorld } from './world.js';
import { prepareFixtures } from './fixtures.js';
import type { ExtraFilesSpec, WorldInfo } from './types.js';

const HELP = `usage: start.js --dir DIR [--big-file BYTES] [--extra COUNTxBYTES]... [--no-registry]
       start.js --prepare-only   (build the cached gems and OCI layout in .world-cache, then exit)
Starts nginx, docker-registry and squid on 127.0.0.1 (free ports), writes DIR/world.json,
and runs until SIGTERM/SIGINT. Exit 0 after a clean stop, 1 if the world failed to start.`;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      dir: { type: 'string' },
      'big-file': { type: 'string' },
      extra: { type: 'string', multiple: true },
      'no-registry': { type: 'boolean' },
      'prepare-only': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) { console.log(HELP); return; }
  if (values['prepare-only']) { await prepareFixtures(); return; }
  if (!values.dir) { console.error(HELP); process.exitCode = 2; return; }
  const extraFiles: ExtraFilesSpec[] = (values.extra ?? []).map((s) => {
    const m = /^(\d+)x(\d+)$/.exec(s);
    if (!m) throw new Error(`--extra ${s}: expected COUNTxBYTES, e.g. 100x1048576`);
    return { count: Number(m[1]), size: Number(m[2]) };
  });
  const dir = resolve(values.dir);
  const t0 = Date.now();
  const world = await startWorld({
    dir, extraFiles, registry: !values['no-registry'],
    ...(values['big-file'] ? { bigFileSize: Number(values['big-file']) } : {}),
  });
  const info: WorldInfo = {
    dir: world.dir, proxyUrl: world.proxyUrl, proxyEnv: world.proxyEnv, upstreams: world.upstreams,
    registryAddress: world.registryAddress, artifacts: world.artifacts, image: world.image, squidLogPath: world.squidLogPath,
  };
  writeFileSync(join(dir, 'world.json'), `${JSON.stringify(info, null, 2)}\n`);
  console.log(`world up in ${Date.now() - t0} ms: proxy ${world.proxyUrl}, ${join(dir, 'world.json')}`);
  let stopping = false;
  const stop = (sig: string) => {
    if (stopping) return;
    stopping = true;
    console.log(`${sig}: stopping the world`);
    world.stop().then(() => process.exit(0), (e: unknown) => { console.error(String(e)); process.exit(1); });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main().catch((e: unknown) => {
  console.error(`world: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
});
