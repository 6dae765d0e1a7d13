// The open database: where each call runs, transactions, raw SQL, and the
// operations that belong to no queue or stream.
import * as os from 'node:os';
import { HonkerError, mapped, rethrow, sync, fix } from './errors.js';
import { dumps, loads } from './json.js';
import { Listener } from './listener.js';
import { Lock, lockInfo, type LockInfo } from './lock.js';
import { native, type NativeDatabase, type NativeTx } from './native.js';
import { objects, options, sqlParams, type Row, type TxOption } from './options.js';
import { jobInfo, Queue, queueSummary, type JobFilter, type JobInfo, type QueueOptions, type QueueSummary } from './queue.js';
import { Scheduler } from './scheduler.js';
import { Stream, streamSummary, type StreamSummary } from './stream.js';
import { inTransaction, Transaction, txOf } from './transaction.js';
import { Worker, type Task, type WorkerOptions } from './worker.js';

export interface OpenOptions {
  /** How long a write waits for other processes' writers before failing with code `busy` (default 10 s). */
  busyTimeoutS?: number;
  /**
   * WAL size in pages past which a commit checkpoints (default 1000; past
   * four times that a commit waits briefly for readers so the WAL can start
   * over, and an idle file's WAL is truncated; 0: no automatic checkpoints).
   */
  walAutocheckpoint?: number;
  /**
   * Let the file's own triggers and views call honker's SQL functions
   * (default false: a database file is input; turn it on only for a schema
   * you wrote).
   */
  trustedSchema?: boolean;
}

/** One SQLite file holding your tables and honker's. */
export class Database {
  readonly path: string;
  /** @internal */
  readonly _n: NativeDatabase;
  /**
   * Settles when the open transaction ends; null when none is open.
   * @internal
   */
  _gate: Promise<void> | null = null;
  /**
   * The tasks registered on this database, by name.
   * @internal
   */
  readonly _tasks: Map<string, Task> = new Map();

  constructor(path: string, opts?: OpenOptions) {
    const o = options('open options', opts, ['busyTimeoutS', 'walAutocheckpoint', 'trustedSchema']);
    this.path = path;
    this._n = sync(() => new native.NativeDatabase(path, o));
  }

  /**
   * The open transaction whose callback this call comes from, if any.
   * @internal
   */
  _own(): NativeTx | null {
    const current = inTransaction.getStore();
    return current !== undefined && current.db === this && current.open ? current.tx : null;
  }

  /**
   * Runs a native async call. While a transaction is open, a call that is
   * not part of it waits here for it to end (not on a pool thread, which
   * keeps the libuv pool free for the transaction's own calls); one from
   * inside the transaction's callback is made as that transaction's owner,
   * and the core refuses it (`transaction_open`).
   * @internal
   */
  _async<T>(call: () => Promise<T>, tx?: NativeTx | null): Promise<T> {
    const gate = this._gate;
    if (gate === null || tx) return settle(call);
    const own = this._own();
    if (own) return settle(() => native.runAs(own, call));
    return gate.then(() => this._async(call, tx));
  }

  /**
   * Runs a native call on this thread (the core refuses it while a
   * transaction it would wait for is open: it would block the event loop).
   * @internal
   */
  _sync<T>(call: () => T): T {
    const own = this._own();
    return sync(own ? () => native.runAs(own, call) : call);
  }

  queue(name: string, opts?: QueueOptions): Queue {
    return new Queue(this, name, opts);
  }

  stream(name: string): Stream {
    return new Stream(this, name);
  }

  /**
   * Runs `fn` in a write transaction: commits when it resolves, rolls back
   * when it throws. Pass `{ tx }` to honker calls inside it. Other calls on
   * this database wait until it ends (a `...Sync` call made meanwhile
   * without `tx` fails with code `transaction_open` rather than block the
   * event loop, and so does a call without `tx` from inside the callback,
   * which would otherwise wait for the transaction waiting for it).
   */
  async transaction<T>(fn: (tx: Transaction) => Promise<T> | T): Promise<T> {
    // From inside this database's own transaction, begin is made as its
    // owner, and the core refuses it.
    const own = this._own();
    if (own) await settle(() => native.runAs(own, () => this._n.begin()));
    while (this._gate !== null) await this._gate;
    let open: () => void = () => {};
    this._gate = new Promise<void>((resolve) => {
      open = resolve;
    });
    try {
      const nativeTx = await mapped(this._n.begin());
      const tx = new Transaction(this, nativeTx);
      const context = { db: this, tx: nativeTx, open: true };
      let result: T;
      try {
        result = await inTransaction.run(context, () => fn(tx));
      } catch (e) {
        context.open = false;
        await mapped(this._n.rollback(nativeTx)).catch(() => {});
        throw e;
      }
      context.open = false;
      await mapped(this._n.commit(nativeTx));
      return result;
    } finally {
      this._gate = null;
      open();
    }
  }

