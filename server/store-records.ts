/**
 * How a command's store checks the release records it reads from a bucket
 * (openStore's `records`): against the config's trust root when it names
 * one, a warning line per record skipped. Only with blobs in S3; on the
 * filesystem there are no shared records and the trust file is not read.
 */
import { readTrustFile } from '../common/trust-file.js';
import type { RecordsOptions } from '../storage/store.js';
import type { AirlockConfig } from './config.js';

export function recordsOptions(
  config: Pick<AirlockConfig, 'storage' | 'trust'>,
  warn: (line: string, details: Record<string, unknown>) => void,
): RecordsOptions | undefined {
  if (config.storage?.backend !== 's3') return undefined;
  return { trustRoot: config.trust ? readTrustFile(config.trust) : null, warn };
}
