/**
 * DSSE envelopes (docs/manifest.md "The envelope (DSSE)"): the signatures
 * cover PAE(payloadType, payload bytes), so nothing is parsed before it is
 * verified. This file builds and reads envelopes; deciding whether enough of
 * the right keys signed lives in threshold.ts.
 */
import type { KeyObject } from 'node:crypto';
import { AirlockError } from './errors.js';
import { parseStrictJson } from './json.js';
import { keyIdOf, signBytes } from './keys.js';
import type { Envelope, EnvelopeSignature } from './types.js';

/** "DSSEv1" SP len(type) SP type SP len(payload) SP payload, lengths in ASCII decimal (byte lengths). */
export function pae(payloadType: string, payload: Uint8Array): Buffer {
  return Buffer.concat([paeHeader(payloadType, payload.length), payload]);
}

/** PAE up to the payload bytes. */
function paeHeader(payloadType: string, payloadLength: number): Buffer {
  const type = Buffer.from(payloadType, 'utf8');
  return Buffer.concat([Buffer.from(`DSSEv1 ${type.length} `, 'ascii'), type, Buffer.from(` ${payloadLength} `, 'ascii')]);
}

// A plain character class, not a repeated group: a group backtracks
// recursively and overflows the stack on a multi-megabyte payload.
const BASE64_CHARS = /^[A-Za-z0-9+/]*={0,2}$/;

/** Standard padded base64 with one spelling per byte string (Node's decoder would skip junk silently). */
export function decodeBase64Strict(text: string, what: string): Buffer {
  return decodeBase64After(EMPTY, text, what);
}

const EMPTY = Buffer.alloc(0);
/** characters per decode call: a multiple of 4 */
const BASE64_CHUNK = 1 << 20;

/** Bytes that well-formed padded base64 `text` decodes to. */
const base64Size = (text: string): number =>
  Math.floor(text.length / 4) * 3 - (text.endsWith('==') ? 2 : text.endsWith('=') ? 1 : 0);

/**
 * `prefix` followed by the strictly decoded bytes of `text`, in one buffer.
 * The payload is decoded straight behind its PAE header, so the signed
 * message needs no second multi-megabyte copy.
 */
function decodeBase64After(prefix: Buffer, text: string, what: string): Buffer {
  const bad = (): never => {
    throw new AirlockError('EMANIFEST', `${what} is not valid base64`, { field: what });
  };
  if (text.length % 4 !== 0 || !BASE64_CHARS.test(text)) return bad();
  const size = base64Size(text);
  const out = Buffer.allocUnsafe(prefix.length + size);
  prefix.copy(out, 0);
  // In chunks of whole 4-character groups (so the bytes are the same): Node copies a
  // string before decoding it, and one 40 MiB copy costs far more than 40 reused 1 MiB ones.
  let at = prefix.length;
  for (let k = 0; k < text.length; k += BASE64_CHUNK) at += out.write(text.slice(k, k + BASE64_CHUNK), at, 'base64');
  if (at !== out.length) return bad();
  // With the alphabet checked, only the last group can have a second spelling (padding bits
  // set): re-encode just that group rather than the whole (maybe 40 MiB) payload.
  const tail = prefix.length + Math.max(0, (text.length / 4 - 1) * 3);
  if (out.subarray(tail).toString('base64') !== text.slice(((tail - prefix.length) / 3) * 4)) return bad();
  return out;
}

