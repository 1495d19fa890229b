/**
 * Shared config-file plumbing for both programs: read one YAML file, check
 * every key against a small typed schema, and give a one-line EUSAGE error
 * naming the key when something is wrong. Each program declares its own
 * schema (server/config.ts, client/config.ts) and merges flags on top.
 */
import { existsSync, readFileSync } from 'node:fs';
import { isAbsolute, resolve, dirname } from 'node:path';
import { parseDocument } from 'yaml';
import { AirlockError } from '../manifests/errors.js';

export type FieldType = 'string' | 'path' | 'int' | 'size' | 'duration' | 'bool' | 'string[]' | 'map';

export interface FieldSpec {
  type: FieldType;
  /** inclusive bounds for ints (and durations, in seconds) */
  min?: number;
  max?: number;
  /** allowed string values */
  oneOf?: readonly string[];
  /** a string that may be "" (e.g. an S3 key prefix) */
  allowEmpty?: boolean;
  /** keys of a `map` value that are themselves strings/paths (checked one level deep) */
  fields?: Record<string, FieldSpec>;
}

export type Schema = Record<string, FieldSpec>;

export interface LoadedFile {
  /** absolute path of the file read, or null when none was */
  path: string | null;
  values: Record<string, unknown>;
}

/**
 * Reads `explicit` (must exist) or else `fallback` when it exists. Relative
 * `path` values are resolved against the file's folder.
 */
export function loadConfigFile(explicit: string | undefined, fallback: string | null, schema: Schema): LoadedFile {
  const file = explicit ?? (fallback && existsSync(fallback) ? fallback : null);
  if (!file) return { path: null, values: {} };
  const abs = resolve(file);
  let text: string;
  try {
    text = readFileSync(abs, 'utf8');
  } catch (e) {
    throw new AirlockError('EUSAGE', `config ${file}: cannot read: ${(e as Error).message}`, { file });
  }
  const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: false });
  if (doc.errors.length > 0) {
    const err = doc.errors[0]!;
    throw new AirlockError('EUSAGE', `config ${file}: invalid YAML: ${err.message.split('\n')[0]}`, { file });
  }
  const raw: unknown = doc.toJS() ?? {};
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new AirlockError('EUSAGE', `config ${file}: expected a mapping of keys at the top level`, { file });
  }
  const values = checkFields(raw as Record<string, unknown>, schema, file, dirname(abs), '');
  return { path: abs, values };
}

function checkFields(
  raw: Record<string, unknown>,
  schema: Schema,
  file: string,
  base: string,
  prefix: string,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(raw)) {
    const name = prefix + key;
    const spec = schema[key];
    if (!spec) {
      const known = Object.keys(schema).sort().join(', ');
      throw new AirlockError('EUSAGE', `config ${file}: unknown key "${name}" (known: ${known})`, { file, key: name });
    }
    if (value === null || value === undefined) continue;
    out[key] = checkValue(value, spec, file, base, name);
  }
  return out;
}

