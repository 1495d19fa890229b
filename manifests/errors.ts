/**
 * One error family for all of airlock. Every failure a user can cause or
 * meet is an AirlockError with a code from docs/cli.md "Error codes" and the facts behind it
 * (expected/found, path, url…). The code decides the process exit status and
 * the HTTP status, each in exactly one place: the two tables below.
 */

export const ERROR_CODES = [
  'ESIGNATURE', // signature or threshold not met, untrusted key
  'EEXPIRED', // manifest or trust root past its expiry
  'EROLLBACK', // serial lower than accepted, or equal serial with another digest
  'EINTEGRITY', // digest or size mismatch
  'EPATH', // unsafe path (traversal, absolute, links out of a root)
  'EMANIFEST', // malformed envelope, payload or root: size cap, duplicate keys, schema
  'ENOSPACE', // not enough free disk
  'EMEMORY', // not enough free memory
  'ELOCKED', // another writer holds the cache lock
  'EUPSTREAM', // upstream or cache unreachable / bad answer (resumable)
  'ENOTFOUND', // release, blob, file, key… does not exist
  'EUSAGE', // bad flags, arguments or config
  'EINTERNAL', // a bug: never expected
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

/** Exit status per code (docs/cli.md: 0 ok, 1 failure, 2 usage, 3 verification, 4 preflight, 5 network). */
export const EXIT_STATUS: Readonly<Record<ErrorCode, number>> = Object.freeze({
  ESIGNATURE: 3,
  EEXPIRED: 3,
  EROLLBACK: 3,
  EINTEGRITY: 3,
  EPATH: 3,
  EMANIFEST: 3,
  ENOSPACE: 4,
  EMEMORY: 4,
  ELOCKED: 1,
  EUPSTREAM: 5,
  ENOTFOUND: 1,
  EUSAGE: 2,
  EINTERNAL: 1,
});

/** HTTP status per code, for `airlock serve`. */
export const HTTP_STATUS: Readonly<Record<ErrorCode, number>> = Object.freeze({
  ESIGNATURE: 422,
  EEXPIRED: 422,
  EROLLBACK: 409,
  EINTEGRITY: 502,
  EPATH: 400,
  EMANIFEST: 422,
  ENOSPACE: 507,
  EMEMORY: 503,
  ELOCKED: 409,
  EUPSTREAM: 502,
  ENOTFOUND: 404,
  EUSAGE: 400,
  EINTERNAL: 500,
});

export type ErrorDetails = Readonly<Record<string, unknown>>;

export class AirlockError extends Error {
  readonly code: ErrorCode;
  readonly details: ErrorDetails;

  constructor(code: ErrorCode, message: string, details: ErrorDetails = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AirlockError';
    this.code = code;
    this.details = details;
  }

  get exitStatus(): number {
    return EXIT_STATUS[this.code];
  }

  get httpStatus(): number {
    return HTTP_STATUS[this.code];
  }

  toJSON(): { code: ErrorCode; message: string; details: ErrorDetails } {
    return { code: this.code, message: this.message, details: this.details };
  }
}

export function isAirlockError(e: unknown, code?: ErrorCode): e is AirlockError {
  return e instanceof AirlockError && (code === undefined || e.code === code);
}

/** Wraps anything thrown into an AirlockError; unknown failures become EINTERNAL. */
export function toAirlockError(e: unknown): AirlockError {
  if (e instanceof AirlockError) return e;
  const err = e instanceof Error ? e : new Error(String(e));
  const sys = (err as NodeJS.ErrnoException).code;
  if (sys === 'ENOSPC') return new AirlockError('ENOSPACE', `no space left on device: ${err.message}`, {}, { cause: err });
  if (sys === 'ELOCKED') return new AirlockError('ELOCKED', err.message, {}, { cause: err });
  return new AirlockError('EINTERNAL', err.message, { stack: err.stack }, { cause: err });
}