export interface DecodedEnvelope {
  envelope: Envelope;
  /** the payload bytes (base64-decoded) */
  payload: Buffer;
  /** PAE(payloadType, payload): what the signatures cover; `payload` is its tail */
  message: Buffer;
  /** each signature's bytes, in envelope order */
  sigs: Array<{ keyid?: string; sig: Buffer }>;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Reads an envelope's JSON strictly: exactly the fields payloadType,
 * payload, signatures (each { keyid?, sig }); strict base64. Verifies nothing.
 * `maxBytes` is the size cap for this kind of document.
 */
export function parseEnvelope(bytes: Uint8Array, what = 'envelope', maxBytes?: number): DecodedEnvelope {
  if (maxBytes !== undefined && bytes.length > maxBytes) {
    throw new AirlockError('EMANIFEST', `${what} is ${bytes.length} bytes, over the cap of ${maxBytes}`, {
      size: bytes.length,
      limit: maxBytes,
    });
  }
  const doc = parseStrictJson(bytes, what);
  if (!isObject(doc)) throw new AirlockError('EMANIFEST', `${what}: expected a JSON object`);
  for (const k of Object.keys(doc)) {
    if (k !== 'payloadType' && k !== 'payload' && k !== 'signatures') {
      throw new AirlockError('EMANIFEST', `${what}: unknown field "${k}" (expected payloadType, payload, signatures)`, { field: k });
    }
  }
  const { payloadType, payload, signatures } = doc;
  if (typeof payloadType !== 'string' || payloadType === '') {
    throw new AirlockError('EMANIFEST', `${what}: "payloadType" must be a non-empty string`, { field: 'payloadType' });
  }
  if (typeof payload !== 'string') {
    throw new AirlockError('EMANIFEST', `${what}: "payload" must be a base64 string`, { field: 'payload' });
  }
  if (!Array.isArray(signatures)) {
    throw new AirlockError('EMANIFEST', `${what}: "signatures" must be an array`, { field: 'signatures' });
  }
  const header = paeHeader(payloadType, base64Size(payload));
  const message = decodeBase64After(header, payload, `${what}: "payload"`);
  const payloadBytes = message.subarray(header.length);
  const sigs: DecodedEnvelope['sigs'] = [];
  const envSigs: EnvelopeSignature[] = [];
  signatures.forEach((s, i) => {
    const where = `${what}: signatures[${i}]`;
    if (!isObject(s)) throw new AirlockError('EMANIFEST', `${where} must be an object { keyid, sig }`);
    for (const k of Object.keys(s)) {
      if (k !== 'keyid' && k !== 'sig') throw new AirlockError('EMANIFEST', `${where}: unknown field "${k}"`, { field: k });
    }
    if (typeof s.sig !== 'string') throw new AirlockError('EMANIFEST', `${where}: "sig" must be a base64 string`);
    if (s.keyid !== undefined && typeof s.keyid !== 'string') {
      throw new AirlockError('EMANIFEST', `${where}: "keyid" must be a string`);
    }
    const sig = decodeBase64Strict(s.sig, `${where}.sig`);
    sigs.push(s.keyid === undefined ? { sig } : { keyid: s.keyid, sig });
    envSigs.push(s.keyid === undefined ? { sig: s.sig } : { keyid: s.keyid, sig: s.sig });
  });
  return { envelope: { payloadType, payload, signatures: envSigs }, payload: payloadBytes, message, sigs };
}

/** Signs payload bytes (already canonical) with each key; the result is the envelope's JSON bytes. */
export function signEnvelope(payloadType: string, payload: Uint8Array, keys: KeyObject[]): Buffer {
  if (keys.length === 0) throw new AirlockError('EUSAGE', 'no signing key given');
  const message = pae(payloadType, payload);
  const envelope: Envelope = {
    payloadType,
    payload: Buffer.from(payload).toString('base64'),
    signatures: keys.map((k) => ({ keyid: keyIdOf(k), sig: signBytes(k, message).toString('base64') })),
  };
  return Buffer.from(`${JSON.stringify(envelope, null, 2)}\n`, 'utf8');
}

/** Decodes an envelope WITHOUT verifying (for display and index rebuild of already-verified bytes). */
export function decodeEnvelope(bytes: Uint8Array): { envelope: Envelope; payload: Buffer } {
  const { envelope, payload } = parseEnvelope(bytes);
  return { envelope, payload };
}
