/**
 * Rewrites one key of a YAML config file atomically: parse (keeping
 * comments and the other keys), set, write a temp file beside it, fsync,
 * rename over. A reader sees the old file or the new one, never half.
 */
import { existsSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { writeFileAtomic } from './atomic.js';
import { parseDocument } from 'yaml';
import { AirlockError } from '../manifests/errors.js';

export async function setConfigKey(file: string, key: string, value: string): Promise<void> {
  const text = existsSync(file) ? await readFile(file, 'utf8') : '';
  const doc = parseDocument(text);
  if (doc.errors.length > 0) {
    throw new AirlockError('EUSAGE', `config ${file}: invalid YAML, cannot set "${key}": ${doc.errors[0]!.message.split('\n')[0]}`, { file });
  }
  if (doc.contents === null) doc.contents = doc.createNode({}) as unknown as typeof doc.contents;
  doc.set(key, value);
  const mode = existsSync(file) ? (await stat(file)).mode & 0o777 : 0o644;
  await writeFileAtomic(file, String(doc), { mode });
}
