// Tasks and workers: the engine's worker runtime claims, renews leases,
// times out, retries and shuts down; this file only runs the handlers.
import { HonkerError, mapped, sync } from './errors.js';
import { onAbort } from './iteration.js';
import { dumps, loads } from './json.js';
import type * as N from '../native.js';
import { native } from './native.js';
import { options } from './options.js';
import { traced } from './otel.js';

const VERSION: string = native.version();
import type { EnqueueOptions, Queue } from './queue.js';
import { txOf } from './transaction.js';
import type { Database } from './database.js';

/** A retry delay in seconds as a function of the attempt that failed (1, 2, ...). */
export type RetryFunction = (attempt: number) => number;

/**
 * A retry policy: how long a failed job waits before its next attempt.
 * The default is `Retry.exponential()`: 1 s, 2 s, 4 s, ... up to an hour,
 * with jitter.
 */
export class Retry {
  /** @internal */
  readonly _spec: N.RetrySpec;

  /** @internal */
  private constructor(spec: N.RetrySpec) {
    this._spec = spec;
  }

  /** `baseS * 2^(attempt-1)`, at most `maxS`; with `jitter`, a random part of it (defaults 1 s, 3600 s, true). */
  static exponential(opts?: { baseS?: number; maxS?: number; jitter?: boolean }): Retry {
    const o = options('Retry.exponential options', opts, ['baseS', 'maxS', 'jitter']);
    return new Retry({ kind: 'exponential', baseS: o.baseS ?? 1, maxS: o.maxS ?? 3600, jitter: o.jitter ?? true });
  }

  /** The same delay every time. */
  static fixed(delayS: number): Retry {
    return new Retry({ kind: 'fixed', baseS: delayS, maxS: 0, jitter: false });
  }
}

export interface TaskOptions {
  /** Seconds a handler may run before its signal aborts and the job is retried (default: no limit). */
  timeoutS?: number;
  /** This task's retry policy (default: the worker's). */
  retry?: Retry | RetryFunction;
  /** Attempts before the job goes to the dead list (default: the queue's). */
  maxAttempts?: number;
  /** Save what the handler returns as the job's result (default true). */
  storeResult?: boolean;
  /** How long a saved result is kept (default 86400 s). */
  resultTtlS?: number;
}

/** Why a running handler was told to stop. */
export type CancelReason = 'timeout' | 'lease_lost' | 'shutdown';

/**
 * What a handler gets beside its payload: the job, the whole envelope's
 * `args` and `kwargs`, and `signal`, aborted when the handler must stop
 * (its timeout passed, its lease was lost, or the worker shut down and the
 * grace period ended).
 */
export class TaskContext {
  readonly id: number;
  readonly task: string;
  readonly queue: string;
  /** This attempt's number (1 on the first run). */
  readonly attempt: number;
  readonly maxAttempts: number;
  /** The envelope's positional arguments (the payload is `args[0]`). */
  readonly args: unknown[];
  /** The envelope's named arguments (a Python caller's keyword arguments). */
  readonly kwargs: Record<string, unknown>;
  /** @internal */
  private _ac: AbortController | null = null;
  /** @internal */
  private _reason: CancelReason | null = null;

  /** @internal */
  constructor(a: N.ActivationData, args: unknown[], kwargs: Record<string, unknown>) {
    this.id = a.id;
    this.task = a.task;
    this.queue = a.queue;
    this.attempt = a.attempt;
    this.maxAttempts = a.maxAttempts;
    this.args = args;
    this.kwargs = kwargs;
  }

  /** Aborted when the handler must stop; its `reason` says why (a `TimeoutError` or an `AbortError`). */
  get signal(): AbortSignal {
    if (this._ac === null) {
      this._ac = new AbortController();
      if (this._reason !== null) this._ac.abort(this._abortReason());
    }
    return this._ac.signal;
  }

  /** Why the handler was told to stop, or null while it may run. */
  get cancelReason(): CancelReason | null {
    return this._reason;
  }

