/**
 * Debian's docker-registry (distribution 2.8) as the image upstream, and
 * pushing the umoci-built image into it with skopeo: an OCI manifest tag, a
 * Docker v2s2 tag, and an OCI index (crafted: amd64 + an arm64 sibling).
 */
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { httpStatus, waitUntil } from './net.js';
import { startServer, type Server } from './proc.js';
import { run } from './fixtures.js';
import type { BlobRef } from '../../manifests/types.js';

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
export const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
export const DOCKER_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
/** Without an OCI type in Accept the registry 404s OCI manifests; without any, it downgrades v2s2 to schema 1. */
export const ACCEPT_ALL = [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST].join(',');

export function writeRegistryConfig(dir: string, port: number): string {
  mkdirSync(join(dir, 'data'), { recursive: true });
  const conf = join(dir, 'config.yml');
  // not the packaged /etc/docker/registry/config.yml: that one turns on htpasswd auth
  writeFileSync(conf, `version: 0.1
log: {level: warn, accesslog: {disabled: true}}
storage:
  filesystem: {rootdirectory: ${dir}/data}
  delete: {enabled: true}
http: {addr: "127.0.0.1:${port}", secret: airlock-test-world}
`);
  return conf;
}

export async function startRegistry(dir: string, port: number): Promise<Server> {
  const server = startServer('docker-registry', 'docker-registry', ['serve', join(dir, 'config.yml')], join(dir, 'log'));
  try {
    await waitUntil('docker-registry', async () => (await httpStatus(`http://127.0.0.1:${port}/v2/`)) === 200, server.exited);
  } catch (e) {
    await server.stop('SIGKILL');
    throw e;
  }
  return server;
}

/** skopeo without proxy variables: pushes go straight to 127.0.0.1 and stay out of squid's log. */
function cleanEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (/^(https?|no|all)_proxy$/i.test(k)) delete env[k];
  return env;
}

export interface FetchedManifest {
  digest: string;
  size: number;
  mediaType: string;
  body: Buffer;
}

export async function getManifest(base: string, repo: string, ref: string): Promise<FetchedManifest> {
  const res = await fetch(`${base}/v2/${repo}/manifests/${ref}`, { headers: { accept: ACCEPT_ALL } });
  if (!res.ok) throw new Error(`test world: GET ${repo} manifest ${ref}: HTTP ${res.status}`);
  const body = Buffer.from(await res.arrayBuffer());
  const digest = `sha256:${createHash('sha256').update(body).digest('hex')}`;
  const served = res.headers.get('docker-content-digest');
  if (served && served !== digest) throw new Error(`test world: ${repo}:${ref} Docker-Content-Digest ${served} != sha256 of body ${digest}`);
  return { digest, size: body.length, mediaType: (res.headers.get('content-type') ?? '').split(';')[0], body };
}

async function putBlob(base: string, repo: string, bytes: Buffer): Promise<BlobRef> {
  const hex = createHash('sha256').update(bytes).digest('hex');
  const start = await fetch(`${base}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  const location = start.headers.get('location');
  if (start.status !== 202 || !location) throw new Error(`test world: blob upload start: HTTP ${start.status}`);
  const url = new URL(location, base);
  url.searchParams.set('digest', `sha256:${hex}`);
  const put = await fetch(url, { method: 'PUT', body: bytes, headers: { 'content-type': 'application/octet-stream' } });
  if (put.status !== 201) throw new Error(`test world: blob upload: HTTP ${put.status} ${await put.text()}`);
  return { sha256: hex, size: bytes.length };
}

async function putManifest(base: string, repo: string, ref: string, mediaType: string, body: Buffer): Promise<void> {
  const res = await fetch(`${base}/v2/${repo}/manifests/${ref}`, { method: 'PUT', body, headers: { 'content-type': mediaType } });
  if (res.status !== 201) throw new Error(`test world: PUT manifest ${repo}:${ref}: HTTP ${res.status} ${await res.text()}`);
}

interface ImageManifestJson {
  config: { mediaType: string; digest: string; size: number };
  layers: Array<{ mediaType: string; digest: string; size: number }>;
}

export const hex = (digest: string) => digest.replace(/^sha256:/, '');

export interface PushResult {
  oci: FetchedManifest & { json: ImageManifestJson };
  docker: FetchedManifest & { json: ImageManifestJson };
  index: FetchedManifest & { manifests: Array<{ digest: string; size: number; platform: string }> };
}

/** Push `layout:latest` as REPO:TAG (OCI), REPO:TAG-docker (v2s2) and REPO:TAG-index (OCI index). */
export async function pushImage(port: number, layout: string, repo: string, tag: string): Promise<PushResult> {
  const base = `http://127.0.0.1:${port}`;
  const dest = `docker://127.0.0.1:${port}/${repo}`;
  const env = cleanEnv();
  await Promise.all([
    run('skopeo', ['copy', '--quiet', '--dest-tls-verify=false', `oci:${layout}:latest`, `${dest}:${tag}`], { env }),
    run('skopeo', ['copy', '--quiet', '--dest-tls-verify=false', '--format', 'v2s2', `oci:${layout}:latest`, `${dest}:${tag}-docker`], { env }),
  ]);
  const ociM = await getManifest(base, repo, tag);
  const dockerM = await getManifest(base, repo, `${tag}-docker`);
  const ociJson = JSON.parse(ociM.body.toString('utf8')) as ImageManifestJson;

  // an arm64 sibling: same layers, config saying arm64, so the index has something to choose between
  const cfgRes = await fetch(`${base}/v2/${repo}/blobs/${ociJson.config.digest}`);
  const cfg = JSON.parse(await cfgRes.text()) as Record<string, unknown>;
  const armCfg = await putBlob(base, repo, Buffer.from(JSON.stringify({ ...cfg, architecture: 'arm64' })));
  const armBody = Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: OCI_MANIFEST,
    config: { mediaType: ociJson.config.mediaType, digest: `sha256:${armCfg.sha256}`, size: armCfg.size },
    layers: ociJson.layers,
  }));
  const armDigest = `sha256:${createHash('sha256').update(armBody).digest('hex')}`;
  await putManifest(base, repo, armDigest, OCI_MANIFEST, armBody);
  const entries = [
    { digest: ociM.digest, size: ociM.size, platform: 'linux/amd64' },
    { digest: armDigest, size: armBody.length, platform: 'linux/arm64' },
  ];
  const indexBody = Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: OCI_INDEX,
    manifests: entries.map((e) => ({
      mediaType: OCI_MANIFEST, digest: e.digest, size: e.size,
      platform: { os: 'linux', architecture: e.platform.split('/')[1] },
    })),
  }));
  await putManifest(base, repo, `${tag}-index`, OCI_INDEX, indexBody);
  const indexM = await getManifest(base, repo, `${tag}-index`);
  return {
    oci: { ...ociM, json: ociJson },
    docker: { ...dockerM, json: JSON.parse(dockerM.body.toString('utf8')) as ImageManifestJson },
    index: { ...indexM, manifests: entries },
  };
}
