// @ts-check
'use strict';
/**
 * honker: durable queues, streams, pub/sub and cron on SQLite. One file,
 * zero servers.
 *
 * A thin layer over the native addon (the shared Rust engine): it encodes
 * payloads as JSON, takes options as objects, and provides transactions
 * and async iterators. Plain names return Promises and run off the main
 * thread; `...Sync` twins run on the calling thread. Every rule lives in
 * the engine.
 */

const { AsyncLocalStorage } = require('node:async_hooks');
const native = require('./native.js');

/**
 * The transaction whose callback is running (in this async context), so a
 * call from inside it that forgot `{ tx }` fails instead of waiting for the
 * transaction that is waiting for it.
 * @type {AsyncLocalStorage<{ db: Database, open: boolean }>}
 */
const inTransaction = new AsyncLocalStorage();

/** @typedef {import('./native').NativeDatabase} NativeDatabase */
/** @typedef {import('./native').NativeTx} NativeTx */
/** @typedef {import('./native').JobData} JobData */

/**
 * The codes of honker-core's error enum.
 * @typedef {'invalid_argument' | 'invalid_json' | 'invalid_cron' | 'invalid_timezone' | 'not_found'
 *   | 'transaction_open' | 'transaction_inactive' | 'closed' | 'forked' | 'schema_too_new' | 'busy'
 *   | 'decode' | 'watcher' | 'cannot_open' | 'lock_held' | 'lock_lost' | 'internal' | 'sqlite'} ErrorCode
 */

/** Every honker error: an `Error` with a stable `.code` (see `ERROR_CODES`). */
class HonkerError extends Error {
  /**
   * @param {string} message
   * @param {ErrorCode} code
   */
  constructor(message, code) {
    super(message);
    this.name = 'HonkerError';
    /** @readonly @type {ErrorCode} */
    this.code = code;
  }
}

/** The codes `HonkerError.code` can take (one per honker-core error). */
const ERROR_CODES = Object.freeze(/** @type {ErrorCode[]} */ (native.errorCodes()));

const CODED = /^honker:([a-z_]+): /;
// napi-rs's own argument-conversion failures (a string where a number belongs).
const NAPI_ARG = new Set(['InvalidArg', 'ObjectExpected', 'StringExpected', 'NameExpected',
  'FunctionExpected', 'NumberExpected', 'BooleanExpected', 'ArrayExpected', 'BigintExpected']);

/**
 * The native layer puts the core error code in the message; move it to `.code`.
 * @param {any} e
 * @returns {any}
 */
function fix(e) {
  if (e instanceof HonkerError || !(e instanceof Error)) return e;
  const m = CODED.exec(e.message);
  if (m) return new HonkerError(e.message.slice(m[0].length), /** @type {ErrorCode} */ (m[1]));
  const code = /** @type {any} */ (e).code;
  if (typeof code === 'string' && NAPI_ARG.has(code)) return new HonkerError(e.message, 'invalid_argument');
  return e;
}

/**
 * Runs a native call on this thread; its error gets its `.code`.
 * @template T
 * @param {() => T} call
 * @returns {T}
 */
function sync(call) {
  try {
    return call();
  } catch (e) {
    throw fix(e);
  }
}

/**
 * @param {any} e
 * @returns {never}
 */
function rethrow(e) {
  throw fix(e);
}

/**
 * @template T
 * @param {Promise<T>} p
 * @returns {Promise<T>}
 */
function mapped(p) {
  return p.then(undefined, rethrow);
}

/**
 * @param {unknown} value
 * @param {string} [what]
 * @returns {string}
 */
function dumps(value, what = 'payload') {
  let text;
  try {
    text = JSON.stringify(value === undefined ? null : value);
  } catch (e) {
    throw new HonkerError(`invalid JSON in \`${what}\`: ${/** @type {Error} */ (e).message}`, 'invalid_json');
  }
  if (text === undefined) {
    throw new HonkerError(`invalid JSON in \`${what}\`: ${typeof value} is not JSON`, 'invalid_json');
  }
  return text;
}

/**
 * @param {string} text
 * @returns {any}
 */
function loads(text) {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new HonkerError(`cannot decode payload: ${/** @type {Error} */ (e).message}`, 'decode');
  }
}

/**
 * Epoch milliseconds from the engine as epoch seconds (null stays null).
 * @param {number | null | undefined} ms
 * @returns {number | null}
 */
function seconds(ms) {
  return ms == null ? null : ms / 1000;
}

/**
 * @param {{ tx?: Transaction | null } | undefined | null} opts
 * @returns {NativeTx | null}
 */
function txOf(opts) {
  const tx = opts?.tx;
  if (tx == null) return null;
  if (!(tx instanceof Transaction)) throw new HonkerError('`tx` must be a Transaction from db.transaction()', 'invalid_argument');
  return tx._native;
}

/**
 * Checks an options object against the names it may hold: a misspelt or
 * unknown option is an error, never a silently ignored default. Returns it
 * (an empty object for null/undefined).
 * @template {object} T
 * @param {string} what the argument's name, for the message
 * @param {T | null | undefined} opts
 * @param {readonly string[]} known
 * @returns {Partial<T>}
 */
