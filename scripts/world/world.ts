/**
 * startWorld(): the real upstream world the e2e tests, benchmarks and the
 * README demo stand on — nginx (debs, gems, files), docker-registry (an
 * image in three forms) and squid in front of them, all on 127.0.0.1 with
 * ports picked at runtime, in a fresh folder. The URLs it hands out use fake
 * host names that only squid resolves.
 */
import { chmodSync, cpSync, mkdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import type { FileArtifact, OciImageArtifact } from '../../manifests/types.js';
import {
  builtGemServer, builtOciLayout, cachedDebs, GEM_NAME, listGems, sha256File, writeAppTarball, writeRandomFile,
} from './fixtures.js';
import { freePorts, waitPortClosed, waitUntil } from './net.js';
import { startNginx, writeNginxConfig } from './nginx.js';
import type { Server } from './proc.js';
import { hex, pushImage, startRegistry, writeRegistryConfig } from './registry.js';
import { parseSquidLog, startSquid, writeSquidConfig } from './squid.js';
import {
  UPSTREAM_HOSTS, type Upstream, type UpstreamName, type World, type WorldArtifact, type WorldImage, type WorldOptions,
} from './types.js';

export const IMAGE_REPO = 'demo/app';
export const IMAGE_TAG = '1.0';

/** Start a server on fresh ports, again if it lost a bind race to a parallel suite. */
async function withPortRetry<T>(n: number, start: (ports: number[]) => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    const ports = await freePorts(n);
    try {
      return await start(ports);
    } catch (e) {
      if (attempt >= 3 || !/in use|bind|exited/i.test((e as Error).message)) throw e;
    }
  }
}

function upstream(name: UpstreamName, port: number): Upstream {
  const host = UPSTREAM_HOSTS[name];
  return { url: `http://${host}:${port}`, direct: `http://127.0.0.1:${port}`, host, port };
}

