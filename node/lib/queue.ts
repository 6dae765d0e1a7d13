// Queues: enqueue, claim (now or by waiting), and a claimed job's lease.
import { HonkerError, mapped } from './errors.js';
import { Iteration } from './iteration.js';
import { dumps, loads } from './json.js';
import type * as N from '../native.js';
import { arrayOf, options, renamed, seconds, type TxOption, type WaitOptions } from './options.js';
import { txOf } from './transaction.js';
import type { Database } from './database.js';
import { retentionArg, retentionOf, type Retention, type RetentionOptions } from './stream.js';
import { Task, type TaskHandler, type TaskOptions } from './worker.js';

export interface QueueOptions {
  /** How long a claim is leased before another worker may take the job (default 300 s). */
  visibilityTimeoutS?: number;
  /** Attempts before a job goes to the dead list (default 3). */
  maxAttempts?: number;
}

export interface EnqueueOptions extends TxOption {
  /** Seconds before the job may run. */
  delayS?: number;
  /** When the job may run: a Date, or Unix time in seconds. */
  runAt?: Date | number;
  /** Higher runs first (default 0). */
  priority?: number;
  /** Seconds after it is due within which a worker must start it, else it is dead-lettered. */
  expiresS?: number;
  /** Overrides the queue's `maxAttempts`. */
  maxAttempts?: number;
  /** Idempotency key: while a live job has it, another is not added. */
  key?: string;
  /** @deprecated use `delayS` */
  delay?: number;
  /** @deprecated use `expiresS` */
  expires?: number;
}

/** A queue's controls, stored in the file. */
export interface QueueControls {
  /** Claims take nothing while paused. */
  paused: boolean;
  /** The most of its jobs leased at once across every process; null: no limit. */
  maxInFlight: number | null;
  /** At most `limit` claims per fixed window of `perS` seconds; null: no limit. */
  rateLimit: { limit: number; perS: number } | null;
  /** What of its history is kept. */
  retention: QueueRetention;
  /** Whether it publishes lifecycle events (`setEvents`). */
  events: boolean;
}

/**
 * What of a queue's history is kept: `completed`, the limits of its kept
 * finished jobs (null: an acked job is deleted), and `dead`, the limits of
 * its dead jobs (null: kept until requeued).
 */
export interface QueueRetention {
  completed: Retention | null;
  dead: Retention | null;
}

/** `queue.setRetention()`'s argument: each limit set must name `maxAgeS`, `maxCount` or both. */
export interface QueueRetentionOptions {
  completed?: RetentionOptions | null;
  dead?: RetentionOptions | null;
}

function controls(c: N.QueueControlsData): QueueControls {
  return {
    paused: c.paused,
    maxInFlight: c.maxInFlight ?? null,
    rateLimit: c.rateLimit ? { limit: c.rateLimit.limit, perS: c.rateLimit.perS } : null,
    retention: {
      completed: c.retention.completed ? retentionOf(c.retention.completed) : null,
      dead: c.retention.dead ? retentionOf(c.retention.dead) : null,
    },
    events: c.events,
  };
}

/** `setRetention`'s argument for the native layer. */
function queueRetentionArgs(r: QueueRetentionOptions | undefined): [N.RetentionData | undefined, N.RetentionData | undefined] {
  const o = options('retention', r ?? {}, ['completed', 'dead']);
  return [retentionArg(o.completed) ?? undefined, retentionArg(o.dead) ?? undefined];
}

/** A queue as an operator sees it (`db.queues()`). */
export interface QueueSummary {
  name: string;
  stats: QueueStats;
  controls: QueueControls;
}

/** @internal */
export function queueSummary(q: { name: string; stats: QueueStats; controls: N.QueueControlsData }): QueueSummary {
  return { name: q.name, stats: { ...q.stats }, controls: controls(q.controls) };
}

/** Which jobs `db.jobs()` lists: every field given must match. */
export interface JobFilter {
  queue?: string;
  state?: JobInfo['state'];
  /** The task name of a task envelope. */
  task?: string;
  /** An idempotency key. */
  key?: string;
  /** Created at or after, ms since the epoch. */
  createdFromMs?: number;
  /** Created before, ms since the epoch. */
  createdToMs?: number;
  /** Only jobs with a lower id: the page after the one that ended with it. */
  beforeId?: number;
  /** At most this many (default 100). */
  limit?: number;
}

