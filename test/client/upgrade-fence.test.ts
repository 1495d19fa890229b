/**
 * End to end through `airlock-node upgrade`: a signed release whose component
 * tarball plants `a -> .` and `a/var -> ../escaped`, followed by an image
 * whose OCI layout goes under ROOT/var. The node refuses with one EPATH line
 * (exit 3) and nothing lands beside the root.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { loadTrustedRoot } from '../../manifests/root.js';
import { verifyRelease } from '../../manifests/index.js';
import type { ReleaseManifest } from '../../manifests/types.js';
import { openStore } from '../../storage/index.js';
import { makeTrust, signRelease, type Trust } from '../../scripts/world/index.js';
import { freePorts, httpStatus } from '../../scripts/world/net.js';
import { startServer, type Server } from '../../scripts/world/proc.js';
import { AIRLOCK, NODE_CLI, cleanEnv, runCmd } from '../support/cli.js';
import { makeTar, sha256 } from './install/hostile.js';

describe('airlock-node upgrade never writes outside --root', () => {
  let dir: string;
  let trust: Trust;
  let serve: Server;
  let cache: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'airlock-upgrade-fence-'));
    trust = makeTrust(join(dir, 'keys'));
    const tar = await makeTar([
      { name: 'a', type: 'symlink', linkname: '.' },
      { name: 'a/var', type: 'symlink', linkname: '../escaped' },
    ]);
    const config = Buffer.from('{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"config":{}}');
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${sha256(config)}`, size: config.length },
        layers: [],
      }),
    );
    const payload: ReleaseManifest = {
      type: 'airlock-release',
      spec: 1,
      product: 'demo',
      release: '1.0.0',
      serial: 1,
      issued: new Date(Date.now() - 60_000).toISOString().replace(/\.\d{3}Z$/, 'Z'),
      expires: new Date(Date.now() + 86_400_000).toISOString().replace(/\.\d{3}Z$/, 'Z'),
      artifacts: [
        { kind: 'file', path: 'components/evil.tar', urls: ['http://upstream.test/evil.tar'], sha256: sha256(tar), size: tar.length, install: { extract: '/' } },
        {
          kind: 'oci-image',
          path: 'images/demo/app',
          image: 'registry.test:5000/demo/app:1.0',
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          sha256: sha256(manifest),
          size: manifest.length,
          blobs: [{ sha256: sha256(config), size: config.length }],
        },
      ],
    };
    const verified = verifyRelease(signRelease(payload, trust), { root: loadTrustedRoot(trust.rootJson, new Date()), now: new Date(), accepted: {} });
    cache = join(dir, 'cache');
    const store = await openStore({ cacheDir: cache, write: true });
    for (const b of [tar, config, manifest]) await store.ingestStream({ sha256: sha256(b), size: b.length }, Readable.from([b]));
    await store.putRelease(verified);
    await store.close();
  });

  afterAll(async () => {
    await serve?.stop();
  });

  it('refuses the `a -> .`, `a/var -> ../escaped` component with EPATH, exit 3, one line; the image step never writes beside the root', async () => {
    const [port] = await freePorts(1);
    serve = startServer('airlock-serve-fence', process.execPath, [AIRLOCK, 'serve', '--cache-dir', cache, '--listen', `127.0.0.1:${port}`, '--grace', '1'], join(dir, 'serve.log'), { env: cleanEnv() });
    const url = `http://127.0.0.1:${port}`;
    for (let i = 0; i < 100 && (await httpStatus(`${url}/healthz`).catch(() => 0)) !== 200; i++) await new Promise((r) => setTimeout(r, 100));
    expect(await httpStatus(`${url}/healthz`).catch(() => 0), `airlock serve did not start (see ${join(dir, 'serve.log')})`).toBe(200);
    const node = join(dir, 'node');
    mkdirSync(join(node, 'root'), { recursive: true });
    mkdirSync(join(node, 'escaped'));
    const r = await runCmd(process.execPath, [NODE_CLI, 'upgrade', '--cache', url, '--root', join(node, 'root'), '--state-dir', join(dir, 'state'), '--trust', trust.rootJsonPath]);
    expect(readdirSync(join(node, 'escaped'))).toEqual([]);
    expect(r.code, r.stderr).toBe(3);
    const lines = r.stderr.trim().split('\n');
    expect(lines[lines.length - 1]).toMatch(/EPATH: components\/evil\.tar: /);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(readdirSync(join(node, 'root'))).toEqual([]);
  });
});
