// Periodic tasks (cron) with leader election.
import { fix, HonkerError, sync } from './errors.js';
import { onAbort } from './iteration.js';
import { dumps, loads } from './json.js';
import { native } from './native.js';
import { options, seconds } from './options.js';
import type { Database } from './database.js';

export interface ScheduledTask {
  name: string;
  queue: string;
  /** Cron (5 or 6 fields), `@hourly` ... `@yearly`, or `@every 1m30s`. */
  schedule: string;
  payload?: unknown;
  priority?: number;
  expiresS?: number;
  /** IANA time zone (default UTC). */
  tz?: string;
}

export interface Schedule {
  name: string;
  queue: string;
  schedule: string;
  payload: any;
  priority: number;
  paused: boolean;
  nextFireAtMs: number;
  /** Why its last fire failed, if it did (it then moved on to its next boundary). */
  lastError: string | null;
}

/**
 * Periodic tasks: each fire enqueues one job. Cron (5 or 6 fields),
 * `@hourly` ... `@yearly`, `@every 1m30s`; UTC unless `tz` is given.
 */
export class Scheduler {
  /** @internal */
  private readonly _db: Database;

  /** @internal */
  constructor(db: Database) {
    this._db = db;
  }

  /** Registers or updates a task; re-adding an unchanged one keeps its next fire. */
  async add(task: ScheduledTask): Promise<void> {
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

  async remove(name: string): Promise<boolean> {
    return this._db._async(() => this._db._n.scheduleRemove(name));
  }

  async pause(name: string): Promise<void> {
    return this._db._async(() => this._db._n.schedulePause(name));
  }

  async resume(name: string): Promise<void> {
    return this._db._async(() => this._db._n.scheduleResume(name));
  }

  async list(): Promise<Schedule[]> {
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

  /** Fires what is due now (one catch-up fire after downtime). */
  async tick(): Promise<{ name: string; jobId: number; fireAtMs: number }[]> {
    return this._db._async(() => this._db._n.scheduleTick());
  }

  /** The next fire of any unpaused schedule, in epoch seconds; null if there is none. */
  async soonest(): Promise<number | null> {
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
   */
  async run(owner: string, opts?: { signal?: AbortSignal; lockTtlS?: number; onProblem?: (message: string) => void }): Promise<void> {
    const o = options('run options', opts, ['signal', 'lockTtlS', 'onProblem']);
    const onProblem = o.onProblem ?? ((message: string) => process.emitWarning(message, { code: 'HONKER_SCHEDULER' }));
    if (typeof onProblem !== 'function') throw new HonkerError('invalid argument `onProblem`: must be a function', 'invalid_argument');
    const stop = this._db._n.stopFlag();
    const unlisten = onAbort(o.signal, () => stop.stop());
    try {
      await this._db._async(() => this._db._n.runScheduler(owner, stop, o.lockTtlS, onProblem));
    } catch (e) {
      const err = fix(e);
      if (!(err instanceof HonkerError && err.code === 'closed')) throw err;
    } finally {
      unlisten();
    }
  }
}

/**
 * The first fire of `expr` strictly after `after` (a Date, or epoch seconds
 * floored to the millisecond; now when omitted), in epoch seconds. `expr` is
 * what `Scheduler.add` takes (cron with 5 or 6 fields, `@daily`, `@every
 * 1m30s`, an optional `CRON_TZ=Zone` prefix); the zone is `opts.tz`, else
 * UTC. Across DST changes a skipped local time fires at the first instant
 * after the gap, a repeated one once. Synchronous: it reads no file.
 * Throws with code `invalid_cron` or `invalid_timezone`.
 */
export function cronNext(expr: string, after?: Date | number | null, opts?: { tz?: string | null }): number {
  const afterS = after == null ? Date.now() / 1000 : after instanceof Date ? after.getTime() / 1000 : after;
  const o = options('cronNext options', opts, ['tz']);
  return sync(() => native.cronNext(expr, afterS, opts == null ? null : { tz: o.tz ?? undefined }) / 1000);
}
