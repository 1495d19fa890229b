/**
 * Hostile manifests and roots: each case is something an attacker (or a
 * careless publisher) could hand us, and the exact code it must meet.
 */
import { describe, expect, it } from 'vitest';
import { ROOT_PAYLOAD_TYPE, RELEASE_PAYLOAD_TYPE, LIMITS, type ErrorCode } from '../../manifests/index.js';
import { verifyRelease, type VerifyReleaseOptions } from '../../manifests/verify.js';
import { loadTrustedRoot, updateTrustedRoot } from '../../manifests/root.js';
import { signEnvelope } from '../../manifests/dsse.js';
import { sha256Hex } from '../../manifests/digest.js';
import {
  canon,
  defaultRoot,
  editEnvelope,
  envelopeOf,
  expectCode,
  HEX,
  keys,
  makeRoot,
  manifest,
  NOW,
  rootPayload,
  signed,
  signRoot,
} from './fixtures.js';

const [k0, k1, k2, k3, k4, k5] = keys as Array<(typeof keys)[number]> as [
  (typeof keys)[number],
  (typeof keys)[number],
  (typeof keys)[number],
  (typeof keys)[number],
  (typeof keys)[number],
  (typeof keys)[number],
];
const root = defaultRoot();
const root2 = defaultRoot(2);
/** release threshold 2, with k1 listed under its own id AND under an alias id */
const aliasRoot = (() => {
  const p = rootPayload({ root: [k0], release: [k1, k2], releaseThreshold: 2 });
  const alias = HEX('7');
  p.keys[alias] = p.keys[k1.keyid]!;
  p.roles.release.keyids = [alias, k1.keyid, k2.keyid];
  return makeRoot(p, [k0]);
})();

const opts = (o: Partial<VerifyReleaseOptions> = {}): VerifyReleaseOptions => ({ root, now: NOW, ...o });
const verify = (bytes: Uint8Array, o: Partial<VerifyReleaseOptions> = {}) => () => verifyRelease(bytes, opts(o));

type Arts = Array<Record<string, unknown>>;
const withArtifact = (i: number, edit: (a: Record<string, unknown>) => void): Buffer => {
  const m = manifest();
  edit((m.artifacts as Arts)[i]!);
  return signed(m);
};
const raw = (text: string): Buffer => envelopeOf(Buffer.from(text, 'utf8'));
const goodText = canon(manifest()).toString('utf8');
const flip = (b64: string): string => {
  const bytes = Buffer.from(b64, 'base64');
  bytes[10] = bytes[10]! ^ 1;
  return bytes.toString('base64');
};

/** Canonical (JSON.stringify escapes lone surrogates) and signed: only the strict parse can refuse it. */
function twoSurrogatePaths(): Buffer {
  const m = manifest();
  (m.artifacts as Arts)[0]!.path = 'components/router\ud800.tgz';
  (m.artifacts as Arts)[1]!.path = 'components/router\udc00.tgz';
  return signed(m);
}

const rootV1 = loadTrustedRoot(signRoot(rootPayload({ root: [k0, k3], rootThreshold: 2, release: [k1] }), [k0, k3]), NOW);
const v2 = rootPayload({ version: 2, root: [k4, k5], rootThreshold: 2, release: [k1] });