export function checkValue(value: unknown, spec: FieldSpec, file: string, base: string, name: string): unknown {
  const bad = (expected: string): never => {
    throw new AirlockError('EUSAGE', `config ${file}: key "${name}" must be ${expected}, got ${JSON.stringify(value)}`, {
      file,
      key: name,
    });
  };
  switch (spec.type) {
    case 'string':
    case 'path': {
      if (typeof value !== 'string' || (value === '' && !spec.allowEmpty)) bad('a non-empty string');
      const s = value as string;
      if (spec.oneOf && !spec.oneOf.includes(s)) bad(`one of ${spec.oneOf.join(', ')}`);
      if (spec.type === 'path') return URL_LIKE.test(s) ? bad('a local path, not a URL') : localPath(base, s, name);
      return s;
    }
    case 'int': {
      if (typeof value !== 'number' || !Number.isInteger(value)) bad('an integer');
      const n = value as number;
      if (spec.min !== undefined && n < spec.min) bad(`at least ${spec.min}`);
      if (spec.max !== undefined && n > spec.max) bad(`at most ${spec.max}`);
      return n;
    }
    case 'size':
      // a byte count, or a size with a unit: 512M, 4G, 1.5GiB
      if (typeof value === 'number' && Number.isInteger(value) && value >= 0) return value;
      if (typeof value !== 'string') bad('a size such as 512M, 4G or a number of bytes');
      try {
        return parseSize(value as string, name);
      } catch {
        return bad('a size such as 512M, 4G or a number of bytes');
      }
    case 'duration': {
      // seconds, or a number with a unit: 90s, 15m, 1h, 7d
      const ms = typeof value === 'number' && Number.isInteger(value) ? value * 1000 : typeof value === 'string' ? durationMs(value) : null;
      const n = ms !== null && ms % 1000 === 0 ? ms / 1000 : null;
      if (n === null) return bad('a duration such as 15m, 1h, 90s or a number of seconds');
      if (spec.min !== undefined && n < spec.min) bad(`at least ${spec.min} s`);
      if (spec.max !== undefined && n > spec.max) bad(`at most ${spec.max} s`);
      return n;
    }
    case 'bool':
      if (typeof value !== 'boolean') bad('true or false');
      return value;
    case 'string[]':
      if (!Array.isArray(value) || value.some((v) => typeof v !== 'string' || v === '')) bad('a list of strings');
      return value;
    case 'map':
      if (typeof value !== 'object' || Array.isArray(value)) bad('a mapping');
      return spec.fields ? checkFields(value as Record<string, unknown>, spec.fields, file, base, `${name}.`) : value;
  }
}

/** Parses a size such as `512M`, `1G`, `1048576`, `4GiB` into bytes. */
export function parseSize(text: string, what: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?\s*$/i.exec(text);
  if (!m) throw new AirlockError('EUSAGE', `${what}: cannot read "${text}" as a size (examples: 512M, 4G, 1048576)`);
  const mult = { '': 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 }[m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g' | 't'];
  return Math.round(Number(m[1]) * mult);
}

/** `90` (seconds), `90s`, `15m`, `1.5h`, `7d`, `2w`, `500ms` → milliseconds; null when it is not one. */
export function durationMs(text: string): number | null {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$/i.exec(text);
  if (!m) return null;
  const unit = (m[2] ?? 's').toLowerCase() as 'ms' | 's' | 'm' | 'h' | 'd' | 'w';
  return Math.round(Number(m[1]) * { ms: 1, s: 1e3, m: 60e3, h: 3600e3, d: 86400e3, w: 604800e3 }[unit]);
}

/** A duration for a flag or a key (`what` names it), in milliseconds; EUSAGE when it is not one. */
export function parseDuration(text: string, what: string): number {
  const ms = durationMs(text);
  if (ms === null) throw new AirlockError('EUSAGE', `${what}: cannot read "${text}" as a duration (examples: 90s, 30m, 24h, 7d)`);
  return ms;
}

/** Parses `2027-03-01` or a full RFC 3339 time; EUSAGE otherwise. */
export function parseDate(text: string, what: string): Date {
  const d = new Date(/^\d{4}-\d{2}-\d{2}$/.test(text) ? `${text}T23:59:59Z` : text);
  if (Number.isNaN(d.getTime())) throw new AirlockError('EUSAGE', `${what}: cannot read "${text}" as a date (example: 2027-03-01)`);
  return d;
}

const URL_LIKE = /^[a-z][a-z0-9+.-]*:\/\//i;

/**
 * A local file or folder: relative to `base`, and never a URL. Paths here
 * name the cache, keys and the trust root, which must not come from whoever
 * answers a URL.
 */
export function localPath(base: string, value: string, name: string): string {
  if (URL_LIKE.test(value)) {
    throw new AirlockError('EUSAGE', `${name}: "${value}" must be a local file got out of band, not a URL`, { key: name });
  }
  return isAbsolute(value) ? value : resolve(base, value);
}
