/**
 * `/gems/:release/` against the real clients of Debian 12 — gem 3.3
 * (`gem install --source`, `gem fetch`) and bundler 2.3 (`bundle install`
 * with the source in a Gemfile) — talking to `airlock serve` as a process on
 * 127.0.0.1, with a throwaway HOME, GEM_HOME and BUNDLE_PATH and no proxy.
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../../../../scripts/world/cache.js';
import { buildGems, stageGems, type BuiltGem } from '../gem-fixture.js';

const CLI = join(repoRoot(), 'dist/server/cli/main.js');
const has = (cmd: string): boolean => {
  try {
    execFileSync(cmd, ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
};
const tools = { gem: has('gem'), bundle: has('bundle') };
if ((!tools.gem || !tools.bundle) && process.env.CI === 'true') {
  throw new Error('gem or bundle is not installed (CI=true makes this a failure): run scripts/setup.sh (packages ruby, ruby-bundler)');
}

let dir: string;
let gems: BuiltGem[];
let proc: ChildProcess | undefined;
let base: string;
let source: string;
const log: string[] = [];

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv, cwd?: string): Promise<Ran> {
  return new Promise((resolve) => {
    execFile(cmd, args, { env, cwd, timeout: 120_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const code = (err as { code?: unknown } | null)?.code;
      resolve({ code: err ? (typeof code === 'number' ? code : 1) : 0, stdout, stderr });
    });
  });
}

/** HOME and the gem dirs of one client, nothing of this machine's gem config, no proxy */
function clientEnv(name: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const home = join(dir, name);
  mkdirSync(home, { recursive: true });
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: home, LANG: 'C.UTF-8', GEM_HOME: join(home, 'gems'), GEM_PATH: join(home, 'gems'), ...extra };
  return env;
}

/** the access log's requests, from line `from` on */
const requests = (from = 0): Array<{ method: string; url: string; status: number }> =>
  log.slice(from).flatMap((l) => {
    try {
      const j = JSON.parse(l) as { method?: string; url?: string; status?: number };
      return j.url ? [{ method: j.method!, url: j.url, status: j.status! }] : [];
    } catch {
      return [];
    }
  });

beforeAll(async () => {
  if (!tools.gem) return;
  ({ dir, gems } = buildGems());
  const store = await stageGems(dir, gems);
  await store.close();
  const cfg = join(dir, 'airlock.yml');
  writeFileSync(cfg, `cache_dir: ${join(dir, 'cache')}\n`);
  const child = spawn(process.execPath, [CLI, 'serve', '--config', cfg, '--listen', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  proc = child;
  let buf = '';
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`airlock serve did not start: ${log.join('\n')}`)), 20_000);
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        log.push(line);
        const m = /"address":"http:\/\/[^"]*:(\d+)"/.exec(line);
        if (m) {
          clearTimeout(timer);
          resolve(Number(m[1]));
        }
      }
    });
    child.stderr!.on('data', (d: Buffer) => log.push(`stderr: ${d.toString().trim()}`));
    child.on('exit', (code) => reject(new Error(`airlock serve exited ${code}: ${log.join('\n')}`)));
  });
  base = `http://127.0.0.1:${port}`;
  source = `${base}/gems/3.6.2/`;
}, 90_000);

afterAll(() => {
  proc?.kill('SIGTERM');
});

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