/** A queue's job counts by state. */
export interface QueueStats {
  /** Claimable (as of the last claim's promotion of due jobs). */
  ready: number;
  /** Waiting for `runAt`. */
  scheduled: number;
  /** Leased to a worker. */
  processing: number;
  dead: number;
  /** Finished and kept by the queue's retention. */
  completed: number;
}

/**
 * A job as stored (from `getJob`, `deadJobs` and `db.jobs()`); times in ms
 * since the epoch. A `completed` job is one its queue's retention keeps,
 * with its `result`.
 */
export interface JobInfo {
  id: number;
  queue: string;
  payload: any;
  state: 'ready' | 'scheduled' | 'processing' | 'dead' | 'completed';
  priority: number;
  runAtMs: number;
  attempts: number;
  maxAttempts: number;
  workerId: string | null;
  leaseUntilMs: number | null;
  expiresAtMs: number | null;
  key: string | null;
  lastError: string | null;
  createdAtMs: number;
  deadReason: string | null;
  diedAtMs: number | null;
  /** When its last claim started it. */
  startedAtMs: number | null;
  /** When it was acked (a completed job). */
  completedAtMs: number | null;
  /** The result saved with it (a completed job's), decoded; null if none. */
  result: any;
}

/** What enqueue options may name (`delay`, `expires`: deprecated names). */
const ENQUEUE_OPTIONS = ['tx', 'delayS', 'runAt', 'priority', 'expiresS', 'maxAttempts', 'key', 'delay', 'expires'];

