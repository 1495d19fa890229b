import { describe, expect, it } from 'vitest';
import { validateReleaseManifest, validateRootPayload } from '../../manifests/schema.js';
import { expectCode, HEX, keys, manifest, rootPayload } from './fixtures.js';

type M = ReturnType<typeof manifest> & { artifacts: Array<Record<string, unknown>> };
const m = (): M => manifest() as M;
const withArtifact = (i: number, edit: (a: Record<string, unknown>) => void): M => {
  const v = m();
  edit(v.artifacts[i]!);
  return v;
};

describe('validateReleaseManifest', () => {
  it('accepts an example of every kind (docs/manifest.md)', () => {
    expect(validateReleaseManifest(m()).artifacts).toHaveLength(4);
  });

  it('accepts an image without mediaType and a file without install', () => {
    validateReleaseManifest(withArtifact(3, (a) => delete a.mediaType));
    validateReleaseManifest(withArtifact(0, (a) => delete a.install));
  });

  it('names artifact index, path, field, expected and found', () => {
    const err = expectCode(() => validateReleaseManifest(withArtifact(1, (a) => (a.size = '12'))), 'EMANIFEST');
    expect(err.message).toBe(
      'artifacts[1] (path "debs/hello_2.10-3_amd64.deb"): field "size": expected an integer from 0 to 1099511627776, found string "12"',
    );
  });

  it.each<[string, M, RegExp]>([
    ['top-level unknown field', { ...m(), extra: 1 }, /manifest: unknown field "extra"/],
    ['wrong type', { ...m(), type: 'airlock-root' }, /field "type": expected "airlock-release"/],
    ['wrong spec', { ...m(), spec: 2 }, /field "spec": expected 1/],
    ['bad product', { ...m(), product: '../x' }, /field "product"/],
    ['serial negative', { ...m(), serial: -1 }, /field "serial"/],
    ['issued not RFC 3339', { ...m(), issued: '2026-11-20' }, /field "issued"/],
    ['expires impossible date', { ...m(), expires: '2027-02-30T00:00:00Z' }, /field "expires"/],
    ['expires before issued', { ...m(), expires: '2026-01-01T00:00:00Z' }, /after "issued"/],
    ['artifacts not an array', { ...m(), artifacts: {} } as unknown as M, /field "artifacts"/],
    ['artifact not an object', { ...m(), artifacts: [1] } as unknown as M, /artifacts\[0\]: expected an object/],
    ['unknown kind', withArtifact(0, (a) => (a.kind = 'rpm')), /field "kind": expected one of/],
    ['sha256 upper case', withArtifact(0, (a) => (a.sha256 = HEX('A'))), /field "sha256"/],
    ['size too large', withArtifact(0, (a) => (a.size = 2 ** 40 + 1)), /field "size"/],
    ['ftp url', withArtifact(0, (a) => (a.urls = ['ftp://x/y'])), /field "urls\[0\]": expected an absolute http/],
    ['no urls', withArtifact(0, (a) => (a.urls = [])), /field "urls"/],
    ['install with both', withArtifact(0, (a) => (a.install = { extract: '/a', copy: '/b' })), /only one/],
    ['install relative', withArtifact(0, (a) => (a.install = { copy: 'b' })), /absolute path/],
    ['install mode', withArtifact(0, (a) => (a.install = { copy: '/b', mode: 'rwx' })), /octal/],
    ['roles not strings', withArtifact(0, (a) => (a.roles = [1])), /roles\[0\]/],
    ['deb without arch', withArtifact(1, (a) => delete a.arch), /field "arch"/],
    ['gem without gem', withArtifact(2, (a) => delete a.gem), /field "gem"/],
    ['image without blobs', withArtifact(3, (a) => delete a.blobs), /field "blobs"/],
    ['image with urls', withArtifact(3, (a) => (a.urls = ['https://x/y'])), /unknown field "urls"/],
    ['image blob with extra', withArtifact(3, (a) => (a.blobs = [{ sha256: HEX('e'), size: 1, x: 1 }])), /blobs\[0\]: unknown field "x"/],
    ['deb with gem field', withArtifact(1, (a) => (a.gem = 'x')), /unknown field "gem"/],
    ['one digest two sizes', withArtifact(3, (a) => (a.blobs = [{ sha256: HEX('a'), size: 1 }])), /has size 1 but artifacts\[0\]/],
  ])('refuses %s', (_n, value, message) => {
    expectCode(() => validateReleaseManifest(value), 'EMANIFEST', message);
  });

  it('refuses unsafe or repeated paths with EPATH', () => {
    expectCode(() => validateReleaseManifest(withArtifact(2, (a) => (a.path = '../x'))), 'EPATH', /artifacts\[2\]/);
    expectCode(() => validateReleaseManifest(withArtifact(2, (a) => (a.path = 'debs/hello_2.10-3_amd64.deb'))), 'EPATH', /repeats/);
    expectCode(() => validateReleaseManifest(withArtifact(0, (a) => (a.install = { extract: '/s/../../etc' }))), 'EPATH');
  });
});

describe('validateRootPayload', () => {
  const good = (): Record<string, unknown> & ReturnType<typeof rootPayload> =>
    <Record<string, unknown> & ReturnType<typeof rootPayload>>rootPayload({ root: [keys[0]!], release: [keys[1]!, keys[2]!], releaseThreshold: 2 });

  it('accepts a well-formed root', () => {
    expect(validateRootPayload(good()).roles.release.threshold).toBe(2);
  });

  it.each<[string, (r: ReturnType<typeof good>) => void, RegExp]>([
    ['wrong type', (r) => ((r as Record<string, unknown>).type = 'airlock-release'), /type/],
    ['version 0', (r) => (r.version = 0), /version/],
    ['unknown role', (r) => ((r.roles as Record<string, unknown>).mirror = { keyids: [], threshold: 1 }), /unknown field "mirror"/],
    ['role key not listed', (r) => (r.roles.release.keyids = [HEX('9')]), /listed under "keys"/],
    ['threshold above distinct keys', (r) => (r.roles.release.threshold = 3), /at most 2/],
    ['threshold 0', (r) => (r.roles.root.threshold = 0), /threshold/],
    ['keytype', (r) => ((r.keys[keys[0]!.keyid] as unknown as Record<string, unknown>).keytype = 'rsa'), /keytype/],
    ['short public key', (r) => (r.keys[keys[0]!.keyid]!.public = 'AAAA'), /public/],
    ['bad key id', (r) => (r.keys.NOTHEX = r.keys[keys[0]!.keyid]!), /key id/],
    ['duplicate key id in a role', (r) => (r.roles.root.keyids = [keys[0]!.keyid, keys[0]!.keyid]), /each key id once/],
  ])('refuses %s', (_n, edit, message) => {
    const r = good();
    edit(r);
    expectCode(() => validateRootPayload(r), 'EMANIFEST', message);
  });
});
