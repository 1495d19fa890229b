/**
 * Rewrites keys of a YAML config file atomically: parse (keeping comments
 * and the other keys), set them all, write a temp file beside it, fsync,
 * rename over. A reader sees the old file or the new one, never half: a
 * change that spans several keys (relocate's `storage:` section and
 * `cache_dir`) is one rename, so no reader ever sees one key without the
 * other.
 */
import { existsSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { writeFileAtomic } from './atomic.js';
import { parseDocument } from 'yaml';
import { AirlockError } from '../manifests/errors.js';

/** A value a config key can be given: a scalar, or a map of them (written as a YAML block). */
export type ConfigValue = string | number | boolean | null | { [key: string]: ConfigValue };

/** Sets each top-level key to its value (a map replaces the whole section) in one atomic write. */
export async function setConfigKeys(file: string, values: Record<string, ConfigValue>): Promise<void> {
  const keys = Object.keys(values);
  const text = existsSync(file) ? await readFile(file, 'utf8') : '';
  const doc = parseDocument(text);
  if (doc.errors.length > 0) {
    throw new AirlockError('EUSAGE', `config ${file}: invalid YAML, cannot set "${keys.join('", "')}": ${doc.errors[0]!.message.split('\n')[0]}`, { file });
  }
  if (doc.contents === null) doc.contents = doc.createNode({}) as unknown as typeof doc.contents;
  for (const key of keys) {
    const value = values[key]!;
    doc.set(key, value !== null && typeof value === 'object' ? doc.createNode(value) : value);
  }
  const mode = existsSync(file) ? (await stat(file)).mode & 0o777 : 0o644;
  await writeFileAtomic(file, String(doc), { mode });
}

export async function setConfigKey(file: string, key: string, value: string): Promise<void> {
  await setConfigKeys(file, { [key]: value });
}
