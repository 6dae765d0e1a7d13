// Runs tests/vectors/*.json through the honker Node package's public API
// (the package in node/), each file on a fresh temporary database. The
// Python, SQL and Rust runners run the same files; see tests/README.md for
// the format, the op table and the report.
//
//   node tests/runners/vectors.mjs [FILE.json ...]
//
// `cron_next` steps go through honker.cronNext, which works in epoch
// seconds like the rest of the package: the runner passes `after_ms / 1000`
// and multiplies the answer back (exact for the files' whole-second
// instants). A forged lease (one no claim returned) cannot be expressed:
// Job.ack, retry and fail act on their own claim's lease, so such steps
// print a SKIP line and are counted, never passed silently.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const TESTS = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const VECTORS = path.join(TESTS, 'vectors');
const require = createRequire(path.join(path.dirname(TESTS), 'node', 'package.json'));
/** @type {typeof import('../../node/dist/index.js')} */
const honker = require('./dist/index.js');

const OPS = new Set([
  'enqueue',
  'claim',
  'ack',
  'release',
  'retry',
  'fail',
  'dead_jobs',
  'requeue_dead',
  'get_job_state',
  'cancel',
  'purge',
  'pause',
  'resume',
  'set_max_in_flight',
  'set_rate_limit',
  'queues',
  'streams',
  'list_jobs',
  'requeue_dead_all',
  'cancel_many',
  'queue_controls',
  'set_retention',
  'prune',
  'set_events',
  'events',
  'rate_limit',
  'cron_next',
  'publish',
  'read_since',
  'save_offset',
  'get_offset',
  'lock_acquire',
  'lock_release',
  'ack_batch',
  'schedule_add',
  'schedule_tick',
  'schedule_error',
  'execute',
]);

const FORGED =
  'not available in node: a forged lease (one no claim returned) cannot be expressed; ' +
  "Job.ack/retry/fail always act on their own claim's lease";

/** The binding cannot do this step; the message says why. */
class Skip extends Error {}
/** The result differs from the expectation. */
class Mismatch extends Error {}
/** The vector file itself is wrong (unknown op, unknown label...). */
// With a PostgreSQL URL here, every vector file runs on PostgreSQL (in a
// schema of its own, dropped after), not on a SQLite file.
const POSTGRES = process.env.HONKER_VECTORS_POSTGRES;
let schema = null;

/** An execute step's statement for the database it runs on (see tests/README.md). */
function sqlOf(a) {
  if (!POSTGRES) return arg(a, 'sql');
  if (typeof a.sql_postgres !== 'string') throw new VectorError('this execute step has no sql_postgres for PostgreSQL');
  return a.sql_postgres.replaceAll('{schema}', schema);
}

class VectorError extends Error {}

/**
 * JSON with object keys sorted: a stable text to show and compare values.
 * @param {unknown} value
 * @returns {string}
 */
function show(value) {
  return JSON.stringify(value, (_k, v) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, v[k]]))
      : v) ?? 'undefined';
}

/**
 * Deep equality of JSON values (true is not 1; key order does not matter).
 * @param {unknown} a
 * @param {unknown} b
 */
function same(a, b) {
  return show(a) === show(b);
}

/**
 * @param {unknown} v
 * @returns {v is Record<string, any>}
 */
