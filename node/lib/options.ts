// Checking what callers pass: option objects, arrays, SQL parameters.
import { HonkerError } from './errors.js';
import type { Transaction } from './transaction.js';

export interface TxOption {
  /** Run the call inside this transaction. */
  tx?: Transaction;
}

export interface WaitOptions {
  /** Aborting it ends the iteration promptly. */
  signal?: AbortSignal;
  /** End the iteration when nothing arrives within this many seconds. */
  timeoutS?: number;
  /** @deprecated use `timeoutS` */
  timeout?: number;
}

/** A row of a query, by column name. */
export type Row = Record<string, unknown>;

/**
 * Checks an options object against the names it may hold: a misspelt or
 * unknown option is an error, never a silently ignored default. Returns it
 * (an empty object for null/undefined).
 * @internal
 */
export function options<T extends object>(what: string, opts: T | null | undefined, known: readonly string[]): Partial<T> {
  if (opts == null) return {};
  if (typeof opts !== 'object' || Array.isArray(opts)) {
    throw new HonkerError(`invalid argument \`${what}\`: must be an object { ${known.join(', ')} }`, 'invalid_argument');
  }
  for (const k in opts) {
    if (!known.includes(k)) {
      throw new HonkerError(
        `invalid argument \`${what}\`: unknown option ${JSON.stringify(k)} (expected ${known.join(', ')})`,
        'invalid_argument',
      );
    }
  }
  return opts;
}

const warned = new Set<string>();

/**
 * A duration option renamed to carry its unit (`delay` became `delayS`): the
 * old name still works for one release, with a DeprecationWarning (once
 * per name). The rule: durations are seconds, and their names end in `S`.
 * @internal
 */
export function renamed(what: string, opts: Record<string, any>, old: string, name: string): any {
  if (opts[old] === undefined) return opts[name];
  if (opts[name] !== undefined) {
    throw new HonkerError(`invalid argument \`${what}\`: give \`${name}\` or its deprecated name \`${old}\`, not both`, 'invalid_argument');
  }
  if (!warned.has(`${what}.${old}`)) {
    warned.add(`${what}.${old}`);
    process.emitWarning(
      `honker: the option \`${old}\` of ${what} is deprecated: use \`${name}\` (durations are seconds, named with an S suffix)`,
      'DeprecationWarning',
    );
  }
  return opts[old];
}

/**
 * Epoch milliseconds from the engine as epoch seconds (null stays null).
 * @internal
 */
export function seconds(ms: number | null | undefined): number | null {
  return ms == null ? null : ms / 1000;
}

/** @internal */
export function arrayOf<T>(what: string, value: T[]): T[] {
  if (!Array.isArray(value)) throw new HonkerError(`invalid argument \`${what}\`: must be an array`, 'invalid_argument');
  return value;
}

/**
 * SQL parameters, checked here so a bad one gets an error that names it.
 * @internal
 */
export function sqlParams(params: unknown[]): any[] {
  if (!Array.isArray(params)) {
    throw new HonkerError('invalid argument `params`: must be an array', 'invalid_argument');
  }
  for (let i = 0; i < params.length; i++) {
    const v = params[i];
    const t = typeof v;
    if (v == null || t === 'number' || t === 'boolean' || t === 'string' || t === 'bigint' || Buffer.isBuffer(v)) continue;
    const what = Array.isArray(v) ? 'an array' : v instanceof Date ? 'a Date' : t === 'object' ? 'an object' : `a ${t}`;
    throw new HonkerError(
      `invalid argument \`params\`: parameter ${i + 1} is ${what} (expected null, a number, boolean, string, bigint or Buffer)`,
      'invalid_argument',
    );
  }
  return params;
}

/**
 * A query's columns and rows as row objects.
 * @internal
 */
export function objects(r: { columns: string[]; rows: unknown[][] }): Row[] {
  const { columns, rows } = r;
  const out: Row[] = new Array(rows.length);
  for (let i = 0; i < rows.length; i++) {
    const row = rows[i];
    const o: Row = {};
    for (let j = 0; j < columns.length; j++) o[columns[j]] = row[j];
    out[i] = o;
  }
  return out;
}