  /** @internal */
  _abort(reason: CancelReason): void {
    if (this._reason !== null) return;
    this._reason = reason;
    this._ac?.abort(this._abortReason());
  }

  /** @internal */
  private _abortReason(): DOMException {
    const why = this._reason ?? 'shutdown';
    const text = {
      timeout: 'its timeout passed; the job is retried',
      lease_lost: 'its lease was lost; another worker may run the job',
      shutdown: 'the worker shut down; the job is released',
    }[why];
    return new DOMException(`task ${this.task} (job ${this.id}) must stop: ${text}`, why === 'timeout' ? 'TimeoutError' : 'AbortError');
  }
}

/** A task's handler: the payload (`args[0]` of the envelope) and the context. Its return value is the job's result. */
export type TaskHandler<P = any, R = any> = (payload: P, ctx: TaskContext) => R | Promise<R>;

/** An enqueued run of a task: its job `id`, and its result once it ends. */
export class TaskHandle<R = any> {
  readonly id: number;
  /** @internal */
  private readonly _db: Database;

  /** @internal */
  constructor(db: Database, id: number) {
    this._db = db;
    this.id = id;
  }

  /**
   * Waits (woken by the commit that ends the job) for the handler's return
   * value: undefined if it returned nothing or the task stores no result.
   * Rejects with code `job_failed` if the job went to the dead list, with a
   * `TimeoutError` if it has not ended within `timeoutS`, and with the
   * signal's reason once `signal` aborts.
   */
  async result(opts?: { timeoutS?: number; signal?: AbortSignal }): Promise<R | undefined> {
    const o = options('result options', opts, ['timeoutS', 'signal']);
    o.signal?.throwIfAborted();
    const n = this._db._n;
    const stop = n.stopFlag();
    const unlisten = onAbort(o.signal, () => stop.stop());
    let got: N.ResultData;
    try {
      got = await this._db._async(() => n.waitResult(this.id, stop, o.timeoutS));
    } finally {
      unlisten();
    }
    o.signal?.throwIfAborted();
    if (!got.done) {
      throw new DOMException(`job ${this.id} did not finish within ${o.timeoutS} s`, 'TimeoutError');
    }
    return got.value == null ? undefined : loads(got.value);
  }
}

/** What a task's options may name. */
const TASK_OPTIONS = ['timeoutS', 'retry', 'maxAttempts', 'storeResult', 'resultTtlS'];

/**
 * A handler registered under a name on a queue (`queue.task(name, handler)`):
 * `enqueue(payload)` runs it on a worker of any process, in any language
 * that has a task of this name.
 */
export class Task<P = any, R = any> {
  readonly queue: Queue;
  readonly name: string;
  readonly handler: TaskHandler<P, R>;
  readonly timeoutS: number | null;
  readonly retry: Retry | RetryFunction | null;
  readonly maxAttempts: number | null;
  readonly storeResult: boolean;
  readonly resultTtlS: number;

  /** @internal */
  constructor(queue: Queue, name: string, handler: TaskHandler<P, R>, opts?: TaskOptions) {
    const o = options('task options', opts, TASK_OPTIONS);
    if (typeof handler !== 'function') {
      throw new HonkerError(`invalid argument \`handler\`: task ${JSON.stringify(name)} needs a function (payload, ctx) => result`, 'invalid_argument');
    }
    if (o.retry != null && !(o.retry instanceof Retry) && typeof o.retry !== 'function') {
      throw new HonkerError(
        'invalid argument `retry`: must be Retry.exponential(...), Retry.fixed(...) or a function (attempt) => seconds',
        'invalid_argument',
      );
    }
    // The engine's rule for a task name (what an envelope may carry).
    sync(() => native.taskEnvelope(name, 'null'));
    this.queue = queue;
    this.name = name;
    this.handler = handler;
    this.timeoutS = o.timeoutS ?? null;
    this.retry = o.retry ?? null;
    this.maxAttempts = o.maxAttempts ?? null;
    this.storeResult = o.storeResult ?? true;
    this.resultTtlS = o.resultTtlS ?? 86400;
  }