function isObject(v) {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/**
 * Whether an expectation is `{"error": code}`; returns the code.
 * @param {unknown} expect
 * @returns {string | null}
 */
function errorExpectation(expect) {
  if (isObject(expect) && Object.keys(expect).length === 1 && 'error' in expect) return String(expect.error);
  return null;
}

/**
 * Compares the fields `expect` names against `got`.
 * @param {Record<string, unknown>} expect
 * @param {Record<string, unknown>} got
 * @param {string} what
 */
function subset(expect, got, what) {
  for (const [k, v] of Object.entries(expect)) {
    if (!(k in got)) throw new VectorError(`${what} has no field ${JSON.stringify(k)}`);
    if (!same(got[k], v)) throw new Mismatch(`${what}.${k}: expected ${show(v)}, got ${show(got[k])}`);
  }
}

/**
 * @param {Record<string, any>} a
 * @param {string} name
 */
function arg(a, name) {
  if (!(name in a)) throw new VectorError(`missing argument ${JSON.stringify(name)}`);
  return a[name];
}

class Runner {
  /** @param {string} dbPath */
  constructor(dbPath) {
    this.db = honker.open(dbPath);
    /** @type {Map<string, number>} label -> id, offset or token */
    this.labels = new Map();
    /** @type {Map<number, string>} job id -> its first label */
    this.jobLabels = new Map();
    /** @type {Map<string, import('../../node/dist/index.js').Job>} lease key -> the claim's handle */
    this.jobs = new Map();
    /** @type {Map<number, import('../../node/index.js').Lock>} */
    this.locks = new Map();
  }

  /**
   * An id or offset argument: an integer, or the label of one.
   * @param {unknown} value
   * @returns {number}
   */
  ref(value) {
    if (typeof value === 'string') {
      const v = this.labels.get(value);
      if (v === undefined) throw new VectorError(`unknown label ${JSON.stringify(value)}`);
      return v;
    }
    if (typeof value !== 'number' || !Number.isInteger(value)) {
      throw new VectorError(`expected an integer or a label, got ${show(value)}`);
    }
    return value;
  }

  /** @param {number} id */
  jobName(id) {
    return this.jobLabels.get(id) ?? `#${id}`;
  }

  /**
   * The handle the claim that returned this step's lease gave out.
   * @param {Record<string, any>} a
   */
  handle(a) {
    const lease = [this.ref(arg(a, 'job')), String(arg(a, 'worker')), Number(arg(a, 'attempt'))];
    const key = JSON.stringify(lease);
    const forged = a.forged === true;
    const claimed = this.jobs.has(key);
    if (forged && claimed) throw new VectorError(`lease ${key} is marked forged but a claim returned it`);
    if (!forged && !claimed) {
      throw new VectorError(`no claim returned lease ${key}; mark it "forged": true if that is the point`);
    }
    if (forged) throw new Skip(FORGED);
    return /** @type {import('../../node/dist/index.js').Job} */ (this.jobs.get(key));
  }

  /** @param {Record<string, any>} a */
  queue(a) {
    return this.db.queue(a.queue ?? 'default');
  }

  /** @param {Record<string, any>} a */
  stream(a) {
    return this.db.stream(arg(a, 'stream'));
  }

  /**
   * Runs one op through the package; returns its result (ids, offsets and
   * tokens as numbers; claim as [id, worker, attempt] leases).
   * @param {string} op
   * @param {Record<string, any>} a
   * @returns {Promise<any>}
   */
  async call(op, a) {
    switch (op) {
      case 'enqueue': {
        /** @type {import('../../node/index.js').EnqueueOptions} */
        const opts = {};
        if ('run_at' in a) opts.runAt = a.run_at;
        if ('delay_s' in a) opts.delayS = a.delay_s;
        if ('priority' in a) opts.priority = a.priority;
        if ('max_attempts' in a) opts.maxAttempts = a.max_attempts;
        if ('key' in a) opts.key = a.key;
        return this.queue(a).enqueue(arg(a, 'payload'), opts);
      }
      case 'claim': {
        const worker = String(arg(a, 'worker'));
        const jobs = await this.queue(a).claimBatch(worker, arg(a, 'n'));
        return jobs.map((job) => {
          const lease = [job.id, worker, job.attempts];
          this.jobs.set(JSON.stringify(lease), job);
          return lease;
        });
      }
      case 'ack':
        return this.handle(a).ack();
      case 'release':
        return this.handle(a).release();
      case 'retry': {
        const job = this.handle(a);
        return job.retry({ delayS: arg(a, 'delay_s'), error: a.error ?? '' });
      }
      case 'fail': {
        const job = this.handle(a);
        return job.fail(a.error ?? '');
      }
      case 'dead_jobs':
        return (await this.queue(a).deadJobs(a.limit ?? 100)).map((j) => j.id);
      case 'requeue_dead':
        await this.queue(a).requeueDead(this.ref(arg(a, 'job')));
        return true;
      case 'get_job_state': {
        const j = await this.queue(a).getJob(this.ref(arg(a, 'job')));
        if (j === null) return null;
        return {
          queue: j.queue,
          payload: j.payload,
          state: j.state,
          priority: j.priority,
          attempts: j.attempts,
          max_attempts: j.maxAttempts,
          worker_id: j.workerId,
          key: j.key,
          last_error: j.lastError,
          dead_reason: j.deadReason,
        };
      }
      case 'cancel':
        return this.queue(a).cancel(this.ref(arg(a, 'job')));
      case 'purge':
        return this.queue(a).purge();
      case 'queues':
        return (await this.db.queues()).map((q) => ({ name: q.name, ...q.stats, paused: q.controls.paused }));
      case 'streams':
        return (await this.db.streams()).map((s) => ({
          name: s.name,
          lags: Object.fromEntries(Object.entries(s.consumers).map(([c, v]) => [c, v.lag])),
        }));
      case 'list_jobs': {
        const filter = { queue: a.queue, state: a.state, task: a.task, key: a.key, limit: a.limit };
        if ('before' in a) filter.beforeId = this.ref(a.before);
        return (await this.db.jobs(filter)).map((j) => j.id);
      }
      case 'requeue_dead_all':
        return this.queue(a).requeueDeadAll(a.reason ?? undefined);
      case 'cancel_many':
        return this.queue(a).cancelMany(arg(a, 'jobs').map((j) => this.ref(j)));
      case 'pause':
        return this.queue(a).pause();
      case 'resume':
        return this.queue(a).resume();
      case 'set_max_in_flight':
        await this.queue(a).setMaxInFlight(a.max);
        return true;
      case 'set_rate_limit':
        await this.queue(a).setRateLimit(a.limit, a.per_s);
        return true;
      case 'queue_controls': {
        const c = await this.queue(a).controls();
        const rate = c.rateLimit && { limit: c.rateLimit.limit, per_s: c.rateLimit.perS };
        const keep = (r) => r && { max_age_s: r.maxAgeS, max_count: r.maxCount };
        const retention = { completed: keep(c.retention.completed), dead: keep(c.retention.dead) };
        return { paused: c.paused, max_in_flight: c.maxInFlight, rate_limit: rate, retention, events: c.events };
      }
      case 'set_events':
        await this.queue(a).setEvents(arg(a, 'on'));
        return true;
      case 'events':
        return (await this.db.stream(honker.EVENTS_STREAM).readSince(0, 1000)).map((e) => [e.payload.type, e.payload.job_id]);
      case 'set_retention': {
        const keep = (r) => r && { maxAgeS: r.max_age_s, maxCount: r.max_count };
        await this.queue(a).setRetention({ completed: keep(a.completed), dead: keep(a.dead) });
        return true;
      }
      case 'prune':
        return this.queue(a).prune();
      case 'rate_limit':
        return this.db.tryRateLimit(arg(a, 'key'), arg(a, 'limit'), arg(a, 'per_s'));
      case 'cron_next': {
        const opts = 'tz' in a ? { tz: a.tz } : undefined;
        return Math.round(honker.cronNext(arg(a, 'expr'), arg(a, 'after_ms') / 1000, opts) * 1000);
      }
      case 'publish':
        return this.stream(a).publish(arg(a, 'payload'), 'key' in a ? { key: a.key } : undefined);
      case 'read_since': {
        const events = await this.stream(a).readSince(this.ref(arg(a, 'offset')), a.limit ?? 100);
        return events.map((e) => ({ offset: e.offset, key: e.key, payload: e.payload }));
      }
      case 'save_offset':
        return this.stream(a).saveOffset(arg(a, 'consumer'), this.ref(arg(a, 'offset')));
      case 'get_offset':
        return this.stream(a).getOffset(arg(a, 'consumer'));
      case 'lock_acquire': {
        const lock = await this.db.tryLock(arg(a, 'name'), arg(a, 'owner'), arg(a, 'ttl_s'));
        if (lock === null) return null;
        this.locks.set(lock.fencingToken, lock);
        return lock.fencingToken;
      }
      case 'lock_release': {
        const token = this.ref(arg(a, 'lock'));
        const lock = this.locks.get(token);
        if (!lock) throw new VectorError(`no held lock with token ${token}`);
        return lock.release();
      }
      case 'ack_batch': {
        const items = arg(a, 'leases');
        const jobs = items.map((/** @type {Record<string, any>} */ x) => this.handle(x));
        return this.db.queue('unused').ackBatch(jobs);
      }
      case 'schedule_add':
        await this.db.scheduler().add({ name: arg(a, 'name'), queue: arg(a, 'queue'), schedule: arg(a, 'cron'), payload: arg(a, 'payload') });
        return true;
      case 'schedule_tick':
        return (await this.db.scheduler().tick()).map((f) => f.name);
      case 'schedule_error': {
        const prefix = String(arg(a, 'name_prefix'));
        const found = (await this.db.scheduler().list()).filter((x) => x.name.startsWith(prefix));
        if (found.length !== 1) throw new VectorError(`${found.length} schedules start with ${JSON.stringify(prefix)}`);
        return found[0].lastError !== null;
      }
      case 'execute':
        return this.db.execute(sqlOf(a), a.params ?? []);
      default:
        throw new VectorError(`unknown op ${JSON.stringify(op)}`);
    }
  }

  /**
   * `{"after": label}`, true, false, or an exact integer or label.
   * @param {unknown} expect
   * @param {number | null} got
   * @param {string} what
   */
  expectAfter(expect, got, what) {
    if (isObject(expect) && Object.keys(expect).length === 1 && 'after' in expect) {
      const floor = this.ref(expect.after);
      if (got === null || !(got > floor)) {
        throw new Mismatch(`expected ${what} greater than ${expect.after} (${floor}), got ${got}`);
      }
    } else if (typeof expect === 'boolean') {
      if ((got !== null) !== expect) throw new Mismatch(`expected ${expect}, got ${what} ${got}`);
    } else if (typeof expect === 'number' || typeof expect === 'string') {
      const want = this.ref(expect);
      if (got !== want) throw new Mismatch(`expected ${what} ${show(expect)} (${want}), got ${got}`);
    } else {
      throw new VectorError(`bad expectation ${show(expect)}`);
    }
  }

  /** @param {Record<string, any>} step */
  async step(step) {
    const op = step.op;
    if (!OPS.has(op)) throw new VectorError(`unknown op ${JSON.stringify(op)}`);
    const args = step.args ?? {};
    const hasExpect = 'expect' in step;
    const expect = step.expect;
    const label = step.as;
    const wantError = errorExpectation(expect);
    let got;
    try {
      got = await this.call(op, args);
    } catch (e) {
      if (!(e instanceof honker.HonkerError)) throw e;
      if (wantError === null) throw new Mismatch(`unexpected error ${JSON.stringify(e.code)}: ${e.message}`);
      if (e.code !== wantError) {
        throw new Mismatch(`expected error ${JSON.stringify(wantError)}, got ${JSON.stringify(e.code)}: ${e.message}`);
      }
      return;
    }
    if (wantError !== null) throw new Mismatch(`expected error ${JSON.stringify(wantError)}, got ${show(got)}`);

    switch (op) {
      case 'enqueue': {
        if (typeof expect === 'string') {
          const want = this.ref(expect);
          if (got !== want) throw new Mismatch(`expected the id of ${expect} (${want}), got ${got}`);
        } else if (hasExpect) {
          throw new VectorError("enqueue's expect is the label of the job whose id it must return");
        } else if (this.jobLabels.has(got)) {
          throw new Mismatch(`expected a new job id, got ${got} (the id of ${this.jobLabels.get(got)})`);
        }
        if (label) {
          this.labels.set(label, got);
          if (!this.jobLabels.has(got)) this.jobLabels.set(got, label);
        }
        return;
      }
      case 'claim':
      case 'list_jobs':
      case 'dead_jobs': {
        const ids = op === 'claim' ? got.map((/** @type {any[]} */ lease) => lease[0]) : got;
        const names = ids.map((/** @type {number} */ i) => this.jobName(i));
        if (hasExpect && !same(names, expect)) throw new Mismatch(`expected ${show(expect)}, got ${show(names)}`);
        return;
      }
      case 'events': {
        const names = got.map(([kind, id]) => `${kind} ${this.jobName(id)}`);
        if (hasExpect && !same(names, expect)) throw new Mismatch(`expected ${show(expect)}, got ${show(names)}`);
        return;
      }
      case 'get_job_state': {
        if (!hasExpect) return;
        if (expect === null) {
          if (got !== null) throw new Mismatch(`expected no job, got state ${JSON.stringify(got.state)}`);
        } else if (got === null) {
          throw new Mismatch(`expected ${show(expect)}, got no job`);
        } else if (typeof expect === 'string') {
          subset({ state: expect }, got, 'job');
        } else if (isObject(expect)) {
          subset(expect, got, 'job');
        } else {
          throw new VectorError(`bad expectation ${show(expect)}`);
        }
        return;
      }
      case 'publish':
      case 'lock_acquire': {
        if (hasExpect) this.expectAfter(expect, got, op === 'publish' ? 'offset' : 'token');
        if (label) {
          if (got === null) throw new VectorError(`nothing to bind to ${JSON.stringify(label)}`);
          this.labels.set(label, got);
        }
        return;
      }
      case 'read_since': {
        if (!hasExpect) return;
        if (!Array.isArray(expect)) throw new VectorError('read_since expects a list');
        if (got.length !== expect.length) throw new Mismatch(`expected ${expect.length} events, got ${show(got)}`);
        expect.forEach((event, i) => {
          const want = { ...event };
          if ('offset' in want) want.offset = this.ref(want.offset);
          subset(want, got[i], `event[${i}]`);
        });
        return;
      }
      case 'schedule_tick': {
        if (hasExpect && !same(got, expect)) throw new Mismatch(`expected the fires ${show(expect)}, got ${show(got)}`);
        return;
      }
      case 'queues':
      case 'streams':
      case 'queue_controls': {
        if (hasExpect && !same(got, expect)) throw new Mismatch(`expected ${show(expect)}, got ${show(got)}`);
        return;
      }
      case 'ack_batch':
      case 'requeue_dead_all':
      case 'cancel_many':
      case 'purge':
      case 'prune':
      case 'execute': {
        if (typeof got !== 'number') throw new Mismatch(`expected a count, got ${show(got)}`);
        if (hasExpect && got !== expect) throw new Mismatch(`expected ${show(expect)}, got ${show(got)}`);
        return;
      }
      case 'get_offset':
      case 'cron_next': {
        if (hasExpect) {
          const want = this.ref(expect);
          if (got !== want) throw new Mismatch(`expected ${show(expect)} (${want}), got ${show(got)}`);
        }
        return;
      }
      default: {
        // ack, retry, fail, requeue_dead, cancel, pause, resume, set_max_in_flight, set_rate_limit, rate_limit,
        // save_offset, lock_release: booleans.
        if (typeof got !== 'boolean') throw new Mismatch(`expected a boolean result, got ${show(got)}`);
        if (hasExpect && got !== expect) throw new Mismatch(`expected ${show(expect)}, got ${show(got)}`);
      }
    }
  }
}

/**
 * Runs every vector file (or the ones named in argv) on a fresh database
 * each; prints one line per file, every SKIP, and a summary.
 * @param {string[]} argv
 * @returns {Promise<number>} the exit status
 */
async function main(argv) {
  const files = argv.length
    ? argv.map((a) => path.resolve(a))
    : fs.readdirSync(VECTORS).filter((f) => f.endsWith('.json')).sort().map((f) => path.join(VECTORS, f));
  if (!files.length) {
    console.log(`no vector files in ${VECTORS}`);
    return 1;
  }
  let failed = 0;
  let allSkipped = 0;
  let stepsRun = 0;
  let skips = 0;
  for (const file of files) {
    const name = path.basename(file);
    let ran = 0;
    let skipped = 0;
    let error = null;
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'honker-vectors-'));
    let runner = null;
    try {
      const scenario = JSON.parse(fs.readFileSync(file, 'utf8'));
      if (!Array.isArray(scenario.steps)) throw new VectorError('no steps');
      schema = POSTGRES ? `v_${process.pid}_${name.replace(/\.json$/, '')}` : null;
      runner = new Runner(
        POSTGRES ? `${POSTGRES}${POSTGRES.includes('?') ? '&' : '?'}schema=${schema}` : path.join(tmp, 'vectors.db'),
      );
      for (const [i, step] of scenario.steps.entries()) {
        try {
          await runner.step(step);
          ran += 1;
        } catch (e) {
          if (e instanceof Skip) {
            skipped += 1;
            console.log(`SKIP ${name} step ${i} ${step.op}: ${e.message}`);
            continue;
          }
          // Any failure ends this file (later steps depend on it); the others still run.
          const kind = e instanceof Mismatch ? 'mismatch' : e instanceof VectorError ? 'vector error' : errorName(e);
          error = `step ${i} ${step.op} ${show(step.args ?? {})}: ${kind}: ${errorMessage(e)}`;
          break;
        }
      }
    } catch (e) {
      error = `${errorName(e)}: ${errorMessage(e)}`;
    } finally {
      if (runner && schema) await runner.db.execute(`DROP SCHEMA ${schema} CASCADE`);
      runner?.db.close();
      schema = null;
      fs.rmSync(tmp, { recursive: true, force: true });
    }
    stepsRun += ran;
    skips += skipped;
    if (error) {
      failed += 1;
      console.log(`FAIL ${name}: ${error}`);
    } else if (ran === 0) {
      allSkipped += 1;
      console.log(`skip ${name} (no step run, ${skipped} skipped)`);
    } else {
      console.log(`ok   ${name} (${ran} steps${skipped ? `, ${skipped} skipped` : ''})`);
    }
  }
  const passed = files.length - failed - allSkipped;
  console.log(
    `node: ${files.length} files, ${passed} passed, ${failed} failed, ${allSkipped} wholly skipped; ` +
      `${stepsRun} steps run, ${skips} skipped`,
  );
  return failed ? 1 : 0;
}

/** @param {unknown} e */
function errorName(e) {
  return e instanceof Error ? e.constructor.name : typeof e;
}

/** @param {unknown} e */
function errorMessage(e) {
  return e instanceof Error ? e.message : String(e);
}

process.exitCode = await main(process.argv.slice(2));