const CASES: Array<[string, () => unknown, ErrorCode]> = [
  // ── signatures ────────────────────────────────────────────────────────
  ['forged signature (bit flipped)', verify(editEnvelope(signed(), (e) => (e.signatures[0]!.sig = flip(e.signatures[0]!.sig as string)))), 'ESIGNATURE'],
  ['random 64-byte signature', verify(editEnvelope(signed(), (e) => (e.signatures[0]!.sig = Buffer.alloc(64, 7).toString('base64')))), 'ESIGNATURE'],
  ['short signature', verify(editEnvelope(signed(), (e) => (e.signatures[0]!.sig = 'AAAA'))), 'ESIGNATURE'],
  ['payload changed after signing', verify(editEnvelope(signed(), (e) => (e.payload = canon(manifest({ serial: 18 })).toString('base64')))), 'ESIGNATURE'],
  ['payloadType changed after signing', verify(editEnvelope(envelopeOf(canon(manifest()), [k1.privateKey], 'application/x'), (e) => (e.payloadType = RELEASE_PAYLOAD_TYPE))), 'ESIGNATURE'],
  ['re-signed by an untrusted key', verify(signed(manifest(), [k5])), 'ESIGNATURE'],
  ['signed by the root key, not a release key', verify(signed(manifest(), [k0])), 'ESIGNATURE'],
  ['threshold 2 met twice by one key under two key ids', verify(editEnvelope(signed(manifest(), [k1, k1]), (e) => (e.signatures[0]!.keyid = HEX('7'))), { root: aliasRoot }), 'ESIGNATURE'],
  ['threshold 2: the same signature duplicated', verify(editEnvelope(signed(), (e) => e.signatures.push({ ...e.signatures[0]! })), { root: root2 }), 'ESIGNATURE'],
  ['threshold 2: one good signature plus an untrusted one', verify(signed(manifest(), [k1, k5]), { root: root2 }), 'ESIGNATURE'],
  ['threshold 2: keyid hints name both release keys, one key signed', verify(editEnvelope(signed(manifest(), [k1, k1]), (e) => (e.signatures[1]!.keyid = k2.keyid)), { root: root2 }), 'ESIGNATURE'],
  ['untrusted signature with a keyid hint of a trusted key', verify(editEnvelope(signed(manifest(), [k5]), (e) => (e.signatures[0]!.keyid = k1.keyid))), 'ESIGNATURE'],
  ['no signatures', verify(editEnvelope(signed(), (e) => (e.signatures = []))), 'ESIGNATURE'],
  // ── envelope shape ───────────────────────────────────────────────────
  ['bad base64 in sig', verify(editEnvelope(signed(), (e) => (e.signatures[0]!.sig = '!!notbase64'))), 'EMANIFEST'],
  ['bad base64 in payload', verify(editEnvelope(signed(), (e) => (e.payload = `${e.payload}*`))), 'EMANIFEST'],
  ['wrong payloadType (signed as a root)', verify(envelopeOf(canon(manifest()), [k1.privateKey], ROOT_PAYLOAD_TYPE)), 'EMANIFEST'],
  ['envelope with an unknown field', verify(editEnvelope(signed(), (e) => ((e as Record<string, unknown>).extra = 1))), 'EMANIFEST'],
  ['envelope with duplicate keys', verify(Buffer.from(signed().toString().replace('"payloadType"', '"payloadType": "x", "payloadType"'))), 'EMANIFEST'],
  ['envelope not JSON', verify(Buffer.from('\x00\x01garbage')), 'EMANIFEST'],
  ['oversize envelope', verify(Buffer.alloc(LIMITS.envelopeBytes + 1, 0x20)), 'EMANIFEST'],
  // ── payload bytes (signed, so only the strict parse can catch them) ──
  ['duplicate key at top level', verify(raw(goodText.replace('{"artifacts"', '{"serial":1,"artifacts"'))), 'EMANIFEST'],
  ['duplicate key nested in an artifact', verify(raw(goodText.replace('"kind":"file"', '"kind":"file","kind":"file"'))), 'EMANIFEST'],
  ['float serial', verify(raw(goodText.replace('"serial":17', '"serial":17.5'))), 'EMANIFEST'],
  ['exponent number', verify(raw(goodText.replace('"serial":17', '"serial":1e1'))), 'EMANIFEST'],
  ['serial beyond 2^53', verify(raw(goodText.replace('"serial":17', '"serial":9007199254740993'))), 'EMANIFEST'],
  ['payload with whitespace (not canonical)', verify(raw(JSON.stringify(JSON.parse(goodText), null, 1))), 'EMANIFEST'],
  ['payload with keys out of order (not canonical)', verify(raw(JSON.stringify({ type: 'airlock-release', ...JSON.parse(goodText) }))), 'EMANIFEST'],
  ['payload not UTF-8', verify(envelopeOf(Buffer.concat([canon(manifest()).subarray(0, 20), Buffer.from([0xff]), canon(manifest()).subarray(20)]))), 'EMANIFEST'],
  ['payload is a JSON array', verify(raw('[]')), 'EMANIFEST'],
  ['two paths distinct only by a lone surrogate (one name on disk)', verify(twoSurrogatePaths()), 'EMANIFEST'],
  // ── schema ───────────────────────────────────────────────────────────
  ['serial as a string', verify(signed(manifest({ serial: '17' }))), 'EMANIFEST'],
  ['size as a string', verify(withArtifact(0, (a) => (a.size = '1234'))), 'EMANIFEST'],
  ['negative size', verify(withArtifact(1, (a) => (a.size = -1))), 'EMANIFEST'],
  ['sha256 too short', verify(withArtifact(2, (a) => (a.sha256 = 'abc'))), 'EMANIFEST'],
  ['sha256 upper case', verify(withArtifact(2, (a) => (a.sha256 = HEX('C')))), 'EMANIFEST'],
  ['urls not an array', verify(withArtifact(0, (a) => (a.urls = 'https://x/y'))), 'EMANIFEST'],
  ['url with file: scheme', verify(withArtifact(0, (a) => (a.urls = ['file:///etc/passwd']))), 'EMANIFEST'],
  ['unknown type', verify(signed(manifest({ type: 'airlock-release2' }))), 'EMANIFEST'],
  ['unknown spec', verify(signed(manifest({ spec: 2 }))), 'EMANIFEST'],
  ['unknown top-level field', verify(signed(manifest({ note: 'hi' }))), 'EMANIFEST'],
  ['unknown artifact field', verify(withArtifact(0, (a) => (a.exec = 'rm -rf /'))), 'EMANIFEST'],
  ['unknown kind', verify(withArtifact(0, (a) => (a.kind = 'script'))), 'EMANIFEST'],
  ['file without urls', verify(withArtifact(0, (a) => delete a.urls)), 'EMANIFEST'],
  ['deb without package', verify(withArtifact(1, (a) => delete a.package)), 'EMANIFEST'],
  ['deb without version', verify(withArtifact(1, (a) => delete a.version)), 'EMANIFEST'],
  ['gem without version', verify(withArtifact(2, (a) => delete a.version)), 'EMANIFEST'],
  ['oci-image without image', verify(withArtifact(3, (a) => delete a.image)), 'EMANIFEST'],
  ['oci-image without blobs', verify(withArtifact(3, (a) => delete a.blobs)), 'EMANIFEST'],
  ['oci-image blob with a bad digest', verify(withArtifact(3, (a) => (a.blobs = [{ sha256: 'sha256:abc', size: 1 }]))), 'EMANIFEST'],
  ['missing expires', verify(signed(manifest({ expires: undefined }))), 'EMANIFEST'],
  ['wrong product', verify(signed(), { product: 'other' }), 'EMANIFEST'],
  // ── paths ────────────────────────────────────────────────────────────
  ['path with ..', verify(withArtifact(0, (a) => (a.path = 'components/../../etc/passwd'))), 'EPATH'],
  ['path with leading /', verify(withArtifact(0, (a) => (a.path = '/etc/passwd'))), 'EPATH'],
  ['path with an empty segment', verify(withArtifact(0, (a) => (a.path = 'components//router.tgz'))), 'EPATH'],
  ['path with a . segment', verify(withArtifact(0, (a) => (a.path = './router.tgz'))), 'EPATH'],
  ['path with a backslash', verify(withArtifact(0, (a) => (a.path = 'components\\..\\router.tgz'))), 'EPATH'],
  ['path with NUL', verify(withArtifact(0, (a) => (a.path = 'router.tgz\u0000.png'))), 'EPATH'],
  ['duplicate path', verify(withArtifact(1, (a) => (a.path = 'components/router.tgz'))), 'EPATH'],
  ['install target climbing out of the root', verify(withArtifact(0, (a) => (a.install = { copy: '/s/../../../etc/shadow' }))), 'EPATH'],
  // ── rollback and expiry ──────────────────────────────────────────────
  ['rollback: lower serial', verify(signed(), { accepted: { stackato: { product: 'stackato', serial: 18, digest: HEX('0') } } }), 'EROLLBACK'],
  ['equal serial with another digest (equivocation)', verify(signed(), { accepted: { stackato: { product: 'stackato', serial: 17, digest: HEX('0') } } }), 'EROLLBACK'],
  ['expired', verify(signed(), { now: new Date('2027-03-01T00:00:01Z') }), 'EEXPIRED'],
  ['expired, extension date in the past', verify(signed(), { now: new Date('2027-04-01T00:00:00Z'), acceptExpiredUntil: new Date('2027-03-15T00:00:00Z') }), 'EEXPIRED'],
  ['expired and extended, but a rollback too (extension skips nothing)', verify(signed(), { now: new Date('2027-04-01T00:00:00Z'), acceptExpiredUntil: new Date('2027-05-01T00:00:00Z'), accepted: { stackato: { product: 'stackato', serial: 20, digest: HEX('0') } } }), 'EROLLBACK'],
  ['expired and extended, but forged (extension skips nothing)', verify(signed(manifest(), [k5]), { now: new Date('2027-04-01T00:00:00Z'), acceptExpiredUntil: new Date('2027-05-01T00:00:00Z') }), 'ESIGNATURE'],
  // ── roots ────────────────────────────────────────────────────────────
  ['root: expired', () => loadTrustedRoot(signRoot(rootPayload({ root: [k0], release: [k1], expires: '2027-01-01T00:00:00Z' }), [k0]), NOW), 'EEXPIRED'],
  ['root: not signed by its own threshold (1 of 2)', () => loadTrustedRoot(signRoot(rootPayload({ root: [k0, k3], rootThreshold: 2, release: [k1] }), [k0]), NOW), 'ESIGNATURE'],
  ['root: threshold 2 met by one key twice', () => loadTrustedRoot(signRoot(rootPayload({ root: [k0, k3], rootThreshold: 2, release: [k1] }), [k0, k0]), NOW), 'ESIGNATURE'],
  ['root: signed only by a release key', () => loadTrustedRoot(signRoot(rootPayload({ root: [k0], release: [k1] }), [k1]), NOW), 'ESIGNATURE'],
  ['root: wrong payloadType', () => loadTrustedRoot(signEnvelope(RELEASE_PAYLOAD_TYPE, canon(rootPayload({ root: [k0], release: [k1] })), [k0.privateKey]), NOW), 'EMANIFEST'],
  ['root: non-canonical payload', () => loadTrustedRoot(signEnvelope(ROOT_PAYLOAD_TYPE, Buffer.from(JSON.stringify(rootPayload({ root: [k0], release: [k1] }), null, 2)), [k0.privateKey]), NOW), 'EMANIFEST'],
  ['root: oversize', () => loadTrustedRoot(Buffer.alloc(LIMITS.rootBytes + 1, 0x20), NOW), 'EMANIFEST'],
  ['root: threshold above its keys', () => loadTrustedRoot(signRoot({ ...rootPayload({ root: [k0], release: [k1] }), roles: { root: { keyids: [k0.keyid], threshold: 2 }, release: { keyids: [k1.keyid], threshold: 1 } } }, [k0]), NOW), 'EMANIFEST'],
  ['rotation skipping a version', () => updateTrustedRoot(rootV1, [signRoot({ ...v2, version: 3 }, [k0, k3, k4, k5])], NOW), 'ESIGNATURE'],
  ['rotation signed only by the new keys', () => updateTrustedRoot(rootV1, [signRoot(v2, [k4, k5])], NOW), 'ESIGNATURE'],
  ['rotation signed only by the old keys', () => updateTrustedRoot(rootV1, [signRoot(v2, [k0, k3])], NOW), 'ESIGNATURE'],
  ['rotation signed by one old key and both new keys', () => updateTrustedRoot(rootV1, [signRoot(v2, [k0, k4, k5])], NOW), 'ESIGNATURE'],
  ['rotation to an expired root', () => updateTrustedRoot(rootV1, [signRoot({ ...v2, expires: '2027-01-01T00:00:00Z' }, [k0, k3, k4, k5])], NOW), 'EEXPIRED'],
  ['rotation payload changed after signing', () => updateTrustedRoot(rootV1, [editEnvelope(signRoot(v2, [k0, k3, k4, k5]), (e) => (e.payload = canon({ ...v2, roles: { ...v2.roles, release: { keyids: [k5.keyid], threshold: 1 } } }).toString('base64')))], NOW), 'ESIGNATURE'],
];

