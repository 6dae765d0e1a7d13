// Transactions: the handle a `db.transaction()` callback gets, and which
// callback a call comes from.
import { AsyncLocalStorage } from 'node:async_hooks';
import { HonkerError, sync } from './errors.js';
import type { NativeTx } from './native.js';
import { objects, sqlParams, type Row } from './options.js';
import type { Database } from './database.js';

/**
 * The transaction whose callback is running (in this async context): a call
 * from inside it that forgot `{ tx }` is made acting for the transaction's
 * owner, so the core refuses it (`transaction_open`) instead of letting it
 * wait for the transaction that is waiting for it.
 * @internal
 */
export const inTransaction = new AsyncLocalStorage<{ db: Database; tx: NativeTx; open: boolean }>();

/**
 * A write transaction, handed to the callback of `db.transaction()`. Its
 * own SQL runs synchronously (the write lock is already held); pass
 * `{ tx }` to honker calls to make them part of it.
 */
export class Transaction {
  readonly db: Database;
  /** @internal */
  readonly _native: NativeTx;

  /** @internal */
  constructor(db: Database, nativeTx: NativeTx) {
    this.db = db;
    this._native = nativeTx;
  }

  /** Runs one statement; returns the number of rows changed. */
  execute(sql: string, params: unknown[] = []): number {
    return sync(() => this.db._n.execute(true, sql, sqlParams(params), this._native));
  }

  /** Runs a query; returns its rows as objects. */
  query(sql: string, params: unknown[] = []): Row[] {
    return sync(() => objects(this.db._n.query(true, sql, sqlParams(params), this._native)));
  }
}

/**
 * The native transaction of `opts.tx`, or null.
 * @internal
 */
export function txOf(opts: { tx?: Transaction | null } | undefined | null): NativeTx | null {
  const tx = opts?.tx;
  if (tx == null) return null;
  if (!(tx instanceof Transaction)) throw new HonkerError('`tx` must be a Transaction from db.transaction()', 'invalid_argument');
  return tx._native;
}
