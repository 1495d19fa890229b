import { describe, expect, it } from 'vitest';
import { decodeEnvelope, pae, parseEnvelope, signEnvelope } from '../../manifests/dsse.js';
import { verifyBytes } from '../../manifests/keys.js';
import { expectCode, keys } from './fixtures.js';

describe('PAE', () => {
  it('is "DSSEv1 SP len(type) SP type SP len(payload) SP payload" with byte lengths', () => {
    expect(pae('t', Buffer.from('hello')).toString()).toBe('DSSEv1 1 t 5 hello');
    expect(pae('application/x', Buffer.from('é')).toString('latin1')).toBe('DSSEv1 13 application/x 2 \u00c3\u00a9');
    expect(pae('', Buffer.alloc(0)).toString()).toBe('DSSEv1 0  0 ');
  });
});

describe('envelopes', () => {
  const payload = Buffer.from('{"a":1}');
  const env = signEnvelope('application/x', payload, [keys[0]!.privateKey, keys[1]!.privateKey]);

  it('signs PAE with each key and names each keyid', () => {
    const d = parseEnvelope(env);
    expect(d.payload.equals(payload)).toBe(true);
    expect(d.sigs.map((s) => s.keyid)).toEqual([keys[0]!.keyid, keys[1]!.keyid]);
    expect(verifyBytes(keys[0]!.publicKey, pae('application/x', payload), d.sigs[0]!.sig)).toBe(true);
    expect(decodeEnvelope(env).envelope.payloadType).toBe('application/x');
  });

  const raw = (o: unknown): Buffer => Buffer.from(JSON.stringify(o));
  const ok = { payloadType: 't', payload: 'e30=', signatures: [{ sig: 'AAAA' }] };

  it('accepts a signature without keyid', () => {
    expect(parseEnvelope(raw(ok)).sigs[0]!.keyid).toBeUndefined();
  });

  it.each([
    ['not an object', [], /object/],
    ['unknown field', { ...ok, extra: 1 }, /unknown field "extra"/],
    ['missing payloadType', { payload: 'e30=', signatures: [] }, /payloadType/],
    ['payload not a string', { ...ok, payload: 1 }, /payload/],
    ['payload bad base64', { ...ok, payload: 'e30' }, /base64/],
    ['payload base64url', { ...ok, payload: 'e-_=' }, /base64/],
    ['signatures not an array', { ...ok, signatures: {} }, /array/],
    ['signature unknown field', { ...ok, signatures: [{ sig: 'AAAA', alg: 'x' }] }, /unknown field "alg"/],
    ['signature sig missing', { ...ok, signatures: [{ keyid: 'x' }] }, /sig/],
    ['signature keyid not a string', { ...ok, signatures: [{ sig: 'AAAA', keyid: 1 }] }, /keyid/],
    ['signature bad base64', { ...ok, signatures: [{ sig: 'A A=' }] }, /base64/],
  ])('refuses %s', (_n, doc, message) => {
    expectCode(() => parseEnvelope(raw(doc)), 'EMANIFEST', message);
  });

  it('refuses over the size cap before parsing', () => {
    expectCode(() => parseEnvelope(Buffer.from('x'.repeat(101)), 'envelope', 100), 'EMANIFEST', /over the cap/);
  });
});

describe('big payloads', () => {
  it('reads an 8 MiB payload without overflowing the stack', () => {
    const payload = Buffer.alloc(8 * 1024 * 1024, 0x61);
    const env = signEnvelope('application/x', payload, [keys[0]!.privateKey]);
    expect(parseEnvelope(env).payload.length).toBe(payload.length);
  });
});