  /**
   * Enqueues a run with `payload` (JSON-encodable), inside `opts.tx` when
   * given; resolves to its handle.
   */
  async enqueue(payload?: P, opts?: EnqueueOptions): Promise<TaskHandle<R>> {
    const q = this.queue;
    const [json, o, tx] = this._job(payload, opts);
    const id = await q.db._async(() => q.db._n.enqueue(false, q.name, json, o, tx, q.maxAttempts), tx);
    return new TaskHandle<R>(q.db, id);
  }

  enqueueSync(payload?: P, opts?: EnqueueOptions): TaskHandle<R> {
    const q = this.queue;
    const [json, o, tx] = this._job(payload, opts);
    const id = q.db._sync(() => q.db._n.enqueue(true, q.name, json, o, tx, q.maxAttempts));
    return new TaskHandle<R>(q.db, id);
  }

  /** @internal */
  private _job(payload: P | undefined, opts: EnqueueOptions | undefined): [string, N.EnqueueOptions | null, N.NativeTx | null] {
    const json = sync(() => native.taskEnvelope(this.name, dumps(payload)));
    let o = this.queue._enqueueOpts(opts);
    if (this.maxAttempts != null && o?.maxAttempts == null) o = { ...o, maxAttempts: this.maxAttempts };
    return [json, o, txOf(opts)];
  }

  /** @internal */
  _spec(): N.TaskSpec {
    return {
      name: this.name,
      timeoutS: this.timeoutS ?? undefined,
      retry: this.retry instanceof Retry ? this.retry._spec : undefined,
      storeResult: this.storeResult,
      resultTtlS: this.resultTtlS,
    };
  }

  /**
   * The delay a retry function gives; undefined (the worker's policy) for
   * a policy object, or when the function throws or gives no valid delay.
   * @internal
   */
  _retryIn(attempt: number): number | undefined {
    if (typeof this.retry !== 'function') return undefined;
    try {
      const s = this.retry(attempt);
      if (typeof s === 'number' && Number.isFinite(s) && s >= 0) return s;
      process.emitWarning(`honker: task ${this.name}'s retry function returned ${String(s)}, not seconds >= 0; the worker's policy is used`);
    } catch (e) {
      process.emitWarning(`honker: task ${this.name}'s retry function threw (${errorText(e)}); the worker's policy is used`);
    }
    return undefined;
  }
}

export interface WorkerOptions {
  /** The queues to take jobs from (default: every queue with a registered task). */
  queues?: string[];
  /** Jobs run at once (default 1). */
  concurrency?: number;
  /** Aborting it stops the worker: `run()` settles once it has drained. */
  signal?: AbortSignal;
  /** The name leases are taken under (default `worker-<pid>-<n>`). */
  workerId?: string;
  /** A job's lease, renewed every third of it while its handler runs (default 30 s). */
  leaseS?: number;
  /** How long a stop waits for running handlers before releasing their jobs (default 10 s). */
  graceS?: number;
  /** The retry policy of tasks without their own (default `Retry.exponential()`). */
  retry?: Retry;
  /** A job of a task no handler here has: `'deadLetter'` (default) or `'leave'` it for another worker. */
  unknownTasks?: 'deadLetter' | 'leave';
  /** With `unknownTasks: 'leave'`, when the job is due again (default 5 s). */
  leaveUnknownS?: number;
  /**
   * When handlers are quick the worker claims ahead and acks together, up
   * to this many jobs per commit (default 32; a result is visible at most
   * 5 ms after its handler returned). `1`: one commit per job.
   */
  batch?: number;
}

const WORKER_OPTIONS = ['queues', 'concurrency', 'signal', 'workerId', 'leaseS', 'graceS', 'retry', 'unknownTasks', 'leaveUnknownS', 'batch'];