  /** Runs one statement outside any transaction; resolves to rows changed. */
  async execute(sql: string, params: unknown[] = []): Promise<number> {
    const p = sqlParams(params);
    return this._async(() => this._n.execute(false, sql, p, null));
  }

  executeSync(sql: string, params: unknown[] = []): number {
    const p = sqlParams(params);
    return this._sync(() => this._n.execute(true, sql, p, null));
  }

  /** Runs a query; resolves to its rows as objects. */
  async query(sql: string, params: unknown[] = []): Promise<Row[]> {
    const p = sqlParams(params);
    return objects(await this._async(() => this._n.query(false, sql, p, null)));
  }

  querySync(sql: string, params: unknown[] = []): Row[] {
    const p = sqlParams(params);
    return objects(this._sync(() => this._n.query(true, sql, p, null)));
  }

  /** Sends a notification to listeners of `channel` (on commit of `tx` when given). */
  async notify(channel: string, payload: unknown, opts?: TxOption): Promise<number> {
    const json = dumps(payload);
    const tx = txOf(options('notify options', opts, ['tx']));
    return this._async(() => this._n.notify(false, channel, json, tx), tx);
  }

  notifySync(channel: string, payload: unknown, opts?: TxOption): number {
    const json = dumps(payload);
    const tx = txOf(options('notify options', opts, ['tx']));
    return this._sync(() => this._n.notify(true, channel, json, tx));
  }

  /** Listens on `channel` from now on (see `Listener`). */
  listen<T = any>(channel: string, opts?: { signal?: AbortSignal }): Listener<T> {
    return new Listener<T>(this, channel, opts);
  }

  /** Takes the advisory lock if nobody (`owner` included) holds it; resolves to the lock or null. */
  async tryLock(name: string, owner: string, ttlS = 60): Promise<Lock | null> {
    const token = await this._async(() => this._n.tryLock(false, name, owner, ttlS));
    return token == null ? null : new Lock(this, name, owner, token, ttlS);
  }

  tryLockSync(name: string, owner: string, ttlS = 60): Lock | null {
    const token = this._sync(() => this._n.tryLock(true, name, owner, ttlS));
    return token == null ? null : new Lock(this, name, owner, token, ttlS);
  }

  /**
   * Runs `fn(lock)` while holding the advisory lock `name`, kept alive for
   * as long as it runs, and releases it after. Rejects with code
   * `lock_held` if someone else holds it, and with code `lock_lost` after
   * `fn` if the lock was lost while it ran (another owner may have run at
   * the same time); otherwise resolves to what `fn` returned.
   */
  async withLock<T>(name: string, fn: (lock: Lock) => Promise<T> | T, opts?: { owner?: string; ttlS?: number }): Promise<T> {
    const o = options('withLock options', opts, ['owner', 'ttlS']);
    if (typeof fn !== 'function') throw new HonkerError('invalid argument `fn`: must be a function', 'invalid_argument');
    const owner = o.owner ?? `${os.hostname()}:${process.pid}`;
    const lock = await this.tryLock(name, owner, o.ttlS ?? 60);
    if (lock === null) throw new HonkerError(`lock ${JSON.stringify(name)} is held by someone else`, 'lock_held');
    let result: T;
    try {
      result = await fn(lock);
    } catch (e) {
      await lock.release().catch(() => false);
      throw e;
    }
    const lost = lock.lost;
    const released = await lock.release();
    if (lost || !released) {
      throw new HonkerError(
        `lock ${JSON.stringify(name)} was lost while the callback ran (fencing token ${lock.fencingToken} no longer held it): another owner may have run at the same time`,
        'lock_lost',
      );
    }
    return result;
  }

  /** Who holds lock `name` now, or null if nobody does (an expired lock is free). */
  async lockHolder(name: string): Promise<LockInfo | null> {
    return lockInfo(await this._async(() => this._n.lockHolder(false, name)));
  }

  lockHolderSync(name: string): LockInfo | null {
    return lockInfo(this._sync(() => this._n.lockHolder(true, name)));
  }

  /**
   * Every queue the file knows (with jobs, live or dead, or controls), by
   * name, with its job counts and controls: what an operator looks at.
   */
  async queues(): Promise<QueueSummary[]> {
    return (await this._async(() => this._n.queues(false))).map(queueSummary);
  }