describe.skipIf(!tools.gem)('gem against /gems/:release/', () => {
  it('gem install --source installs a gem and the staged gem it depends on', async () => {
    const env = clientEnv('install');
    const r = await run('gem', ['install', '--source', source, 'gtop', '--no-document'], env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/Successfully installed gbase-1\.2\.0/);
    expect(r.stdout).toMatch(/Successfully installed gtop-0\.3\.0/);
    const hello = execFileSync('ruby', ['-e', 'require "gtop"; puts Gtop.hello'], { env, encoding: 'utf8' });
    expect(hello.trim()).toBe('gtop 0.3.0 on gbase 1.2.0');
    const urls = requests().map((q) => `${q.method} ${q.url} ${q.status}`);
    expect(urls).toContain('HEAD /gems/3.6.2/ 200');
    expect(urls).toContain('GET /gems/3.6.2/info/gtop 200');
    expect(urls).toContain('GET /gems/3.6.2/gems/gtop-0.3.0.gem 200');
  });

  it('gem fetch gets the staged bytes, a release and a prerelease', async () => {
    const env = clientEnv('fetch');
    const cwd = env.HOME!;
    let r = await run('gem', ['fetch', 'gbase', '--source', source], env, cwd);
    expect(r.code, r.stderr).toBe(0);
    expect(sha256(readFileSync(join(cwd, 'gbase-1.2.0.gem')))).toBe(gems.find((g) => g.version === '1.2.0')!.sha256);
    rmSync(join(cwd, 'gbase-1.2.0.gem'));
    r = await run('gem', ['fetch', 'gbase', '-v', '1.2.0', '--source', source], env, cwd);
    expect(r.code, r.stderr).toBe(0);
    expect(existsSync(join(cwd, 'gbase-1.2.0.gem'))).toBe(true);
    r = await run('gem', ['fetch', 'gbase', '--prerelease', '--source', source], env, cwd);
    expect(r.code, r.stderr).toBe(0);
    expect(existsSync(join(cwd, 'gbase-2.0.0.pre1.gem'))).toBe(true);
    // each Marshal index: latest (no version asked), released (a version asked), prerelease
    expect(requests().map((q) => `${q.url} ${q.status}`)).toEqual(
      expect.arrayContaining(['/gems/3.6.2/latest_specs.4.8.gz 200', '/gems/3.6.2/specs.4.8.gz 200', '/gems/3.6.2/prerelease_specs.4.8.gz 200']),
    );
  });

  it('a gem not in the release is a clean failure from gem install and gem fetch', async () => {
    const env = clientEnv('missing');
    let r = await run('gem', ['install', '--source', source, 'nosuchgem', '--no-document'], env);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/Could not find a valid gem 'nosuchgem'/);
    expect(r.stderr).not.toMatch(/\.rb:\d+:in/);
    r = await run('gem', ['fetch', 'nosuchgem', '--source', source], env, env.HOME);
    expect(`${r.stdout}${r.stderr}`).toMatch(/Could not find a valid gem 'nosuchgem'/);
  });
});