/** How a handler ended: [ok, result JSON or error text, retry delay]. */
type Ended = [boolean, string | undefined, number | undefined];

function errorText(e: unknown): string {
  if (e instanceof Error) return e.message ? `${e.name}: ${e.message}` : e.name;
  return String(e);
}

function isThenable(x: unknown): x is PromiseLike<unknown> {
  return x != null && typeof (x as { then?: unknown }).then === 'function';
}

/**
 * Runs the tasks registered on a database, up to `concurrency` at once.
 * Handlers run on the event loop; claims, lease renewals, timeouts and the
 * SQL run off it. `run()` runs until the signal aborts (or `stop()`), then
 * drains; `drain()` runs what is due and returns (for tests).
 */
export class Worker {
  readonly db: Database;
  readonly queues: readonly string[];
  readonly concurrency: number;
  /** @internal */
  private readonly _o: Omit<WorkerOptions, 'queues' | 'concurrency' | 'signal'>;
  /** @internal */
  private readonly _signal: AbortSignal | undefined;
  /** @internal */
  private _running: N.NativeWorker | null = null;
  /** @internal */
  private _stopRequested = false;
  /** @internal */
  private _tasks: Map<string, Task> = new Map();

  /** @internal */
  constructor(db: Database, opts?: WorkerOptions) {
    const o = options('worker options', opts, WORKER_OPTIONS);
    if (o.unknownTasks != null && o.unknownTasks !== 'deadLetter' && o.unknownTasks !== 'leave') {
      throw new HonkerError("invalid argument `unknownTasks`: must be 'deadLetter' or 'leave'", 'invalid_argument');
    }
    if (o.retry != null && !(o.retry instanceof Retry)) {
      throw new HonkerError('invalid argument `retry`: must be Retry.exponential(...) or Retry.fixed(...)', 'invalid_argument');
    }
    this.db = db;
    this.queues = o.queues ?? [...new Set([...db._tasks.values()].map((t) => t.queue.name))].sort();
    this.concurrency = o.concurrency ?? 1;
    this._signal = o.signal;
    this._o = o;
    // Checked now, so a bad option fails here rather than in run().
    this._native(this.concurrency).close();
  }

  /** @internal */
  private _native(concurrency: number): N.NativeWorker {
    this._tasks = new Map(this.db._tasks);
    const o = this._o;
    const spec: N.WorkerSpec = {
      queues: [...this.queues],
      concurrency,
      workerId: o.workerId,
      leaseS: o.leaseS ?? 30,
      graceS: o.graceS ?? 10,
      retry: o.retry?._spec,
      leaveUnknownS: o.unknownTasks === 'leave' ? o.leaveUnknownS ?? 5 : undefined,
      batch: o.batch ?? 32,
    };
    const tasks = [...this._tasks.values()].map((t) => t._spec());
    return this.db._sync(() => this.db._n.worker(spec, tasks));
  }

  /**
   * Runs until the signal aborts or `stop()` is called, then drains:
   * nothing more is claimed, running handlers get `graceS` to finish, then
   * their signals abort and their jobs are released without using an
   * attempt. Resolves after the drain; rejects if the engine failed.
   */
  async run(): Promise<void> {
    if (this._running !== null) throw new HonkerError('this worker is already running', 'invalid_argument');
    const native = this._native(this.concurrency);
    this._running = native;
    const flag = this.db._n.stopFlag();
    const running = new Map<number, TaskContext>();
    let failure: unknown = null;
    const unlisten = onAbort(this._signal, () => this.stop());
    try {
      if (this._stopRequested) native.shutdown();
      for (;;) {
        const got = await mapped(native.poll(flag));
        if (got.kind === 'done') break;
        if (got.kind === 'run' && got.job) {
          this._chain(native, got.job, running).catch((e: unknown) => {
            failure ??= e;
            native.shutdown();
          });
        } else if (got.kind === 'cancel' && got.id != null) {
          running.get(got.id)?._abort(got.reason as CancelReason);
        }
      }
    } finally {
      unlisten();
      native.close();
      this._running = null;
      this._stopRequested = false;
    }
    if (failure !== null) throw failure;
  }

