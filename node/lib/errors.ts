import { native } from './native.js';

/**
 * The codes of honker-core's error enum (`Error::CODES` in Rust). The test
 * suite checks this list against the addon's, so they cannot drift.
 */
export const ERROR_CODES = Object.freeze([
  'invalid_argument',
  'invalid_json',
  'invalid_cron',
  'invalid_timezone',
  'not_found',
  'transaction_open',
  'transaction_inactive',
  'closed',
  'forked',
  'schema_too_new',
  'busy',
  'decode',
  'watcher',
  'cannot_open',
  'lock_held',
  'lock_lost',
  'job_failed',
  'internal',
  'sqlite',
  'postgres',
] as const);

/** The codes `HonkerError.code` can take (one per honker-core error). */
export type ErrorCode = (typeof ERROR_CODES)[number];

/** Every honker error: an `Error` with a stable `.code` (see `ERROR_CODES`). */
export class HonkerError extends Error {
  readonly code: ErrorCode;

  constructor(message: string, code: ErrorCode) {
    super(message);
    this.name = 'HonkerError';
    this.code = code;
  }
}

const CODES: ReadonlySet<string> = new Set(ERROR_CODES);

// napi-rs's own argument-conversion failures (a string where a number belongs).
const NAPI_ARG: ReadonlySet<string> = new Set([
  'InvalidArg', 'ObjectExpected', 'StringExpected', 'NameExpected', 'FunctionExpected',
  'NumberExpected', 'BooleanExpected', 'ArrayExpected', 'BigintExpected',
]);

/**
 * An error from the addon as a `HonkerError`. The addon sets `.code` to the
 * core's code when it makes the error; napi's own argument errors carry
 * napi's status, which means a bad argument.
 * @internal
 */
export function fix(e: unknown): unknown {
  if (e instanceof HonkerError || !(e instanceof Error)) return e;
  const code = (e as { code?: unknown }).code;
  if (typeof code !== 'string') return e;
  if (CODES.has(code)) return new HonkerError(e.message, code as ErrorCode);
  if (NAPI_ARG.has(code)) return new HonkerError(e.message, 'invalid_argument');
  return e;
}

/**
 * Runs a native call on this thread, its error as a `HonkerError`.
 * @internal
 */
export function sync<T>(call: () => T): T {
  try {
    return call();
  } catch (e) {
    throw fix(e);
  }
}

/** @internal */
export function rethrow(e: unknown): never {
  throw fix(e);
}

/**
 * A native Promise, its rejection as a `HonkerError`.
 * @internal
 */
export function mapped<T>(p: Promise<T>): Promise<T> {
  return p.then(undefined, rethrow);
}

/**
 * The codes the addon knows (from honker-core); the test suite checks
 * `ERROR_CODES` against it.
 * @internal
 */
export function nativeErrorCodes(): string[] {
  return native.errorCodes();
}