describe('hostile manifests and roots', () => {
  it('has at least 40 cases', () => {
    expect(CASES.length).toBeGreaterThanOrEqual(40);
  });

  it.each(CASES.map(([name, fn, code]) => [name, code, fn] as const))('%s → %s', (_name, code, fn) => {
    expectCode(fn, code);
  });

  it('equivocation says so', () => {
    expectCode(verify(signed(), { accepted: { stackato: { product: 'stackato', serial: 17, digest: HEX('0') } } }), 'EROLLBACK', /equivocation/);
  });

  it('expired but extended passes with expiredAccepted and every other check done', () => {
    const v = verifyRelease(signed(), opts({ now: new Date('2027-04-01T00:00:00Z'), acceptExpiredUntil: new Date('2027-05-01T00:00:00Z') }));
    expect(v.expiredAccepted).toBe(true);
    expect(v.checks.at(-1)).toMatch(/EXPIRED at 2027-03-01T00:00:00Z, accepted until 2027-05-01/);
    expect(v.checks).toHaveLength(7);
  });

  it('a keyid hint only picks the key tried: a wrong one never makes a signature count, a missing one tries the role keys', () => {
    // the hint names another release key: only that key is tried, so the signature does not count
    expectCode(verify(editEnvelope(signed(), (e) => (e.signatures[0]!.keyid = k2.keyid))), 'ESIGNATURE', /0 of the required 1/);
    // the hint names no release key: skipped without a check
    expectCode(verify(editEnvelope(signed(), (e) => (e.signatures[0]!.keyid = HEX('7')))), 'ESIGNATURE', /naming no key of this role\); refused without checking/);
    const noHint = editEnvelope(signed(), (e) => delete e.signatures[0]!.keyid);
    expect(verifyRelease(noHint, opts()).signers).toEqual([k1.keyid]);
  });

  it('a proper rotation (both thresholds) is followed, and its release keys then rule', () => {
    const v2root = updateTrustedRoot(rootV1, [signRoot(v2, [k0, k3, k4, k5])], NOW);
    expect(v2root.version).toBe(2);
    expect(sha256Hex(v2root.bytes)).toBeTruthy();
  });
});