  /**
   * Runs every job that is due now, one at a time, and resolves to how
   * many ran once none is due (delayed jobs and retries waiting out their
   * backoff are left): for tests.
   */
  async drain(): Promise<number> {
    const native = this._native(1);
    const flag = this.db._n.stopFlag();
    const running = new Map<number, TaskContext>();
    const events = (async () => {
      for (;;) {
        const e = await mapped(native.nextEvent(flag));
        if (e === null) return;
        if (e.id != null) running.get(e.id)?._abort(e.reason as CancelReason);
      }
    })();
    let ran = 0;
    try {
      for (;;) {
        const a = await mapped(native.drainNext());
        if (a === null) break;
        ran += await this._chain(native, a, running);
      }
    } finally {
      flag.stop();
      await events.catch(() => {});
      native.close();
    }
    return ran;
  }

  /**
   * Asks a running worker to stop (what aborting its signal does): it
   * claims nothing more, lets running handlers finish for `graceS`, then
   * releases the rest, and `run()` resolves.
   */
  stop(): void {
    this._stopRequested = true;
    this._running?.shutdown();
  }

  /**
   * Runs `a`, then each job its completion claimed, until none is due.
   * @internal
   */
  private async _chain(native: N.NativeWorker, first: N.ActivationData, running: Map<number, TaskContext>): Promise<number> {
    let a: N.ActivationData | null = first;
    let ran = 0;
    while (a !== null) {
      const [ok, value, retryIn] = await this._run(a, running);
      ran += 1;
      // A success whose next job was claimed ahead needs no I/O: no hop to
      // the libuv pool.
      const next: N.ActivationData | null = ok ? native.completeBuffered(a.id, value) : null;
      a = next ?? (await mapped(native.complete(a.id, ok, value, retryIn, true, false)));
    }
    return ran;
  }

  /** @internal One attempt, traced when OpenTelemetry is installed. */
  private _run(a: N.ActivationData, running: Map<number, TaskContext>): Promise<Ended> {
    const task = this._tasks.get(a.task) as Task;
    return traced(VERSION, task.queue.name, a.task, a.id, a.attempt, () => this._attempt(a, running), (e) => e[1]);
  }

  /** @internal */
  private async _attempt(a: N.ActivationData, running: Map<number, TaskContext>): Promise<Ended> {
    // The engine hands out only jobs of tasks it was given.
    const task = this._tasks.get(a.task) as Task;
    let args: unknown[] = [];
    let kwargs: Record<string, unknown> = {};
    try {
      const env = JSON.parse(a.payload);
      if (Array.isArray(env.args)) args = env.args;
      if (env.kwargs != null && typeof env.kwargs === 'object') kwargs = env.kwargs;
    } catch (e) {
      return [false, `the task envelope is not JSON: ${errorText(e)}`, undefined];
    }
    const ctx = new TaskContext(a, args, kwargs);
    running.set(a.id, ctx);
    let out: unknown;
    try {
      out = task.handler(args[0], ctx);
      if (isThenable(out)) out = await out;
    } catch (e) {
      return [false, errorText(e), task._retryIn(a.attempt)];
    } finally {
      running.delete(a.id);
    }
    if (out === undefined || out === null || !task.storeResult) return [true, undefined, undefined];
    let text: string | undefined;
    try {
      text = JSON.stringify(out);
    } catch (e) {
      return [false, `the task's result is not JSON-encodable: ${errorText(e)}`, task._retryIn(a.attempt)];
    }
    if (text === undefined) return [false, `the task's result is not JSON-encodable: ${typeof out}`, task._retryIn(a.attempt)];
    return [true, text, undefined];
  }
}