export async function startWorld(opts: WorldOptions = {}): Promise<World> {
  const dir = opts.dir ?? (await mkdtemp(join(tmpdir(), 'airlock-world-')));
  mkdirSync(dir, { recursive: true });
  chmodSync(dir, 0o755); // nginx workers (nobody) and squid (proxy) walk through it
  const servers: Server[] = [];
  let upstreamServers: Server[] = [];
  try {
    // content first (no ports needed)
    const [gemSrv, layout] = await Promise.all([builtGemServer(), opts.registry === false ? null : builtOciLayout()]);
    const { repo: debRepo, debs } = cachedDebs();
    const roots = { debs: join(dir, 'debs'), gems: join(dir, 'gems'), files: join(dir, 'files') };
    cpSync(debRepo, roots.debs, { recursive: true });
    cpSync(gemSrv, roots.gems, { recursive: true });
    mkdirSync(join(roots.files, 'extra'), { recursive: true });
    chmodSync(roots.files, 0o755);
    const work = join(dir, 'work');
    mkdirSync(work);
    await writeAppTarball(work, join(roots.files, 'app.tar.gz'));
    const blob = await writeRandomFile(join(roots.files, 'blob.bin'), opts.bigFileSize ?? 1024 * 1024);
    const extras: Array<{ name: string; sha256: string; size: number }> = [];
    for (const spec of opts.extraFiles ?? []) {
      for (let i = 0; i < spec.count; i++) {
        const name = `extra-${spec.size}-${i}.bin`;
        extras.push({ name, ...(await writeRandomFile(join(roots.files, 'extra', name), spec.size)) });
      }
    }

    // nginx: debs, gems, files
    const nginxDir = join(dir, 'nginx');
    let webPorts: number[] = [];
    const startWeb = async (ports: number[]) => {
      writeNginxConfig(nginxDir, [
        { port: ports[0], root: roots.debs, autoindex: true },
        { port: ports[1], root: roots.gems },
        { port: ports[2], root: roots.files, autoindex: true },
      ]);
      const s = await startNginx(nginxDir, ports);
      webPorts = ports;
      return s;
    };
    // registry
    const regDir = join(dir, 'registry');
    let regPort = 0;
    const startReg = async ([p]: number[]) => {
      writeRegistryConfig(regDir, p);
      const s = await startRegistry(regDir, p);
      regPort = p;
      return s;
    };

    // squid in front of them
    const squidDir = join(dir, 'squid');
    let squidPort = 0;
    const startProxy = async ([p]: number[]) => {
      writeSquidConfig(squidDir, p, Object.values(UPSTREAM_HOSTS));
      const s = await startSquid(squidDir, p);
      squidPort = p;
      return s;
    };

    // all three at once; allSettled so that none is left running unseen if another fails
    const started = await Promise.allSettled([
      withPortRetry(3, startWeb),
      layout ? withPortRetry(1, startReg) : Promise.resolve(null),
      withPortRetry(1, startProxy),
    ]);
    for (const r of started) if (r.status === 'fulfilled' && r.value) servers.push(r.value);
    const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
    const [nginx, registry] = started.map((r) => (r as PromiseFulfilledResult<Server | null>).value);
    if (!nginx) throw new Error('test world: nginx did not start');
    if (!registry) [regPort] = await freePorts(1); // a name with a port nobody listens on
    upstreamServers = registry ? [nginx, registry] : [nginx];

    const upstreams: Record<UpstreamName, Upstream> = {
      debs: upstream('debs', webPorts[0]),
      gems: upstream('gems', webPorts[1]),
      files: upstream('files', webPorts[2]),
      registry: upstream('registry', regPort),
    };

    const artifacts: WorldArtifact[] = [];
    for (const d of debs) {
      artifacts.push({
        path: `debs/${basename(d.filename)}`, kind: 'deb', sha256: d.sha256, size: d.size,
        urls: [`${upstreams.debs.url}/${d.filename}`], package: d.package, version: d.version, arch: d.arch,
        localPath: join(roots.debs, d.filename), directUrl: `${upstreams.debs.direct}/${d.filename}`,
      });
    }
    for (const g of listGems(roots.gems)) {
      const name = basename(g);
      const version = name.slice(GEM_NAME.length + 1, -'.gem'.length);
      artifacts.push({
        path: `gems/${name}`, kind: 'gem', ...(await sha256File(g)),
        urls: [`${upstreams.gems.url}/gems/${name}`], gem: GEM_NAME, version,
        localPath: g, directUrl: `${upstreams.gems.direct}/gems/${name}`,
      });
    }
    const file = (name: string, digest: { sha256: string; size: number }, install?: FileArtifact['install'], extra?: boolean): WorldArtifact => ({
      path: `files/${name}`, kind: 'file', ...digest, urls: [`${upstreams.files.url}/${name}`],
      ...(install ? { install } : {}), localPath: join(roots.files, name), directUrl: `${upstreams.files.direct}/${name}`,
      ...(extra ? { extra } : {}),
    });
    artifacts.push(file('app.tar.gz', await sha256File(join(roots.files, 'app.tar.gz')), { extract: '/opt/demo' }));
    artifacts.push(file('blob.bin', blob, { copy: '/opt/demo/blob.bin' }));
    for (const x of extras) artifacts.push(file(`extra/${x.name}`, { sha256: x.sha256, size: x.size }, undefined, true));

    let image: WorldImage | null = null;
    if (layout) {
      const pushed = await pushImage(regPort, layout, IMAGE_REPO, IMAGE_TAG);
      const ref = (tag: string) => `${upstreams.registry.host}:${regPort}/${IMAGE_REPO}:${tag}`;
      const blobRef = (d: { digest: string; size: number }) => ({ sha256: hex(d.digest), size: d.size });
      const config = { ...blobRef(pushed.oci.json.config), mediaType: pushed.oci.json.config.mediaType };
      const layers = pushed.oci.json.layers.map((l) => ({ ...blobRef(l), mediaType: l.mediaType }));
      const blobs = [config, ...layers].map(({ sha256, size }) => ({ sha256, size }));
      const artifact: OciImageArtifact = {
        path: `images/${IMAGE_REPO}`, kind: 'oci-image', sha256: hex(pushed.oci.digest), size: pushed.oci.size,
        image: ref(IMAGE_TAG), mediaType: pushed.oci.mediaType, blobs,
      };
      image = {
        reference: ref(IMAGE_TAG), repository: IMAGE_REPO, tag: IMAGE_TAG,
        digest: pushed.oci.digest, size: pushed.oci.size, mediaType: pushed.oci.mediaType,
        blobs, config, layers,
        docker: {
          reference: ref(`${IMAGE_TAG}-docker`), tag: `${IMAGE_TAG}-docker`, digest: pushed.docker.digest, size: pushed.docker.size,
          mediaType: pushed.docker.mediaType,
          blobs: [pushed.docker.json.config, ...pushed.docker.json.layers].map(blobRef),
        },
        index: {
          reference: ref(`${IMAGE_TAG}-index`), tag: `${IMAGE_TAG}-index`, digest: pushed.index.digest, size: pushed.index.size,
          mediaType: pushed.index.mediaType, manifests: pushed.index.manifests,
        },
        artifact,
      };
    }

    await rm(work, { recursive: true, force: true });
    const proxyUrl = `http://127.0.0.1:${squidPort}`;
    const squidLogPath = join(squidDir, 'access.log');
    let stopped = false;

    const world: World = {
      dir, proxyUrl,
      proxyEnv: { http_proxy: proxyUrl, HTTP_PROXY: proxyUrl, https_proxy: proxyUrl, HTTPS_PROXY: proxyUrl, no_proxy: '', NO_PROXY: '' },
      upstreams,
      registryAddress: `${upstreams.registry.host}:${regPort}`,
      artifacts, image, squidLogPath,
      squidLog: () => parseSquidLog(squidLogPath),
      async waitForSquidLog(match, timeoutMs = 5000) {
        let found: ReturnType<typeof parseSquidLog>[number] | undefined;
        await waitUntil('squid log entry', async () => (found = parseSquidLog(squidLogPath).find(match)) !== undefined, () => null, timeoutMs);
        return found!;
      },
      async stopUpstreams() {
        const ports = [...webPorts, ...(registry ? [regPort] : [])];
        await Promise.all(upstreamServers.map((s) => s.stop()));
        await Promise.all(ports.map((p) => waitPortClosed(p)));
      },
      async startUpstreams() {
        if (upstreamServers.some((s) => s.exited() === null)) return; // still up
        const fresh: Server[] = [await startNginx(nginxDir, webPorts)];
        if (registry) fresh.push(await startRegistry(regDir, regPort));
        upstreamServers = fresh;
        servers.push(...fresh);
      },
      async stop() {
        if (stopped) return;
        stopped = true;
        await Promise.all(servers.map((s) => s.stop()));
        await Promise.all([...webPorts, regPort, squidPort].map((p) => waitPortClosed(p)));
        if (!opts.dir && !opts.keep) await rm(dir, { recursive: true, force: true });
      },
    };
    return world;
  } catch (e) {
    await Promise.all(servers.map((s) => s.stop('SIGKILL')));
    if (!opts.dir && !opts.keep) await rm(dir, { recursive: true, force: true });
    throw e;
  }
}