  queuesSync(): QueueSummary[] {
    return this._sync(() => this._n.queues(true)).map(queueSummary);
  }

  /**
   * Every stream the file knows (with events, saved offsets or retention),
   * by name, with its last offset and each consumer's saved offset
   * (`lastOffset - offset` is that consumer's lag).
   */
  async streams(): Promise<StreamSummary[]> {
    return (await this._async(() => this._n.streams(false))).map(streamSummary);
  }

  streamsSync(): StreamSummary[] {
    return this._sync(() => this._n.streams(true)).map(streamSummary);
  }

  /**
   * The jobs matching every filter given (`state` one of 'ready',
   * 'scheduled', 'processing', 'dead'; `task` the task name of an envelope;
   * creation time from inclusive, to exclusive, in ms since the epoch),
   * live and dead, newest first. Page with `beforeId` set to the last id of
   * the previous page.
   */
  async jobs(filter: JobFilter = {}): Promise<JobInfo[]> {
    return (await this._async(() => this._n.listJobs(false, filter))).map(jobInfo);
  }

  jobsSync(filter: JobFilter = {}): JobInfo[] {
    return this._sync(() => this._n.listJobs(true, filter)).map(jobInfo);
  }

  /** True for the first `limit` calls in each fixed window of `perS` seconds. */
  async tryRateLimit(key: string, limit: number, perS: number): Promise<boolean> {
    return this._async(() => this._n.tryRateLimit(false, key, limit, perS));
  }

  tryRateLimitSync(key: string, limit: number, perS: number): boolean {
    return this._sync(() => this._n.tryRateLimit(true, key, limit, perS));
  }

  /** Saves a job's result (JSON) for `ttlS` seconds. */
  async saveResult(jobId: number, value: unknown, ttlS: number): Promise<void> {
    const json = dumps(value, 'value');
    return this._async(() => this._n.saveResult(false, jobId, json, ttlS));
  }

  saveResultSync(jobId: number, value: unknown, ttlS: number): void {
    const json = dumps(value, 'value');
    this._sync(() => this._n.saveResult(true, jobId, json, ttlS));
  }

  /** The saved result, or undefined when there is none. */
  async getResult<T = any>(jobId: number): Promise<T | undefined> {
    const text = await this._async(() => this._n.getResult(false, jobId));
    return text == null ? undefined : loads(text);
  }

  getResultSync<T = any>(jobId: number): T | undefined {
    const text = this._sync(() => this._n.getResult(true, jobId));
    return text == null ? undefined : loads(text);
  }

  /**
   * Removes every expired result now; resolves to how many (saving a result
   * also removes a few).
   */
  async sweepResults(): Promise<number> {
    return this._async(() => this._n.sweepResults());
  }

  /** The tasks registered on this database (`queue.task(...)`), by name. */
  get tasks(): ReadonlyMap<string, Task> {
    return new Map(this._tasks);
  }

  /** @internal */
  _registerTask(task: Task): void {
    const old = this._tasks.get(task.name);
    if (old !== undefined && old.handler !== task.handler) {
      throw new HonkerError(
        `invalid argument \`name\`: task ${JSON.stringify(task.name)} is already registered (on queue ${JSON.stringify(old.queue.name)}); give one of them another name`,
        'invalid_argument',
      );
    }
    this._tasks.set(task.name, task);
  }

  /**
   * A worker for the tasks registered on this database, over
   * `opts.queues` (default: every queue with a task): `await
   * worker.run()` until `opts.signal` aborts, or `await worker.drain()`.
   */
  worker(opts?: WorkerOptions): Worker {
    return new Worker(this, opts);
  }

  scheduler(): Scheduler {
    return new Scheduler(this);
  }

  /** True once `close()` was called. */
  get isClosed(): boolean {
    return this._n.isClosed();
  }

  /** Closes the file. Waiting iterators end; later calls fail with code `closed`. */
  close(): void {
    sync(() => this._n.close());
  }
}

/** A native call's Promise, a throw or rejection as a `HonkerError`. */
function settle<T>(call: () => Promise<T>): Promise<T> {
  let p: Promise<T>;
  try {
    p = call();
  } catch (e) {
    return Promise.reject(fix(e));
  }
  return p.then(undefined, rethrow);
}

/** Opens (creating if needed) the database at `path`: WAL mode, honker's tables. */
export function open(path: string, opts?: OpenOptions): Database {
  return new Database(path, opts);
}