function options(what, opts, known) {
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

/** @type {Set<string>} */
const warned = new Set();

/**
 * A duration option renamed to carry its unit (`delay` became `delayS`): the
 * old name still works for one release, with a DeprecationWarning (once
 * per name). The rule: durations are seconds, and their names end in `S`.
 * @param {string} what where the option is, for the messages
 * @param {Record<string, any>} opts
 * @param {string} old
 * @param {string} name
 * @returns {any} the value, under either name
 */
function renamed(what, opts, old, name) {
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

/** What enqueue options may name (`delay`, `expires`: deprecated names). */
const ENQUEUE_OPTIONS = ['tx', 'delayS', 'runAt', 'priority', 'expiresS', 'maxAttempts', 'key', 'delay', 'expires'];

/**
 * Enqueue options for the native layer (a `Date` runAt becomes Unix seconds).
 * @param {EnqueueOptions | undefined} opts
 * @param {string} [what]
 * @returns {import('./native').EnqueueOptions | null}
 */
function enqueueOpts(opts, what = 'enqueue options') {
  if (opts == null) return null;
  const o = options(what, opts, ENQUEUE_OPTIONS);
  return {
    delayS: renamed(what, o, 'delay', 'delayS'),
    runAt: o.runAt instanceof Date ? o.runAt.getTime() / 1000 : o.runAt,
    priority: o.priority,
    maxAttempts: o.maxAttempts,
    expiresS: renamed(what, o, 'expires', 'expiresS'),
    key: o.key,
  };
}

/**
 * @typedef {object} EnqueueOptions
 * @property {Transaction} [tx] enqueue inside this transaction
 * @property {number} [delayS] seconds before the job may run
 * @property {Date | number} [runAt] when it may run (a Date, or Unix seconds)
 * @property {number} [priority] higher runs first (default 0)
 * @property {number} [expiresS] seconds after it is due within which a worker must start it, else it is dead-lettered
 * @property {number} [maxAttempts] overrides the queue's
 * @property {string} [key] an idempotency key: a second live job with it is not added
 * @property {number} [delay] deprecated name of `delayS`
 * @property {number} [expires] deprecated name of `expiresS`
 */

/**
 * @template T
 * @param {string} what
 * @param {T[]} value
 * @returns {T[]}
 */
function arrayOf(what, value) {
  if (!Array.isArray(value)) throw new HonkerError(`invalid argument \`${what}\`: must be an array`, 'invalid_argument');
  return value;
}

/**
 * The leases of claimed jobs, for `ackBatch`.
 * @param {Job[]} jobs
 * @returns {import('./native').LeaseData[]}
 */
function leasesOf(jobs) {
  return arrayOf('jobs', jobs).map((j) => {
    if (!(j instanceof Job)) {
      throw new HonkerError(
        'invalid argument `jobs`: ackBatch takes the claimed Job objects (their leases), not ids: a bare id cannot tell a lapsed claim from the current one',
        'invalid_argument',
      );
    }
    return j._lease();
  });
}

/**
 * SQL parameters, checked here so a bad one gets an error that names it.
 * @param {unknown[]} params
 * @returns {any}
 */
function sqlParams(params) {
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
 * @param {{ columns: string[], rows: unknown[][] }} r
 * @returns {Record<string, unknown>[]}
 */
function objects(r) {
  const { columns, rows } = r;
  const out = new Array(rows.length);
  for (let i = 0; i < rows.length; i++) {
    const row = rows[i];
    /** @type {Record<string, unknown>} */
    const o = {};
    for (let j = 0; j < columns.length; j++) o[columns[j]] = row[j];
    out[i] = o;
  }
  return out;
}

/**
 * Ends an iterator when its signal aborts.
 * @param {AbortSignal | undefined} signal
 * @param {() => void} onAbort
 * @returns {() => void} removes the listener
 */
function onAbort(signal, onAbort) {
  if (signal == null) return () => {};
  if (signal.aborted) {
    onAbort();
    return () => {};
  }
  signal.addEventListener('abort', onAbort, { once: true });
  return () => signal.removeEventListener('abort', onAbort);
}

/** @type {IteratorReturnResult<undefined>} */
const DONE = Object.freeze({ done: true, value: undefined });

/**
 * A write transaction, handed to the callback of `db.transaction()`. Its
 * own SQL runs synchronously (the write lock is already held); pass
 * `{ tx }` to honker calls to make them part of it.
 */
class Transaction {
  /**
   * @param {Database} db
   * @param {NativeTx} nativeTx
   */
  constructor(db, nativeTx) {
    /** @readonly */
    this.db = db;
    /** @internal */
    this._native = nativeTx;
  }

  /**
   * Runs one statement; returns the number of rows changed.
   * @param {string} sql
   * @param {unknown[]} [params]
   * @returns {number}
   */
  execute(sql, params = []) {
    return sync(() => this.db._n.execute(true, sql, sqlParams(params), this._native));
  }

  /**
   * Runs a query; returns its rows as objects.
   * @param {string} sql
   * @param {unknown[]} [params]
   * @returns {Record<string, unknown>[]}
   */
  query(sql, params = []) {
    return sync(() => objects(this.db._n.query(true, sql, sqlParams(params), this._native)));
  }
}

/**
 * A claimed job. `ack`, `retry`, `fail` and `heartbeat` resolve to false
 * (and change nothing) once the lease has expired or been taken over.
 */
class Job {
  /**
   * @param {Queue} queue
   * @param {JobData} data
   */
  constructor(queue, data) {
    /** @internal */
    this._db = queue.db;
    /** @readonly @type {number} */
    this.id = data.id;
    /** @readonly @type {string} */
    this.queue = data.queue;
    /** @readonly @type {any} */
    this.payload = loads(data.payload);
    /** @readonly @type {number} */
    this.attempts = data.attempts;
    /** @readonly @type {number} */
    this.maxAttempts = data.maxAttempts;
    /** @readonly @type {number} */
    this.priority = data.priority;
    /** @readonly @type {number} */
    this.runAtMs = data.runAtMs;
    /** @readonly @type {string | null} */
    this.key = data.key ?? null;
    /** @readonly @type {string | null} */
    this.lastError = data.lastError ?? null;
    /** @readonly @type {string} */
    this.workerId = data.workerId ?? '';
  }

  /**
   * Marks the job done (inside `tx` when given).
   * @param {{ tx?: Transaction }} [opts]
   * @returns {Promise<boolean>}
   */
  async ack(opts) {
    const tx = txOf(options('ack options', opts, ['tx']));
    return this._db._async(() => this._db._n.ack(false, this.id, this.workerId, this.attempts, tx), tx);
  }

  /**
   * @param {{ tx?: Transaction }} [opts]
   * @returns {boolean}
   */
  ackSync(opts) {
    return sync(() => this._db._n.ack(true, this.id, this.workerId, this.attempts, txOf(options('ack options', opts, ['tx']))));
  }

  /** @internal @returns {import('./native').LeaseData} */
  _lease() {
    return { id: this.id, worker: this.workerId, attempt: this.attempts };
  }

  /**
   * Gives the job back to run again after `delayS` (or the backoff), or to
   * the dead list once attempts are used up.
   * @param {{ delayS?: number, error?: string, delay?: number }} [opts] (`delay`: deprecated name of `delayS`)
   * @returns {Promise<boolean>}
   */
  async retry(opts) {
    const o = options('retry options', opts, ['delayS', 'error', 'delay']);
    const delayS = renamed('retry options', o, 'delay', 'delayS');
    return this._db._async(() =>
      this._db._n.retry(this.id, this.workerId, this.attempts, delayS, o.error ?? ''));
  }

  /**
   * Gives the job back untouched: ready again at once, in its old place, and
   * this claim's attempt is not counted (for a worker that will not start it).
   * @returns {Promise<boolean>}
   */
  async release() {
    return this._db._async(() => this._db._n.release(false, this.id, this.workerId, this.attempts));
  }

  /** @returns {boolean} */
  releaseSync() {
    return sync(() => this._db._n.release(true, this.id, this.workerId, this.attempts));
  }

  /**
   * Moves the job to the dead list.
   * @param {string} [error]
   * @returns {Promise<boolean>}
   */
  async fail(error = '') {
    return this._db._async(() => this._db._n.fail(this.id, this.workerId, this.attempts, error));
  }

  /**
   * Extends the lease to `extendS` seconds from now.
   * @param {number} extendS
   * @returns {Promise<boolean>}
   */
  async heartbeat(extendS) {
    return this._db._async(() => this._db._n.heartbeat(this.id, this.workerId, this.attempts, extendS));
  }
}

/**
 * A job as stored (from `getJob` and `deadJobs`).
 * @typedef {object} JobInfo
 * @property {number} id
 * @property {string} queue
 * @property {any} payload
 * @property {'ready' | 'scheduled' | 'processing' | 'dead'} state
 * @property {number} priority
 * @property {number} runAtMs
 * @property {number} attempts
 * @property {number} maxAttempts
 * @property {string | null} workerId
 * @property {number | null} leaseUntilMs
 * @property {number | null} expiresAtMs
 * @property {string | null} key
 * @property {string | null} lastError
 * @property {number} createdAtMs
 * @property {string | null} deadReason
 * @property {number | null} diedAtMs
 */

/**
 * @param {JobData} d
 * @returns {JobInfo}
 */
function jobInfo(d) {
  return {
    id: d.id,
    queue: d.queue,
    payload: loads(d.payload),
    state: /** @type {JobInfo['state']} */ (d.state),
    priority: d.priority,
    runAtMs: d.runAtMs,
    attempts: d.attempts,
    maxAttempts: d.maxAttempts,
    workerId: d.workerId ?? null,
    leaseUntilMs: d.leaseUntilMs ?? null,
    expiresAtMs: d.expiresAtMs ?? null,
    key: d.key ?? null,
    lastError: d.lastError ?? null,
    createdAtMs: d.createdAtMs,
    deadReason: d.deadReason ?? null,
    diedAtMs: d.diedAtMs ?? null,
  };
}

/**
 * What the `for await` iterators share: ending it (an AbortSignal, `break`,
 * `return()`) stops the native wait at once, and a database closed under it
 * ends it quietly.
 * @template T
 * @implements {AsyncIterableIterator<T>}
 */
class Iteration {
  /**
   * @param {() => void} halt stops the native wait
   * @param {AbortSignal | undefined} signal
   */
  constructor(halt, signal) {
    this._halt = halt;
    this._done = false;
    /** @type {() => void} */
    this._unlisten = () => {};
    // An already aborted signal ends the iteration here and now.
    this._unlisten = onAbort(signal, () => this._finish());
  }

  [Symbol.asyncIterator]() {
    return this;
  }

  /**
   * The next item (each subclass waits for its own kind).
   * @returns {Promise<IteratorResult<T, undefined>>}
   */
  async next() {
    return DONE;
  }

  /** Ends the iteration (what `break` in a `for await` loop calls). */
  async return() {
    return this._finish();
  }

  /** @returns {IteratorReturnResult<undefined>} */
  _finish() {
    this._done = true;
    this._halt();
    this._unlisten();
    return DONE;
  }

  /**
   * Ends the iteration on a failed wait: quietly if the database was closed.
   * @param {unknown} e
   * @returns {IteratorReturnResult<undefined>}
   */
  _failed(e) {
    this._finish();
    const err = fix(e);
    if (err instanceof HonkerError && err.code === 'closed') return DONE;
    throw err;
  }
}

/**
 * `for await (const job of queue.claim(worker, { signal }))`: waits for the
 * next job, woken by commits in any process. Aborting the signal (or
 * leaving the loop) ends it; a job claimed in the instant of the abort is
 * given back to the queue (released: its attempt is not counted).
 * @extends {Iteration<Job>}
 */
class Claimer extends Iteration {
  /**
   * @param {Queue} queue
   * @param {string} worker
   * @param {{ signal?: AbortSignal, timeoutS?: number, timeout?: number }} [opts]
   */
  constructor(queue, worker, opts) {
    const o = options('claim options', opts, ['signal', 'timeoutS', 'timeout']);
    const stop = queue.db._n.stopFlag();
    super(() => stop.stop(), o.signal);
    this._q = queue;
    this._worker = worker;
    this._timeoutS = renamed('claim options', o, 'timeout', 'timeoutS');
    this._stop = stop;
  }

  /** @returns {Promise<IteratorResult<Job, undefined>>} */
  async next() {
    if (this._done || this._stop.isStopped()) return this._finish();
    const q = this._q;
    const n = q.db._n;
    if (q.db._gate !== null) {
      const deadlock = q.db._ownTransaction();
      if (deadlock) throw deadlock;
    }
    let data = null;
    try {
      if (q.db._gate === null) {
        // Fast path: a due job is claimed on the pool, without starting a
        // wait thread (skipped while a transaction is open, so no pool
        // thread ever waits for it).
        const due = await n.claimBatch(false, q.name, this._worker, 1, q.visibilityTimeoutS);
        if (due.length) data = due[0];
      }
      if (data === null && !this._stop.isStopped()) {
        data = await n.claimNext(q.name, this._worker, this._stop, q.visibilityTimeoutS, q.maxAttempts, this._timeoutS);
      }
    } catch (e) {
      return this._failed(e);
    }
    if (data === null) return this._finish();
    if (this._stop.isStopped()) {
      // Aborted while this job was being claimed: give it back untouched
      // (the attempt not counted), don't drop it.
      await mapped(n.release(false, data.id, data.workerId ?? this._worker, data.attempts)).catch(() => {});
      return this._finish();
    }
    return { done: false, value: new Job(q, data) };
  }
}

/** A named queue. Defaults: 300 s lease, 3 attempts. */
class Queue {
  /**
   * @param {Database} db
   * @param {string} name
   * @param {{ visibilityTimeoutS?: number, maxAttempts?: number }} [opts]
   */
  constructor(db, name, opts) {
    const o = options('queue options', opts, ['visibilityTimeoutS', 'maxAttempts']);
    /** @readonly */
    this.db = db;
    /** @readonly */
    this.name = name;
    /** @readonly */
    this.visibilityTimeoutS = o.visibilityTimeoutS ?? 300;
    /** @readonly */
    this.maxAttempts = o.maxAttempts ?? 3;
  }

  /**
   * Adds a job (inside `opts.tx` when given); resolves to its id.
   * @param {unknown} payload
   * @param {EnqueueOptions} [opts]
   * @returns {Promise<number>}
   */
  async enqueue(payload, opts) {
    const json = dumps(payload);
    const tx = txOf(opts);
    const o = enqueueOpts(opts);
    return this.db._async(() => this.db._n.enqueue(false, this.name, json, o, tx, this.maxAttempts), tx);
  }

  /**
   * @param {unknown} payload
   * @param {EnqueueOptions} [opts]
   * @returns {number}
   */
  enqueueSync(payload, opts) {
    const json = dumps(payload);
    return sync(() => this.db._n.enqueue(true, this.name, json, enqueueOpts(opts), txOf(opts), this.maxAttempts));
  }

  /**
   * Adds many jobs with the same options, all or none; resolves to their ids.
   * @param {unknown[]} payloads
   * @param {Omit<EnqueueOptions, 'key'>} [opts]
   * @returns {Promise<number[]>}
   */
  async enqueueMany(payloads, opts) {
    const json = arrayOf('payloads', payloads).map((p) => dumps(p));
    const tx = txOf(opts);
    const o = enqueueOpts(opts, 'enqueueMany options');
    if (o?.key != null) throw new HonkerError('invalid argument `key`: an idempotency key names one job; it cannot be shared by a batch', 'invalid_argument');
    return this.db._async(() => this.db._n.enqueueMany(false, this.name, json, o, tx, this.maxAttempts), tx);
  }

  /**
   * @param {unknown[]} payloads
   * @param {Omit<EnqueueOptions, 'key'>} [opts]
   * @returns {number[]}
   */
  enqueueManySync(payloads, opts) {
    const json = arrayOf('payloads', payloads).map((p) => dumps(p));
    const o = enqueueOpts(opts, 'enqueueMany options');
    if (o?.key != null) throw new HonkerError('invalid argument `key`: an idempotency key names one job; it cannot be shared by a batch', 'invalid_argument');
    return sync(() => this.db._n.enqueueMany(true, this.name, json, o, txOf(opts), this.maxAttempts));
  }

  /**
   * Claims one due job now, or resolves to null.
   * @param {string} worker
   * @returns {Promise<Job | null>}
   */
  async claimOne(worker) {
    const jobs = await this.claimBatch(worker, 1);
    return jobs.length ? jobs[0] : null;
  }

  /**
   * @param {string} worker
   * @returns {Job | null}
   */
  claimOneSync(worker) {
    const jobs = this.claimBatchSync(worker, 1);
    return jobs.length ? jobs[0] : null;
  }

  /**
   * Claims up to `n` due jobs now.
   * @param {string} worker
   * @param {number} n
   * @returns {Promise<Job[]>}
   */
  async claimBatch(worker, n) {
    const data = await this.db._async(() => this.db._n.claimBatch(false, this.name, worker, n, this.visibilityTimeoutS));
    return data.map((d) => new Job(this, d));
  }

  /**
   * @param {string} worker
   * @param {number} n
   * @returns {Job[]}
   */
  claimBatchSync(worker, n) {
    const data = sync(() => this.db._n.claimBatch(true, this.name, worker, n, this.visibilityTimeoutS));
    return data.map((d) => new Job(this, d));
  }

  /**
   * An async iterator of jobs (see `Claimer`).
   * @param {string} worker
   * @param {{ signal?: AbortSignal, timeoutS?: number }} [opts]
   * @returns {Claimer}
   */
  claim(worker, opts) {
    return new Claimer(this, worker, opts);
  }

  /**
   * Acks, in one transaction, each of `jobs` (claimed `Job`s) whose claim
   * is still current, fenced exactly like `job.ack()`: a job whose lease
   * lapsed and was claimed again, even under the same worker name, is not
   * acked. Resolves to how many were acked.
   * @param {Job[]} jobs
   * @param {{ tx?: Transaction }} [opts]
   * @returns {Promise<number>}
   */
  async ackBatch(jobs, opts) {
    const leases = leasesOf(jobs);
    const tx = txOf(options('ackBatch options', opts, ['tx']));
    return this.db._async(() => this.db._n.ackBatch(false, leases, tx), tx);
  }

  /**
   * @param {Job[]} jobs
   * @param {{ tx?: Transaction }} [opts]
   * @returns {number}
   */
  ackBatchSync(jobs, opts) {
    const leases = leasesOf(jobs);
    return sync(() => this.db._n.ackBatch(true, leases, txOf(options('ackBatch options', opts, ['tx']))));
  }

  /**
   * @param {number} id
   * @returns {Promise<JobInfo | null>}
   */
  async getJob(id) {
    const d = await this.db._async(() => this.db._n.getJob(false, id));
    return d == null ? null : jobInfo(d);
  }

  /**
   * @param {number} id
   * @returns {JobInfo | null}
   */
  getJobSync(id) {
    const d = sync(() => this.db._n.getJob(true, id));
    return d == null ? null : jobInfo(d);
  }

  /**
   * Cancels a job that is not running; resolves to whether it was.
   * @param {number} id
   * @returns {Promise<boolean>}
   */
  async cancel(id) {
    return this.db._async(() => this.db._n.cancel(id));
  }

  /**
   * Deletes every ready job of this queue (claimable now, delayed jobs whose
   * time has come included) and resolves to how many: for clearing a
   * backlog. Jobs scheduled for later, jobs a worker holds and dead jobs
   * stay; purged jobs are gone, not dead-lettered.
   * @returns {Promise<number>}
   */
  async purge() {
    return this.db._async(() => this.db._n.purge(this.name));
  }

  /**
   * The dead jobs of this queue, newest first.
   * @param {number} [limit]
   * @returns {Promise<JobInfo[]>}
   */
  async deadJobs(limit = 100) {
    const list = await this.db._async(() => this.db._n.deadJobs(this.name, limit));
    return list.map(jobInfo);
  }

  /**
   * Puts a dead job back in the queue (fails with code `not_found` if it is not dead).
   * @param {number} id
   * @returns {Promise<void>}
   */
  async requeueDead(id) {
    return this.db._async(() => this.db._n.requeueDead(id));
  }

  /**
   * Dead-letters this queue's jobs whose `expires` passed before a worker
   * started them; resolves to how many. (Claims do this on their way; this
   * is for queues nobody claims from.)
   * @returns {Promise<number>}
   */
  async sweepExpired() {
    return this.db._async(() => this.db._n.sweepExpired(this.name));
  }

  /**
   * This queue's job counts by state.
   * @returns {Promise<QueueStats>}
   */
  async stats() {
    return this.db._async(() => this.db._n.queueStats(false, this.name));
  }

  /** @returns {QueueStats} */
  statsSync() {
    return sync(() => this.db._n.queueStats(true, this.name));
  }

  /**
   * The earliest `runAt` of a scheduled job or lease end of a claimed one,
   * in epoch seconds; null if neither exists. It may be in the past:
   * something is claimable already.
   * @returns {Promise<number | null>}
   */
  async nextDeadline() {
    return seconds(await this.db._async(() => this.db._n.nextDeadlineMs(false, this.name)));
  }

  /** @returns {number | null} */
  nextDeadlineSync() {
    return sync(() => seconds(this.db._n.nextDeadlineMs(true, this.name)));
  }
}

/**
 * A queue's job counts: `ready` (claimable, as of the last claim's promotion
 * of due jobs), `scheduled` (waiting for `runAt`), `processing` (leased to a
 * worker) and `dead`.
 * @typedef {object} QueueStats
 * @property {number} ready
 * @property {number} scheduled
 * @property {number} processing
 * @property {number} dead
 */

/**
 * @typedef {object} Event
 * @property {number} offset
 * @property {string | null} key
 * @property {any} payload
 */

/**
 * @param {import('./native').EventData} e
 * @returns {Event}
 */
function event(e) {
  return { offset: e.offset, key: e.key ?? null, payload: loads(e.payload) };
}

/**
 * `for await (const event of stream.subscribe(consumer, { signal }))`:
 * replays from the consumer's saved offset, then waits for new events.
 * At-least-once: an event's offset is saved once you ask for the next one
 * (or leave the loop after it), so an event being handled when the process
 * dies is delivered again.
 * @extends {Iteration<Event>}
 */
class Subscription extends Iteration {
  /**
   * @param {Stream} stream
   * @param {string} consumer
   * @param {{ signal?: AbortSignal, timeoutS?: number, timeout?: number }} [opts]
   */
  constructor(stream, consumer, opts) {
    const o = options('subscribe options', opts, ['signal', 'timeoutS', 'timeout']);
    const stop = stream.db._n.stopFlag();
    super(() => stop.stop(), o.signal);
    this._s = stream;
    this._consumer = consumer;
    this._timeoutS = renamed('subscribe options', o, 'timeout', 'timeoutS');
    this._stop = stop;
    /** @type {import('./native').NativeCursor | null} */
    this._cursor = null;
  }

  /** @returns {Promise<IteratorResult<Event, undefined>>} */
  async next() {
    if (this._done || this._stop.isStopped()) return this._end();
    const deadlock = this._s.db._gate === null ? null : this._s.db._ownTransaction();
    if (deadlock) throw deadlock;
    try {
      if (this._cursor === null) {
        this._cursor = await this._s.db._async(() => this._s.db._n.cursor(this._s.name, this._consumer));
      }
      const ev = await this._cursor.next(this._stop, this._timeoutS);
      if (ev === null) return this._end();
      return { done: false, value: event(ev) };
    } catch (e) {
      return this._failed(e);
    }
  }

  /** Marks the event last handed out as handled and saves the offset now. */
  async commit() {
    if (this._cursor) await mapped(this._cursor.commit());
  }

  /**
   * Ends the iteration, saving the offset of events moved past (all but the
   * one in hand); what `break` calls.
   */
  async return() {
    return this._end();
  }

  /**
   * However the loop ends (abort, `break`, timeout), what the consumer moved
   * past is saved before the iteration reports its end.
   * @returns {Promise<IteratorReturnResult<undefined>>}
   */
  async _end() {
    this._finish();
    const cursor = this._cursor;
    this._cursor = null;
    if (cursor && !this._s.db.isClosed) await mapped(cursor.flush()).catch(() => {});
    return DONE;
  }
}

/** A durable stream: an event log with per-consumer offsets. */
class Stream {
  /**
   * @param {Database} db
   * @param {string} name
   */
  constructor(db, name) {
    /** @readonly */
    this.db = db;
    /** @readonly */
    this.name = name;
  }

  /**
   * Appends an event; resolves to its offset.
   * @param {unknown} payload
   * @param {{ key?: string, tx?: Transaction }} [opts]
   * @returns {Promise<number>}
   */
  async publish(payload, opts) {
    const json = dumps(payload);
    const o = options('publish options', opts, ['key', 'tx']);
    const tx = txOf(o);
    return this.db._async(() => this.db._n.publish(false, this.name, json, o.key, tx), tx);
  }

  /**
   * @param {unknown} payload
   * @param {{ key?: string, tx?: Transaction }} [opts]
   * @returns {number}
   */
  publishSync(payload, opts) {
    const json = dumps(payload);
    const o = options('publish options', opts, ['key', 'tx']);
    return sync(() => this.db._n.publish(true, this.name, json, o.key, txOf(o)));
  }

  /**
   * Events after `offset`, oldest first.
   * @param {number} offset
   * @param {number} [limit]
   * @returns {Promise<Event[]>}
   */
  async readSince(offset, limit = 100) {
    const list = await this.db._async(() => this.db._n.readSince(false, this.name, offset, limit));
    return list.map(event);
  }

  /**
   * @param {number} offset
   * @param {number} [limit]
   * @returns {Event[]}
   */
  readSinceSync(offset, limit = 100) {
    return sync(() => this.db._n.readSince(true, this.name, offset, limit).map(event));
  }

  /**
   * Saves `consumer`'s offset (only forward); resolves to whether it moved.
   * @param {string} consumer
   * @param {number} offset
   * @param {{ tx?: Transaction }} [opts]
   * @returns {Promise<boolean>}
   */
  async saveOffset(consumer, offset, opts) {
    const tx = txOf(options('saveOffset options', opts, ['tx']));
    return this.db._async(() => this.db._n.saveOffset(false, this.name, consumer, offset, tx), tx);
  }

  /**
   * @param {string} consumer
   * @param {number} offset
   * @param {{ tx?: Transaction }} [opts]
   * @returns {boolean}
   */
  saveOffsetSync(consumer, offset, opts) {
    return sync(() => this.db._n.saveOffset(true, this.name, consumer, offset, txOf(options('saveOffset options', opts, ['tx']))));
  }

  /**
   * @param {string} consumer
   * @returns {Promise<number>}
   */
  async getOffset(consumer) {
    return this.db._async(() => this.db._n.getOffset(false, this.name, consumer));
  }

  /**
   * @param {string} consumer
   * @returns {number}
   */
  getOffsetSync(consumer) {
    return sync(() => this.db._n.getOffset(true, this.name, consumer));
  }

  /**
   * An async iterator of events (see `Subscription`).
   * @param {string} consumer
   * @param {{ signal?: AbortSignal, timeoutS?: number }} [opts]
   * @returns {Subscription}
   */
  subscribe(consumer, opts) {
    return new Subscription(this, consumer, opts);
  }

  /**
   * The newest event's offset (0 if the stream is empty).
   * @returns {Promise<number>}
   */
  async lastOffset() {
    return this.db._async(() => this.db._n.lastOffset(false, this.name));
  }

  /** @returns {number} */
  lastOffsetSync() {
    return sync(() => this.db._n.lastOffset(true, this.name));
  }

  /**
   * Stores (in the file, for every process) how much of the stream to keep:
   * events younger than `maxAgeS` seconds and at most the `maxCount`
   * newest; both apply when both are given, neither keeps everything.
   * Publishing applies it every 128 offsets; `prune()` applies it now.
   * @param {RetentionOptions} [retention]
   * @returns {Promise<void>}
   */
  async setRetention(retention) {
    const r = retentionArg(retention);
    return this.db._async(() => this.db._n.setRetention(false, this.name, r));
  }

  /**
   * @param {RetentionOptions} [retention]
   */
  setRetentionSync(retention) {
    sync(() => this.db._n.setRetention(true, this.name, retentionArg(retention)));
  }

  /**
   * The stored retention (null: no such limit).
   * @returns {Promise<Retention>}
   */
  async retention() {
    return retentionOf(await this.db._async(() => this.db._n.retention(false, this.name)));
  }

  /** @returns {Retention} */
  retentionSync() {
    return sync(() => retentionOf(this.db._n.retention(true, this.name)));
  }

  /**
   * Applies the retention now; resolves to how many events were removed.
   * @returns {Promise<number>}
   */
  async prune() {
    return this.db._async(() => this.db._n.prune(this.name));
  }
}

/**
 * @typedef {object} RetentionOptions
 * @property {number | null} [maxAgeS] drop events older than this many seconds
 * @property {number | null} [maxCount] keep at most this many of the newest events
 */

/**
 * How much of a stream is kept (null: no such limit).
 * @typedef {object} Retention
 * @property {number | null} maxAgeS
 * @property {number | null} maxCount
 */

/**
 * Retention options for the native layer (null fields become absent ones).
 * @param {RetentionOptions | undefined} r
 * @returns {import('./native').RetentionData | null}
 */
function retentionArg(r) {
  if (r == null) return null;
  const o = options('retention', r, ['maxAgeS', 'maxCount']);
  return { maxAgeS: o.maxAgeS ?? undefined, maxCount: o.maxCount ?? undefined };
}

/**
 * @param {import('./native').RetentionData} r
 * @returns {Retention}
 */
function retentionOf(r) {
  return { maxAgeS: r.maxAgeS ?? null, maxCount: r.maxCount ?? null };
}

/**
 * @typedef {object} Notification
 * @property {number} id
 * @property {string} channel
 * @property {any} payload
 */

/**
 * `for await (const n of db.listen(channel, { signal }))`: notifications
 * committed after `listen` was called, in order. Aborting ends it.
 * @extends {Iteration<Notification>}
 */
class Listener extends Iteration {
  /**
   * @param {Database} db
   * @param {string} channel
   * @param {{ signal?: AbortSignal }} [opts]
   */
  constructor(db, channel, opts) {
    const o = options('listen options', opts, ['signal']);
    const native = sync(() => db._n.listen(channel));
    super(() => native.close(), o.signal);
    this._native = native;
  }

  /** @returns {Promise<IteratorResult<Notification, undefined>>} */
  async next() {
    if (this._done) return DONE;
    let n;
    try {
      n = await this._native.recv(null);
    } catch (e) {
      return this._failed(e);
    }
    if (n === null) return this._finish();
    return { done: false, value: notification(n) };
  }

  /**
   * The next notification within `timeoutS` seconds, or null.
   * @param {number} timeoutS
   * @returns {Promise<Notification | null>}
   */
  async recv(timeoutS) {
    let n;
    try {
      n = await this._native.recv(timeoutS);
    } catch (e) {
      throw fix(e);
    }
    return n === null ? null : notification(n);
  }

  /** Stops listening. */
  close() {
    this._finish();
  }
}

/**
 * @param {import('./native').NotificationData} n
 * @returns {Notification}
 */
function notification(n) {
  return { id: n.id, channel: n.channel, payload: loads(n.payload) };
}

/**
 * Who holds a lock: `expiresAt` is when it lapses unless renewed, in epoch
 * seconds.
 * @typedef {object} LockInfo
 * @property {string} name
 * @property {string} owner
 * @property {number} fencingToken
 * @property {number} expiresAt
 */

/**
 * @param {import('./native').LockHolderData | null} h
 * @returns {LockInfo | null}
 */
function lockInfo(h) {
  return h == null ? null : { name: h.name, owner: h.owner, fencingToken: h.token, expiresAt: h.expiresAtMs / 1000 };
}

/**
 * A held advisory lock. While held, a native thread renews it every third
 * of its TTL (off the event loop), so work longer than the TTL keeps it; if
 * a renewal finds it gone anyway (the process stalled past the TTL and
 * another owner took it), `lost` turns true and `check()` throws code
 * `lock_lost`.
 */
class Lock {
  /**
   * @param {Database} db
   * @param {string} name
   * @param {string} owner
   * @param {number} token
   * @param {number} ttlS
   */
  constructor(db, name, owner, token, ttlS) {
    this._db = db;
    /** @readonly */
    this.name = name;
    /** @readonly */
    this.owner = owner;
    /** Increases on every acquisition of any lock: pass it along to fence stale holders. @readonly */
    this.fencingToken = token;
    this._held = true;
    /** @internal */
    this._keeper = sync(() => db._n.keepLock(name, token, ttlS));
  }

  /** True once a renewal (or `heartbeat`) found the lock gone. */
  get lost() {
    return this._keeper.isLost();
  }

  /** Throws (code `lock_lost`) if the lock was found gone. Reads no file. */
  check() {
    if (this.lost) {
      throw new HonkerError(`lock ${JSON.stringify(this.name)} was lost (fencing token ${this.fencingToken} no longer holds it)`, 'lock_lost');
    }
  }

  /**
   * Extends the lock to `ttlS` seconds from now (and renews with that TTL
   * from then on); false if it was lost.
   * @param {number} ttlS
   * @returns {Promise<boolean>}
   */
  async heartbeat(ttlS) {
    const held = await this._db._async(() => this._db._n.renewLock(this.name, this.fencingToken, ttlS));
    if (held) this._keeper.setTtl(ttlS);
    else this._keeper.markLost();
    return held;
  }

  /**
   * Releases it; false if it had already lapsed or been lost.
   * @returns {Promise<boolean>}
   */
  async release() {
    if (!this._held) return false;
    this._held = false;
    await mapped(this._keeper.stop(false));
    return this._db._async(() => this._db._n.releaseLock(false, this.name, this.fencingToken));
  }

  /** @returns {boolean} */
  releaseSync() {
    if (!this._held) return false;
    this._held = false;
    this._keeper.stop(true);
    return sync(() => this._db._n.releaseLock(true, this.name, this.fencingToken));
  }
}

/**
 * @typedef {object} Schedule
 * @property {string} name
 * @property {string} queue
 * @property {string} schedule
 * @property {any} payload
 * @property {number} priority
 * @property {boolean} paused
 * @property {number} nextFireAtMs
 * @property {string | null} lastError why its last fire failed, if it did (it then moved on to its next boundary)
 */

/**
 * Periodic tasks: each fire enqueues one job. Cron (5 or 6 fields),
 * `@hourly` ... `@yearly`, `@every 1m30s`; UTC unless `tz` is given.
 */
class Scheduler {
  /** @param {Database} db */
  constructor(db) {
    this._db = db;
  }

  /**
   * Registers or updates a task; re-adding an unchanged one keeps its next fire.
   * @param {{ name: string, queue: string, schedule: string, payload?: unknown, priority?: number, expiresS?: number, tz?: string }} task
   * @returns {Promise<void>}
   */
  async add(task) {
    if (task == null || typeof task !== 'object') {
      throw new HonkerError('invalid argument `task`: must be an object { name, queue, schedule, ... }', 'invalid_argument');
    }
    options('task', task, ['name', 'queue', 'schedule', 'payload', 'priority', 'expiresS', 'tz']);
    const spec = {
      name: task.name,
      queue: task.queue,
      schedule: task.schedule,
      payload: dumps(task.payload),
      priority: task.priority,
      expiresS: task.expiresS,
      tz: task.tz,
    };
    return this._db._async(() => this._db._n.scheduleAdd(spec));
  }

  /**
   * @param {string} name
   * @returns {Promise<boolean>}
   */
  async remove(name) {
    return this._db._async(() => this._db._n.scheduleRemove(name));
  }

  /**
   * @param {string} name
   * @returns {Promise<void>}
   */
  async pause(name) {
    return this._db._async(() => this._db._n.schedulePause(name));
  }

  /**
   * @param {string} name
   * @returns {Promise<void>}
   */
  async resume(name) {
    return this._db._async(() => this._db._n.scheduleResume(name));
  }

  /** @returns {Promise<Schedule[]>} */
  async list() {
    const rows = await this._db._async(() => this._db._n.scheduleList());
    return rows.map((s) => ({
      name: s.name,
      queue: s.queue,
      schedule: s.schedule,
      payload: loads(s.payload),
      priority: s.priority,
      paused: s.paused,
      nextFireAtMs: s.nextFireAtMs,
      lastError: s.lastError ?? null,
    }));
  }

  /**
   * Fires what is due now (one catch-up fire after downtime).
   * @returns {Promise<{ name: string, jobId: number, fireAtMs: number }[]>}
   */
  async tick() {
    return this._db._async(() => this._db._n.scheduleTick());
  }

  /**
   * The next fire of any unpaused schedule, in epoch seconds; null if there is none.
   * @returns {Promise<number | null>}
   */
  async soonest() {
    return seconds(await this._db._async(() => this._db._n.scheduleSoonest()));
  }

  /**
   * Runs until `signal` aborts: only the leader (lock holder) fires; a
   * standby takes over within `lockTtlS` when the leader dies. Resolves
   * once stopped. A schedule that cannot fire moves on to its next boundary
   * (the others fire; `lastError` in `list()` says why) and a failing step
   * is retried; each problem goes to `onProblem` (default: a warning,
   * `process.emitWarning` with code `HONKER_SCHEDULER`). After 10 failures
   * in a row (about 40 s) it rejects with the error.
   * @param {string} owner
   * @param {{ signal?: AbortSignal, lockTtlS?: number, onProblem?: (message: string) => void }} [opts]
   * @returns {Promise<void>}
   */
  async run(owner, opts) {
    const o = options('run options', opts, ['signal', 'lockTtlS', 'onProblem']);
    const onProblem = o.onProblem ?? ((/** @type {string} */ message) => process.emitWarning(message, { code: 'HONKER_SCHEDULER' }));
    if (typeof onProblem !== 'function') throw new HonkerError('invalid argument `onProblem`: must be a function', 'invalid_argument');
    const stop = this._db._n.stopFlag();
    const unlisten = onAbort(o.signal, () => stop.stop());
    try {
      await this._db._n.runScheduler(owner, stop, o.lockTtlS, onProblem);
    } catch (e) {
      const err = fix(e);
      if (!(err instanceof HonkerError && err.code === 'closed')) throw err;
    } finally {
      unlisten();
    }
  }
}

/** One SQLite file holding your tables and honker's. */
class Database {
  /**
   * @param {string} path
   * @param {OpenOptions} [opts]
   */
  constructor(path, opts) {
    const o = options('open options', opts, ['busyTimeoutS', 'walAutocheckpoint', 'trustedSchema']);
    /** @readonly */
    this.path = path;
    try {
      /** @internal */
      this._n = new native.NativeDatabase(path, o);
    } catch (e) {
      throw fix(e);
    }
    /**
     * Settles when the open transaction ends; null when none is open.
     * @internal @type {Promise<void> | null}
     */
    this._gate = null;
  }

  /**
   * Runs a native async call, after the open transaction (if any) ends
   * unless the call is part of it. Waiting here, not on a pool thread,
   * keeps the libuv pool free for the transaction's own calls.
   * @internal
   * @template T
   * @param {() => Promise<T>} call
   * @param {NativeTx | null} [tx]
   * @returns {Promise<T>}
   */
  _async(call, tx) {
    if (this._gate === null || tx) {
      let p;
      try {
        p = call();
      } catch (e) {
        return Promise.reject(fix(e));
      }
      return p.then(undefined, rethrow);
    }
    const deadlock = this._ownTransaction();
    if (deadlock) return Promise.reject(deadlock);
    return this._gate.then(() => this._async(call, tx));
  }

  /**
   * An error if this call comes from inside this database's open
   * transaction's callback (waiting would deadlock), else null.
   * @internal
   * @returns {HonkerError | null}
   */
  _ownTransaction() {
    const current = inTransaction.getStore();
    if (current === undefined || current.db !== this || !current.open) return null;
    return new HonkerError(
      'this call is inside the callback of an open transaction on this database: pass { tx } to make it part of the transaction, or make it after the transaction ends',
      'transaction_open',
    );
  }

  /**
   * @param {string} name
   * @param {{ visibilityTimeoutS?: number, maxAttempts?: number }} [opts]
   * @returns {Queue}
   */
  queue(name, opts) {
    return new Queue(this, name, opts);
  }

  /**
   * @param {string} name
   * @returns {Stream}
   */
  stream(name) {
    return new Stream(this, name);
  }

  /**
   * Runs `fn` in a write transaction: commits when it resolves, rolls back
   * when it throws. Pass `{ tx }` to honker calls inside it. Other calls on
   * this database wait until it ends (a `...Sync` call made meanwhile
   * without `tx` fails with code `transaction_open` rather than block the
   * event loop, and so does a call without `tx` from inside the callback,
   * which would otherwise wait for the transaction waiting for it).
   * @template T
   * @param {(tx: Transaction) => Promise<T> | T} fn
   * @returns {Promise<T>}
   */
  async transaction(fn) {
    const nested = this._ownTransaction();
    if (nested) throw nested;
    while (this._gate !== null) await this._gate;
    /** @type {() => void} */
    let open = () => {};
    this._gate = new Promise((resolve) => {
      open = resolve;
    });
    try {
      const nativeTx = await mapped(this._n.begin());
      const tx = new Transaction(this, nativeTx);
      const context = { db: this, open: true };
      let result;
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

  /**
   * Runs one statement outside any transaction; resolves to rows changed.
   * @param {string} sql
   * @param {unknown[]} [params]
   * @returns {Promise<number>}
   */
  async execute(sql, params = []) {
    const p = sqlParams(params);
    return this._async(() => this._n.execute(false, sql, p, null));
  }

  /**
   * @param {string} sql
   * @param {unknown[]} [params]
   * @returns {number}
   */
  executeSync(sql, params = []) {
    return sync(() => this._n.execute(true, sql, sqlParams(params), null));
  }

  /**
   * Runs a query; resolves to its rows as objects.
   * @param {string} sql
   * @param {unknown[]} [params]
   * @returns {Promise<Record<string, unknown>[]>}
   */
  async query(sql, params = []) {
    return objects(await this._async(() => this._n.query(false, sql, sqlParams(params), null)));
  }

  /**
   * @param {string} sql
   * @param {unknown[]} [params]
   * @returns {Record<string, unknown>[]}
   */
  querySync(sql, params = []) {
    return sync(() => objects(this._n.query(true, sql, sqlParams(params), null)));
  }

  /**
   * Sends a notification to listeners of `channel` (on commit of `tx` when given).
   * @param {string} channel
   * @param {unknown} payload
   * @param {{ tx?: Transaction }} [opts]
   * @returns {Promise<number>}
   */
  async notify(channel, payload, opts) {
    const json = dumps(payload);
    const tx = txOf(options('notify options', opts, ['tx']));
    return this._async(() => this._n.notify(false, channel, json, tx), tx);
  }

  /**
   * @param {string} channel
   * @param {unknown} payload
   * @param {{ tx?: Transaction }} [opts]
   * @returns {number}
   */
  notifySync(channel, payload, opts) {
    const json = dumps(payload);
    return sync(() => this._n.notify(true, channel, json, txOf(options('notify options', opts, ['tx']))));
  }

  /**
   * Listens on `channel` from now on (see `Listener`).
   * @param {string} channel
   * @param {{ signal?: AbortSignal }} [opts]
   * @returns {Listener}
   */
  listen(channel, opts) {
    return new Listener(this, channel, opts);
  }

  /**
   * Takes the advisory lock if nobody (`owner` included) holds it;
   * resolves to the lock or null.
   * @param {string} name
   * @param {string} owner
   * @param {number} [ttlS]
   * @returns {Promise<Lock | null>}
   */
  async tryLock(name, owner, ttlS = 60) {
    const token = await this._async(() => this._n.tryLock(false, name, owner, ttlS));
    return token == null ? null : new Lock(this, name, owner, token, ttlS);
  }

  /**
   * @param {string} name
   * @param {string} owner
   * @param {number} [ttlS]
   * @returns {Lock | null}
   */
  tryLockSync(name, owner, ttlS = 60) {
    const token = sync(() => this._n.tryLock(true, name, owner, ttlS));
    return token == null ? null : new Lock(this, name, owner, token, ttlS);
  }

  /**
   * Runs `fn(lock)` while holding the advisory lock `name`, kept alive for
   * as long as it runs, and releases it after. Rejects with code
   * `lock_held` if someone else holds it, and with code `lock_lost` after
   * `fn` if the lock was lost while it ran (another owner may have run at
   * the same time); otherwise resolves to what `fn` returned.
   * @template T
   * @param {string} name
   * @param {(lock: Lock) => Promise<T> | T} fn
   * @param {{ owner?: string, ttlS?: number }} [opts]
   * @returns {Promise<T>}
   */
  async withLock(name, fn, opts) {
    const o = options('withLock options', opts, ['owner', 'ttlS']);
    if (typeof fn !== 'function') throw new HonkerError('invalid argument `fn`: must be a function', 'invalid_argument');
    const owner = o.owner ?? `${require('node:os').hostname()}:${process.pid}`;
    const lock = await this.tryLock(name, owner, o.ttlS ?? 60);
    if (lock === null) throw new HonkerError(`lock ${JSON.stringify(name)} is held by someone else`, 'lock_held');
    let result;
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

  /**
   * Who holds lock `name` now, or null if nobody does (an expired lock is free).
   * @param {string} name
   * @returns {Promise<LockInfo | null>}
   */
  async lockHolder(name) {
    return lockInfo(await this._async(() => this._n.lockHolder(false, name)));
  }

  /**
   * @param {string} name
   * @returns {LockInfo | null}
   */
  lockHolderSync(name) {
    return sync(() => lockInfo(this._n.lockHolder(true, name)));
  }

  /**
   * True for the first `limit` calls in each fixed window of `perS` seconds.
   * @param {string} key
   * @param {number} limit
   * @param {number} perS
   * @returns {Promise<boolean>}
   */
  async tryRateLimit(key, limit, perS) {
    return this._async(() => this._n.tryRateLimit(false, key, limit, perS));
  }

  /**
   * @param {string} key
   * @param {number} limit
   * @param {number} perS
   * @returns {boolean}
   */
  tryRateLimitSync(key, limit, perS) {
    return sync(() => this._n.tryRateLimit(true, key, limit, perS));
  }

  /**
   * Saves a job's result (JSON) for `ttlS` seconds.
   * @param {number} jobId
   * @param {unknown} value
   * @param {number} ttlS
   * @returns {Promise<void>}
   */
  async saveResult(jobId, value, ttlS) {
    const json = dumps(value, 'value');
    return this._async(() => this._n.saveResult(false, jobId, json, ttlS));
  }

  /**
   * @param {number} jobId
   * @param {unknown} value
   * @param {number} ttlS
   */
  saveResultSync(jobId, value, ttlS) {
    const json = dumps(value, 'value');
    sync(() => this._n.saveResult(true, jobId, json, ttlS));
  }

  /**
   * The saved result, or undefined when there is none.
   * @param {number} jobId
   * @returns {Promise<any>}
   */
  async getResult(jobId) {
    const text = await this._async(() => this._n.getResult(false, jobId));
    return text == null ? undefined : loads(text);
  }

  /**
   * @param {number} jobId
   * @returns {any}
   */
  getResultSync(jobId) {
    const text = sync(() => this._n.getResult(true, jobId));
    return text == null ? undefined : loads(text);
  }

  /**
   * Removes every expired result now; resolves to how many (saving a result
   * also removes a few).
   * @returns {Promise<number>}
   */
  async sweepResults() {
    return this._async(() => this._n.sweepResults());
  }

  /** @returns {Scheduler} */
  scheduler() {
    return new Scheduler(this);
  }

  /** True once `close()` was called. */
  get isClosed() {
    return this._n.isClosed();
  }

  /**
   * Closes the file. Waiting iterators end; later calls fail with code `closed`.
   */
  close() {
    sync(() => this._n.close());
  }
}

/**
 * Where the SQLite loadable extension is: `$HONKER_EXT` if set, else the
 * `libhonker_ext` library shipped beside this file.
 * @returns {string}
 */
function extensionPath() {
  const env = process.env.HONKER_EXT;
  if (env) return env;
  const fs = require('node:fs');
  const path = require('node:path');
  for (const name of ['libhonker_ext.so', 'libhonker_ext.dylib', 'honker_ext.dll']) {
    const candidate = path.join(__dirname, name);
    if (fs.existsSync(candidate)) return candidate;
  }
  return path.join(__dirname, 'libhonker_ext.so');
}

/**
 * Loads honker's SQL functions (`honker_*`, `notify`) into your own
 * better-sqlite3 or node:sqlite connection, then creates or migrates
 * honker's tables. Use it *instead of* `open()` on the same file in one
 * process (see the README).
 * @param {{ loadExtension(path: string): unknown, prepare(sql: string): { get(): unknown } }} conn
 */
function loadExtension(conn) {
  const file = extensionPath();
  if (!require('node:fs').existsSync(file)) {
    throw new HonkerError(`the honker SQLite extension is not at ${file}: build it with \`make ext\` (or set HONKER_EXT to libhonker_ext.so)`, 'invalid_argument');
  }
  if (conn == null || typeof conn.loadExtension !== 'function') {
    throw new HonkerError('loadExtension needs a better-sqlite3 Database or a node:sqlite DatabaseSync opened with { allowExtension: true }', 'invalid_argument');
  }
  conn.loadExtension(file);
  conn.prepare('SELECT honker_bootstrap()').get();
}

/**
 * The first fire of `expr` strictly after `after` (a Date, or epoch seconds
 * floored to the millisecond; now when omitted), in epoch seconds. `expr` is
 * what `Scheduler.add` takes (cron with 5 or 6 fields, `@daily`, `@every
 * 1m30s`, an optional `CRON_TZ=Zone` prefix); the zone is `opts.tz`, else
 * UTC. Across DST changes a skipped local time fires at the first instant
 * after the gap, a repeated one once. Synchronous: it reads no file.
 * Throws with code `invalid_cron` or `invalid_timezone`.
 * @param {string} expr
 * @param {Date | number | null} [after]
 * @param {{ tz?: string | null }} [opts]
 * @returns {number}
 */
function cronNext(expr, after, opts) {
  const afterS = after == null ? Date.now() / 1000 : after instanceof Date ? after.getTime() / 1000 : after;
  const o = options('cronNext options', opts, ['tz']);
  return sync(() => native.cronNext(expr, afterS, opts == null ? null : { tz: o.tz ?? undefined }) / 1000);
}

/**
 * @typedef {object} OpenOptions
 * @property {number} [busyTimeoutS] how long a write waits for other writers before failing with code `busy` (default 10)
 * @property {number} [walAutocheckpoint] WAL size in pages past which a commit checkpoints (default 1000; past four times that a commit waits briefly for readers so the WAL can start over, and an idle file's WAL is truncated; 0: no automatic checkpoints)
 * @property {boolean} [trustedSchema] let the file's own triggers and views call honker's SQL functions (default false: a database file is input; turn it on only for a schema you wrote)
 */

/**
 * Opens (creating if needed) the database at `path`: WAL mode, honker's tables.
 * @param {string} path
 * @param {OpenOptions} [opts]
 * @returns {Database}
 */
function open(path, opts) {
  return new Database(path, opts);
}

module.exports = {
  open,
  cronNext,
  extensionPath,
  loadExtension,
  Database,
  Transaction,
  Queue,
  Job,
  Claimer,
  Stream,
  Subscription,
  Listener,
  Lock,
  Scheduler,
  HonkerError,
  ERROR_CODES,
  VERSION: native.version(),
};