describe.skipIf(!tools.bundle)('bundler against /gems/:release/', () => {
  const gemfile = (name: string, body: string): NodeJS.ProcessEnv => {
    const env = clientEnv(name);
    const app = join(env.HOME!, 'app');
    mkdirSync(app, { recursive: true });
    writeFileSync(join(app, 'Gemfile'), `source "${source}"\n${body}`);
    return { ...env, BUNDLE_GEMFILE: join(app, 'Gemfile'), BUNDLE_PATH: join(env.HOME!, 'bundle'), BUNDLE_USER_HOME: join(env.HOME!, '.bundle'), BUNDLE_APP_CONFIG: join(app, '.bundle') };
  };

  it('bundle install resolves over the compact index and installs both gems; a second run revalidates', async () => {
    const env = gemfile('bundle', 'gem "gtop"\n');
    const app = join(env.HOME!, 'app');
    const before = log.length;
    let r = await run('bundle', ['install'], env, app);
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
    expect(r.stdout).toMatch(/Bundle complete!/);
    const lock = readFileSync(join(app, 'Gemfile.lock'), 'utf8');
    expect(lock).toMatch(/remote: http:\/\/127\.0\.0\.1:\d+\/gems\/3\.6\.2\//);
    expect(lock).toMatch(/^ {4}gbase \(1\.2\.0\)$/m);
    expect(lock).toMatch(/^ {4}gtop \(0\.3\.0\)$/m);
    expect(lock).toMatch(/^ {6}gbase \(~> 1\.0, >= 1\.1\)$/m);
    const hello = await run('bundle', ['exec', 'ruby', '-e', 'require "gtop"; puts Gtop.hello'], env, app);
    expect(hello.stdout.trim(), hello.stderr).toBe('gtop 0.3.0 on gbase 1.2.0');
    const first = requests(before);
    expect(first.map((q) => `${q.url} ${q.status}`)).toEqual(
      expect.arrayContaining(['/gems/3.6.2/versions 200', '/gems/3.6.2/info/gtop 200', '/gems/3.6.2/info/gbase 200', '/gems/3.6.2/gems/gbase-1.2.0.gem 200']),
    );
    // again from nothing but the compact index cache bundler keeps: a ranged, conditional request answered 304
    rmSync(join(app, 'Gemfile.lock'));
    rmSync(env.BUNDLE_PATH!, { recursive: true, force: true });
    const mark = log.length;
    r = await run('bundle', ['install'], env, app);
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
    expect(requests(mark).map((q) => `${q.url} ${q.status}`)).toContain('/gems/3.6.2/versions 304');
  });

  it('a gem not in the release is a clean failure from bundle install', async () => {
    const env = gemfile('bundle-missing', 'gem "nosuchgem"\n');
    const r = await run('bundle', ['install'], env, join(env.HOME!, 'app'));
    expect(r.code).not.toBe(0);
    expect(`${r.stdout}${r.stderr}`).toMatch(/Could not find gem 'nosuchgem' in rubygems repository\s+http:\/\/127\.0\.0\.1:\d+\/gems\/3\.6\.2\//);
    expect(`${r.stdout}${r.stderr}`).not.toMatch(/\.rb:\d+:in/);
  });
});

describe.skipIf(!tools.gem)('the routes themselves', () => {
  it('the source root answers GET and HEAD; a .gem is a blob with Range and ETag; unknown things are 404', async () => {
    let res = await fetch(source, { method: 'HEAD' });
    expect(res.status).toBe(200);
    res = await fetch(source);
    expect(await res.text()).toBe(`RubyGems source of release 3.6.2: gem install --source ${source} NAME\n`);
    const g = gems.find((x) => x.name === 'gtop')!;
    res = await fetch(`${source}gems/gtop-0.3.0.gem`, { headers: { Range: 'bytes=0-99' } });
    expect(res.status).toBe(206);
    expect(res.headers.get('etag')).toBe(`"sha256:${g.sha256}"`);
    expect(res.headers.get('content-range')).toBe(`bytes 0-99/${g.size}`);
    expect((await res.arrayBuffer()).byteLength).toBe(100);
    res = await fetch(`${source}gems/gtop-0.3.0.gem`, { headers: { 'If-None-Match': `"sha256:${g.sha256}"` } });
    expect(res.status).toBe(304);
    // the compact index: MD5 ETag, 304 on it, a range of it
    res = await fetch(`${source}versions`);
    const etag = res.headers.get('etag')!;
    const body = Buffer.from(await res.arrayBuffer());
    expect(etag).toBe(`"${createHash('md5').update(body).digest('hex')}"`);
    expect((await fetch(`${source}versions`, { headers: { 'If-None-Match': etag } })).status).toBe(304);
    res = await fetch(`${source}versions`, { headers: { Range: `bytes=${body.length - 5}-` } });
    expect(res.status).toBe(206);
    expect(Buffer.from(await res.arrayBuffer())).toEqual(body.subarray(body.length - 5));
    for (const [path, status, code] of [
      ['/gems/3.6.2/gems/nosuchgem-1.0.gem', 404, 'ENOTFOUND'],
      ['/gems/3.6.2/info/nosuchgem', 404, 'ENOTFOUND'],
      ['/gems/9.9.9/', 404, 'ENOTFOUND'],
      ['/gems/3.6.2/info/..%2f..%2fetc%2fpasswd', 400, 'EPATH'],
    ] as const) {
      res = await fetch(`${base}${path}`);
      expect(res.status, path).toBe(status);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe(code);
    }
  });
});