/** Enqueue options for the native layer (a `Date` runAt becomes Unix seconds). */
function enqueueOpts(opts: EnqueueOptions | undefined, what = 'enqueue options'): N.EnqueueOptions | null {
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

function batchOpts(opts: Omit<EnqueueOptions, 'key'> | undefined): N.EnqueueOptions | null {
  const o = enqueueOpts(opts, 'enqueueMany options');
  if (o?.key != null) {
    throw new HonkerError('invalid argument `key`: an idempotency key names one job; it cannot be shared by a batch', 'invalid_argument');
  }
  return o;
}

/** The leases of claimed jobs, for `ackBatch`. */
function leasesOf(jobs: Job[]): N.LeaseData[] {
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

/** @internal */
export function jobInfo(d: N.JobData): JobInfo {
  return {
    id: d.id,
    queue: d.queue,
    payload: loads(d.payload),
    state: d.state as JobInfo['state'],
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
    startedAtMs: d.startedAtMs ?? null,
    completedAtMs: d.completedAtMs ?? null,
    result: d.result == null ? null : loads(d.result),
  };
}

/**
 * A claimed job. `ack`, `retry`, `fail` and `heartbeat` resolve to false
 * (and change nothing) once the lease has expired or been taken over.
 */
export class Job<T = any> {
  /** @internal */
  private readonly _db: Database;
  readonly id: number;
  readonly queue: string;
  readonly payload: T;
  readonly attempts: number;
  readonly maxAttempts: number;
  readonly priority: number;
  readonly runAtMs: number;
  readonly key: string | null;
  readonly lastError: string | null;
  readonly workerId: string;

  /** @internal */
  constructor(queue: Queue, data: N.JobData) {
    this._db = queue.db;
    this.id = data.id;
    this.queue = data.queue;
    this.payload = loads(data.payload);
    this.attempts = data.attempts;
    this.maxAttempts = data.maxAttempts;
    this.priority = data.priority;
    this.runAtMs = data.runAtMs;
    this.key = data.key ?? null;
    this.lastError = data.lastError ?? null;
    this.workerId = data.workerId ?? '';
  }

  /** Marks the job done (inside `tx` when given); false (changing nothing) once the lease is lost. */
  async ack(opts?: TxOption): Promise<boolean> {
    const tx = txOf(options('ack options', opts, ['tx']));
    return this._db._async(() => this._db._n.ack(false, this.id, this.workerId, this.attempts, tx), tx);
  }

  ackSync(opts?: TxOption): boolean {
    const tx = txOf(options('ack options', opts, ['tx']));
    return this._db._sync(() => this._db._n.ack(true, this.id, this.workerId, this.attempts, tx));
  }

  /** @internal */
  _lease(): N.LeaseData {
    return { id: this.id, worker: this.workerId, attempt: this.attempts };
  }

  /**
   * Gives the job back to run again after `delayS` (or the backoff), or to
   * the dead list once attempts are used up.
   */
  async retry(opts?: {
    delayS?: number;
    error?: string;
    /** @deprecated use `delayS` */
    delay?: number;
  }): Promise<boolean> {
    const o = options('retry options', opts, ['delayS', 'error', 'delay']);
    const delayS = renamed('retry options', o, 'delay', 'delayS');
    return this._db._async(() => this._db._n.retry(this.id, this.workerId, this.attempts, delayS, o.error ?? ''));
  }

  /**
   * Gives the job back untouched: ready again at once, in its old place, and
   * this claim's attempt is not counted (for a worker that will not start it).
   */
  async release(): Promise<boolean> {
    return this._db._async(() => this._db._n.release(false, this.id, this.workerId, this.attempts));
  }

  releaseSync(): boolean {
    return this._db._sync(() => this._db._n.release(true, this.id, this.workerId, this.attempts));
  }

  /** Moves the job to the dead list. */
  async fail(error = ''): Promise<boolean> {
    return this._db._async(() => this._db._n.fail(this.id, this.workerId, this.attempts, error));
  }

  /** Extends the lease to `extendS` seconds from now. */
  async heartbeat(extendS: number): Promise<boolean> {
    return this._db._async(() => this._db._n.heartbeat(this.id, this.workerId, this.attempts, extendS));
  }
}

/**
 * `for await (const job of queue.claim(worker, { signal }))`: waits for the
 * next job, woken by commits in any process. Aborting the signal (or
 * leaving the loop) ends it; a job claimed in the instant of the abort is
 * given back to the queue (released: its attempt is not counted).
 */
export class Claimer<T = any> extends Iteration<Job<T>> {
  /** @internal */
  private readonly _q: Queue;
  /** @internal */
  private readonly _worker: string;
  /** @internal */
  private readonly _timeoutS: number | undefined;
  /** @internal */
  private readonly _stop: N.NativeStop;

  /** @internal */
  constructor(queue: Queue, worker: string, opts?: WaitOptions) {
    const o = options('claim options', opts, ['signal', 'timeoutS', 'timeout']);
    const stop = queue.db._n.stopFlag();
    super(() => stop.stop(), o.signal);
    this._q = queue;
    this._worker = worker;
    this._timeoutS = renamed('claim options', o, 'timeout', 'timeoutS');
    this._stop = stop;
  }

  async next(): Promise<IteratorResult<Job<T>, undefined>> {
    if (this._done || this._stop.isStopped()) return this._finish();
    const q = this._q;
    const n = q.db._n;
    let data: N.JobData | null = null;
    try {
      // A due job is claimed on the pool, without starting a wait thread
      // (after the open transaction, if any: no pool thread waits for it).
      const due = await q.db._async(() => n.claimBatch(false, q.name, this._worker, 1, q.visibilityTimeoutS));
      if (due.length) data = due[0];
      if (data === null && !this._stop.isStopped()) {
        data = await q.db._async(() => n.claimNext(q.name, this._worker, this._stop, q.visibilityTimeoutS, q.maxAttempts, this._timeoutS));
      }
    } catch (e) {
      return this._failed(e);
    }
    if (data === null) return this._finish();
    if (this._stop.isStopped()) {
      // Aborted while this job was being claimed: give it back untouched
      // (the attempt not counted), don't drop it.
      const lease = data;
      await mapped(n.release(false, lease.id, lease.workerId ?? this._worker, lease.attempts)).catch(() => {});
      return this._finish();
    }
    return { done: false, value: new Job<T>(q, data) };
  }
}

/** A named queue. Defaults: 300 s lease, 3 attempts. */
export class Queue {
  readonly db: Database;
  readonly name: string;
  readonly visibilityTimeoutS: number;
  readonly maxAttempts: number;

  /** @internal */
  constructor(db: Database, name: string, opts?: QueueOptions) {
    const o = options('queue options', opts, ['visibilityTimeoutS', 'maxAttempts']);
    this.db = db;
    this.name = name;
    this.visibilityTimeoutS = o.visibilityTimeoutS ?? 300;
    this.maxAttempts = o.maxAttempts ?? 3;
  }

  /**
   * Registers `handler` as task `name` of this queue and returns the task:
   * `task.enqueue(payload)` runs it on a worker (`db.worker()`) of any
   * process, in any language with a task of this name. A name is
   * registered once per database.
   */
  task<P = any, R = any>(name: string, handler: TaskHandler<P, R>, opts?: TaskOptions): Task<P, R> {
    const t = new Task<P, R>(this, name, handler, opts);
    this.db._registerTask(t);
    return t;
  }

  /** @internal */
  _enqueueOpts(opts: EnqueueOptions | undefined): N.EnqueueOptions | null {
    return enqueueOpts(opts);
  }

  /** Adds a job (inside `opts.tx` when given); resolves to its id. */
  async enqueue(payload: unknown, opts?: EnqueueOptions): Promise<number> {
    const json = dumps(payload);
    const tx = txOf(opts);
    const o = enqueueOpts(opts);
    return this.db._async(() => this.db._n.enqueue(false, this.name, json, o, tx, this.maxAttempts), tx);
  }

  enqueueSync(payload: unknown, opts?: EnqueueOptions): number {
    const json = dumps(payload);
    const tx = txOf(opts);
    const o = enqueueOpts(opts);
    return this.db._sync(() => this.db._n.enqueue(true, this.name, json, o, tx, this.maxAttempts));
  }

  /** Adds many jobs with the same options, all or none; resolves to their ids. */
  async enqueueMany(payloads: unknown[], opts?: Omit<EnqueueOptions, 'key'>): Promise<number[]> {
    const json = arrayOf('payloads', payloads).map((p) => dumps(p));
    const tx = txOf(opts);
    const o = batchOpts(opts);
    return this.db._async(() => this.db._n.enqueueMany(false, this.name, json, o, tx, this.maxAttempts), tx);
  }

  enqueueManySync(payloads: unknown[], opts?: Omit<EnqueueOptions, 'key'>): number[] {
    const json = arrayOf('payloads', payloads).map((p) => dumps(p));
    const tx = txOf(opts);
    const o = batchOpts(opts);
    return this.db._sync(() => this.db._n.enqueueMany(true, this.name, json, o, tx, this.maxAttempts));
  }

  /** Claims one due job now, or resolves to null. */
  async claimOne<T = any>(worker: string): Promise<Job<T> | null> {
    const jobs = await this.claimBatch<T>(worker, 1);
    return jobs.length ? jobs[0] : null;
  }

  claimOneSync<T = any>(worker: string): Job<T> | null {
    const jobs = this.claimBatchSync<T>(worker, 1);
    return jobs.length ? jobs[0] : null;
  }

  /** Claims up to `n` due jobs now. */
  async claimBatch<T = any>(worker: string, n: number): Promise<Job<T>[]> {
    const data = await this.db._async(() => this.db._n.claimBatch(false, this.name, worker, n, this.visibilityTimeoutS));
    return data.map((d) => new Job<T>(this, d));
  }

  claimBatchSync<T = any>(worker: string, n: number): Job<T>[] {
    const data = this.db._sync(() => this.db._n.claimBatch(true, this.name, worker, n, this.visibilityTimeoutS));
    return data.map((d) => new Job<T>(this, d));
  }

  /** Waits for jobs, woken by commits in any process (see `Claimer`). */
  claim<T = any>(worker: string, opts?: WaitOptions): Claimer<T> {
    return new Claimer<T>(this, worker, opts);
  }

  /**
   * Acks, in one transaction, each of `jobs` (claimed `Job`s) whose claim
   * is still current, fenced exactly like `job.ack()`: a job whose lease
   * lapsed and was claimed again, even under the same worker name, is not
   * acked. Resolves to how many were acked.
   */
  async ackBatch(jobs: Job[], opts?: TxOption): Promise<number> {
    const leases = leasesOf(jobs);
    const tx = txOf(options('ackBatch options', opts, ['tx']));
    return this.db._async(() => this.db._n.ackBatch(false, leases, tx), tx);
  }

  ackBatchSync(jobs: Job[], opts?: TxOption): number {
    const leases = leasesOf(jobs);
    const tx = txOf(options('ackBatch options', opts, ['tx']));
    return this.db._sync(() => this.db._n.ackBatch(true, leases, tx));
  }

  async getJob(id: number): Promise<JobInfo | null> {
    const d = await this.db._async(() => this.db._n.getJob(false, id));
    return d == null ? null : jobInfo(d);
  }

  getJobSync(id: number): JobInfo | null {
    const d = this.db._sync(() => this.db._n.getJob(true, id));
    return d == null ? null : jobInfo(d);
  }

  /** Cancels a job that is not running; resolves to whether it was. */
  async cancel(id: number): Promise<boolean> {
    return this.db._async(() => this.db._n.cancel(id));
  }

  /**
   * Deletes every ready job of this queue (claimable now, delayed jobs whose
   * time has come included) and resolves to how many: for clearing a
   * backlog. Jobs scheduled for later, jobs a worker holds and dead jobs
   * stay; purged jobs are gone, not dead-lettered.
   */
  async purge(): Promise<number> {
    return this.db._async(() => this.db._n.purge(this.name));
  }

  /** The dead jobs of this queue, newest first. */
  async deadJobs(limit = 100): Promise<JobInfo[]> {
    const list = await this.db._async(() => this.db._n.deadJobs(this.name, limit));
    return list.map(jobInfo);
  }

  /** Puts a dead job back in the queue (fails with code `not_found` if it is not dead). */
  async requeueDead(id: number): Promise<void> {
    return this.db._async(() => this.db._n.requeueDead(id));
  }

  /**
   * Moves every dead job of this queue back, ready now with a fresh attempt
   * budget (only those dead for `reason`, such as `'failed'` or
   * `'lease_expired'`, if given), in one transaction. A job whose
   * idempotency key a live job holds stays dead. Resolves to how many moved.
   */
  async requeueDeadAll(reason?: string): Promise<number> {
    return this.db._async(() => this.db._n.requeueDeadAll(this.name, reason));
  }

  /**
   * Removes each live job of `ids` whatever its state (as `cancel` removes
   * one), in one transaction; resolves to how many.
   */
  async cancelMany(ids: Iterable<number>): Promise<number> {
    const list = [...ids];
    return this.db._async(() => this.db._n.cancelMany(list));
  }

  /**
   * Dead-letters this queue's jobs whose `expires` passed before a worker
   * started them; resolves to how many. (Claims do this on their way; this
   * is for queues nobody claims from.)
   */
  async sweepExpired(): Promise<number> {
    return this.db._async(() => this.db._n.sweepExpired(this.name));
  }

  /**
   * Pauses this queue in every process sharing the file: claims take
   * nothing until {@link Queue.resume} (enqueues, acks and the jobs already
   * running go on). Resolves to whether it was running.
   */
  async pause(): Promise<boolean> {
    return this.db._async(() => this.db._n.pause(false, this.name));
  }

  pauseSync(): boolean {
    return this.db._sync(() => this.db._n.pause(true, this.name));
  }

  /**
   * Resumes a paused queue; waiting workers in every process wake at once.
   * Resolves to whether it was paused.
   */
  async resume(): Promise<boolean> {
    return this.db._async(() => this.db._n.resume(false, this.name));
  }

  resumeSync(): boolean {
    return this.db._sync(() => this.db._n.resume(true, this.name));
  }

  /**
   * Limits how many of this queue's jobs are leased at once, across every
   * process (null: no limit, the default). Claims take at most the room
   * left; at least 1 (pause the queue to claim nothing).
   */
  async setMaxInFlight(maxInFlight: number | null): Promise<void> {
    return this.db._async(() => this.db._n.setMaxInFlight(false, this.name, maxInFlight ?? undefined));
  }

  setMaxInFlightSync(maxInFlight: number | null): void {
    this.db._sync(() => this.db._n.setMaxInFlight(true, this.name, maxInFlight ?? undefined));
  }

  /**
   * Limits how many of this queue's jobs are claimed per fixed window of
   * `perS` seconds (windows start at every multiple of it since the epoch),
   * across every process; null lifts it (the default). Claims take at most
   * what is left of the current window.
   */
  async setRateLimit(limit: number | null, perS?: number): Promise<void> {
    return this.db._async(() => this.db._n.setRateLimit(false, this.name, limit ?? undefined, perS));
  }

  setRateLimitSync(limit: number | null, perS?: number): void {
    this.db._sync(() => this.db._n.setRateLimit(true, this.name, limit ?? undefined, perS));
  }

  /**
   * Sets what of this queue's history is kept, for every process sharing
   * the file (both limits, replacing the old ones). By default an acked job
   * is deleted and a dead job stays until it is requeued. With `completed`,
   * acked jobs are kept (state `completed`, with their result, attempts,
   * timings and last error) within its limits; with `dead`, dead jobs past
   * its limits are pruned, oldest first. Each limit names `maxAgeS`,
   * `maxCount` or both.
   *
   * Pruning is automatic and amortized: it runs in the transactions that
   * add to a table, once the table is 1/64 past a limit, so a table holds
   * at most about `maxCount * 65 / 64` jobs and a job is kept at least
   * `maxAgeS`. `prune()` applies the limits exactly.
   */
  async setRetention(retention: QueueRetentionOptions): Promise<void> {
    const [completed, dead] = queueRetentionArgs(retention);
    return this.db._async(() => this.db._n.setQueueRetention(false, this.name, completed, dead));
  }

  setRetentionSync(retention: QueueRetentionOptions): void {
    const [completed, dead] = queueRetentionArgs(retention);
    this.db._sync(() => this.db._n.setQueueRetention(true, this.name, completed, dead));
  }

  /**
   * Turns this queue's lifecycle events on or off, for every process
   * sharing the file. While on, each change of its jobs' states
   * (`enqueued`, `started`, `completed`, `failed`, `retried`, `dead`,
   * `released`, `cancelled`) is published to the stream `EVENTS_STREAM`
   * (`'honker:events'`), keyed by the queue's name, in the transaction that
   * makes the change: read it with a saved offset
   * (`db.stream(EVENTS_STREAM).subscribe(consumer)`) and no event is
   * missed. Turning them on gives that stream a retention of 7 days if it
   * has none.
   */
  async setEvents(on: boolean): Promise<void> {
    return this.db._async(() => this.db._n.setEvents(false, this.name, on));
  }

  setEventsSync(on: boolean): void {
    this.db._sync(() => this.db._n.setEvents(true, this.name, on));
  }

  /** Applies this queue's retention now, exactly; resolves to how many completed and dead jobs were removed. */
  async prune(): Promise<number> {
    return this.db._async(() => this.db._n.pruneQueue(false, this.name));
  }

  pruneSync(): number {
    return this.db._sync(() => this.db._n.pruneQueue(true, this.name));
  }

  /** This queue's controls, as stored in the file. */
  async controls(): Promise<QueueControls> {
    return this.db._async(() => this.db._n.queueControls(false, this.name)).then(controls);
  }

  controlsSync(): QueueControls {
    return controls(this.db._sync(() => this.db._n.queueControls(true, this.name)));
  }

  /** This queue's job counts by state. */
  async stats(): Promise<QueueStats> {
    return this.db._async(() => this.db._n.queueStats(false, this.name));
  }

  statsSync(): QueueStats {
    return this.db._sync(() => this.db._n.queueStats(true, this.name));
  }

  /**
   * The earliest `runAt` of a scheduled job or lease end of a claimed one,
   * in epoch seconds; null if neither exists. It may be in the past:
   * something is claimable already.
   */
  async nextDeadline(): Promise<number | null> {
    return seconds(await this.db._async(() => this.db._n.nextDeadlineMs(false, this.name)));
  }

  nextDeadlineSync(): number | null {
    return seconds(this.db._sync(() => this.db._n.nextDeadlineMs(true, this.name)));
  }
}

