/**
 * The content the upstreams serve: real .debs (from setup.sh's cache), real
 * gems (`gem build`, two versions), an OCI image layout (umoci, 2 layers),
 * and generated files (a small .tar.gz and random blobs).
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { promisify } from 'node:util';
import { cacheDir, ensureBuilt } from './cache.js';

const pexec = promisify(execFile);

/** Run a tool; on failure, one line naming the command and its stderr. */
export async function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<string> {
  try {
    const { stdout } = await pexec(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env, timeout: opts.timeoutMs ?? 60_000, maxBuffer: 64 * 1024 * 1024 });
    return stdout;
  } catch (e) {
    const err = e as Error & { stderr?: string; code?: string | number };
    if (err.code === 'ENOENT') throw new Error(`test world: ${cmd} is not installed (run bash scripts/setup.sh)`);
    throw new Error(`test world: ${cmd} ${args.join(' ')} failed: ${(err.stderr ?? err.message).trim().split('\n').slice(-3).join(' | ')}`);
  }
}

export async function sha256File(path: string): Promise<{ sha256: string; size: number }> {
  const h = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(path)) {
    h.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { sha256: h.digest('hex'), size };
}

export interface CachedDeb {
  file: string;
  /** path relative to the repo root, e.g. pool/main/hello_2.10-3_amd64.deb */
  filename: string;
  package: string;
  version: string;
  arch: string;
  sha256: string;
  size: number;
}

/** The apt repo setup.sh prepared (pool/ + dists/), and its debs as read from its Packages file. */
export function cachedDebs(): { repo: string; debs: CachedDeb[] } {
  const repo = join(cacheDir(), 'debs');
  const packages = join(repo, 'dists/stable/main/binary-amd64/Packages');
  if (!existsSync(packages)) throw new Error(`test world: no .deb fixtures in ${repo}: run bash scripts/setup.sh`);
  const debs = readFileSync(packages, 'utf8').split(/\n\n+/).filter((s) => s.trim()).map((stanza) => {
    const field = (name: string): string => {
      const m = new RegExp(`^${name}: (.*)$`, 'm').exec(stanza);
      if (!m) throw new Error(`test world: ${packages}: a stanza has no ${name}`);
      return m[1].trim();
    };
    const filename = field('Filename');
    return {
      file: join(repo, filename), filename,
      package: field('Package'), version: field('Version'), arch: field('Architecture'),
      sha256: field('SHA256'), size: Number(field('Size')),
    };
  });
  // dependencies before dependents: artifacts install in manifest order
  const order = ['libonig5', 'libjq1', 'jq', 'hello', 'tree'];
  const rank = (p: string) => (order.includes(p) ? order.indexOf(p) : order.length);
  debs.sort((a, b) => rank(a.package) - rank(b.package) || a.package.localeCompare(b.package));
  return { repo, debs };
}

export const GEM_NAME = 'rcdemo';
export const GEM_VERSIONS = ['0.1.0', '0.2.0'] as const;

/** A static gem server tree (gems/*.gem + `gem generate_index` output), built once. */
export function builtGemServer(): Promise<string> {
  return ensureBuilt('gems-srv-v1', async (tmp) => {
    const src = join(tmp, 'src');
    mkdirSync(join(src, 'lib'), { recursive: true });
    mkdirSync(join(tmp, 'gems'));
    // a fixed date makes the .gem bytes the same on every machine
    const env = { ...process.env, SOURCE_DATE_EPOCH: '1700000000', HOME: tmp };
    for (const v of GEM_VERSIONS) {
      writeFileSync(join(src, 'lib', `${GEM_NAME}.rb`), `module Rcdemo; VERSION = "${v}"; def self.hello = "hello from rcdemo ${v}"; end\n`);
      writeFileSync(join(src, `${GEM_NAME}.gemspec`),
        `Gem::Specification.new { |s| s.name = "${GEM_NAME}"; s.version = "${v}"; s.summary = "tiny"; s.authors = ["T"]\n` +
        `  s.license = "MIT"; s.files = ["lib/${GEM_NAME}.rb"] }\n`);
      await run('gem', ['build', `${GEM_NAME}.gemspec`, '--output', join(tmp, 'gems', `${GEM_NAME}-${v}.gem`)], { cwd: src, env });
    }
    await run('gem', ['generate_index', '--directory', tmp], { env });
    await run('chmod', ['-R', 'a+rX', tmp]);
  });
}

/** An OCI image layout `img:latest` (linux/amd64, 2 layers + config), built once with umoci. */
export function builtOciLayout(): Promise<string> {
  return ensureBuilt('oci-v1', async (tmp) => {
    const img = join(tmp, 'img');
    const bundle = join(tmp, 'bundle');
    await run('umoci', ['init', '--layout', img]);
    await run('umoci', ['new', '--image', `${img}:latest`]);
    await run('umoci', ['unpack', '--image', `${img}:latest`, bundle]);
    mkdirSync(join(bundle, 'rootfs/app'), { recursive: true });
    writeFileSync(join(bundle, 'rootfs/app/hello.txt'), 'hello from demo/app\n');
    await run('umoci', ['repack', '--image', `${img}:latest`, bundle]);
    await run('umoci', ['config', '--image', `${img}:latest`, '--config.cmd', '/app/hello.txt', '--config.env', 'FOO=bar', '--os', 'linux', '--architecture', 'amd64']);
    writeFileSync(join(tmp, 'blob.bin'), randomBytes(256 * 1024));
    await run('umoci', ['insert', '--image', `${img}:latest`, join(tmp, 'blob.bin'), '/data/blob.bin']);
    await run('umoci', ['gc', '--layout', img]);
  }).then((dir) => join(dir, 'img'));
}

/** A file of `size` random bytes, written in 1 MiB chunks; returns its digest. */
export async function writeRandomFile(path: string, size: number): Promise<{ sha256: string; size: number }> {
  const h = createHash('sha256');
  const fh = await open(path, 'w', 0o644);
  try {
    for (let left = size; left > 0;) {
      const chunk = randomBytes(Math.min(left, 1024 * 1024));
      h.update(chunk);
      await fh.write(chunk);
      left -= chunk.length;
    }
  } finally {
    await fh.close();
  }
  return { sha256: h.digest('hex'), size };
}

/** A small component tarball: app/VERSION, app/bin/run.sh, app/README. */
export async function writeAppTarball(workDir: string, out: string): Promise<void> {
  const app = join(workDir, 'app');
  mkdirSync(join(app, 'bin'), { recursive: true });
  writeFileSync(join(app, 'VERSION'), '1.0\n');
  writeFileSync(join(app, 'bin/run.sh'), '#!/bin/sh\necho demo app 1.0\n', { mode: 0o755 });
  writeFileSync(join(app, 'README'), `demo component, built ${new Date().toISOString()}\n`);
  await run('tar', ['-czf', out, '-C', workDir, 'app']);
}

export function listGems(srv: string): string[] {
  return readdirSync(join(srv, 'gems')).filter((f) => f.endsWith('.gem')).sort().map((f) => join(srv, 'gems', basename(f)));
}

/** Build everything the world reads from the cache, once (scripts/test.sh calls this before parallel suites start worlds). */
export async function prepareFixtures(): Promise<void> {
  cachedDebs();
  await builtGemServer();
  await builtOciLayout();
}
