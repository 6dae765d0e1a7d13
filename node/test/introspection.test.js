'use strict';
// Job.release, queue stats and deadlines, expiry sweeps, stream retention,
// lock holders, result sweeps, the scheduler's soonest fire and cronNext.
// Expiries use TTLs of a millisecond and a short sleep: time passing is
// the outcome, not a guess.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const honker = require('..');
const { tmpdb } = require('./helpers.js');

const { open, cronNext, HonkerError } = honker;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Asserts that `fn` (sync or async) fails with a HonkerError of `code`. */
async function rejectsWith(fn, code) {
  await assert.rejects(async () => fn(), (e) => {
    assert.ok(e instanceof HonkerError, `a HonkerError, got ${e}`);
    assert.equal(e.code, code, e.message);
    return true;
  });
}

test('Job.release gives the job back without using an attempt (async and Sync)', async () => {
  const db = open(tmpdb());
  const q = db.queue('q', { maxAttempts: 1 });
  const first = await q.enqueue({ n: 1 });
  const second = await q.enqueue({ n: 2 });
  const job = await q.claimOne('w');
  assert.deepEqual([job.id, job.attempts], [first, 1]);
  assert.equal(await job.release(), true);
  assert.equal(await job.release(), false, 'the lease is gone');
  assert.equal(job.releaseSync(), false);
  const info = await q.getJob(first);
  assert.deepEqual([info.state, info.attempts, info.workerId, info.lastError], ['ready', 0, null, null]);
  const again = q.claimOneSync('w2');
  assert.deepEqual([again.id, again.attempts], [first, 1], 'first in line again, its one attempt unused');
  assert.equal(again.releaseSync(), true);
  const third = q.claimOneSync('w3');
  assert.deepEqual([third.id, third.attempts], [first, 1]);
  assert.equal(await third.ack(), true);
  assert.equal(q.claimOneSync('w').id, second);
  assert.deepEqual(await q.deadJobs(), []);
  db.close();
});

test('Queue.stats follows enqueue, claim and fail', async () => {
  const db = open(tmpdb());
  const q = db.queue('emails');
  const zero = { ready: 0, scheduled: 0, processing: 0, dead: 0, completed: 0 };
  assert.deepEqual(await q.stats(), zero);
  assert.deepEqual(q.statsSync(), zero);
  await q.enqueue({ n: 1 }, { runAt: 1000 });
  await q.enqueue({ n: 2 }, { runAt: 2000 });
  await q.enqueue({ n: 3 }, { delayS: 3600 });
  await db.queue('other').enqueue({ n: 4 });
  const before = await q.stats();
  assert.ok(before.scheduled >= 1 && before.ready + before.scheduled === 3 && before.processing === 0, JSON.stringify(before));
  const job = await q.claimOne('w1');
  assert.deepEqual(job.payload, { n: 1 });
  assert.deepEqual(await q.stats(), { ready: 1, scheduled: 1, processing: 1, dead: 0, completed: 0 });
  assert.equal(await job.fail('boom'), true);
  assert.deepEqual(q.statsSync(), { ready: 1, scheduled: 1, processing: 0, dead: 1, completed: 0 });
  await rejectsWith(() => db.queue('').stats(), 'invalid_argument');
  await rejectsWith(() => db.queue('').statsSync(), 'invalid_argument');
  db.close();
});

test('Queue.sweepExpired moves a job past its start deadline to dead', async () => {
  const db = open(tmpdb());
  const q = db.queue('reports');
  const stale = await q.enqueue({ r: 1 }, { expiresS: 0.001 });
  const fresh = await q.enqueue({ r: 2 }, { expiresS: 3600 });
  await db.queue('elsewhere').enqueue({ r: 3 }, { expiresS: 0.001 });
  await sleep(20);
  assert.equal(await q.sweepExpired(), 1, "only this queue's expired job");
  assert.deepEqual((await q.deadJobs()).map((j) => j.id), [stale]);
  const dead = await q.getJob(stale);
  assert.deepEqual([dead.state, dead.deadReason], ['dead', 'expired']);
  assert.equal((await q.getJob(fresh)).state, 'ready');
  assert.equal((await q.stats()).dead, 1);
  assert.equal(await q.sweepExpired(), 0);
  assert.equal(await db.queue('elsewhere').sweepExpired(), 1);
  db.close();
});

test('Queue.nextDeadline is the earliest runAt or lease end, in epoch seconds', async () => {
  const db = open(tmpdb());
  const q = db.queue('later', { visibilityTimeoutS: 600 });
  assert.equal(await q.nextDeadline(), null);
  assert.equal(q.nextDeadlineSync(), null);
  const runAt = Math.floor(Date.now() / 1000) + 3600;
  await q.enqueue({ n: 1 }, { runAt });
  assert.equal(await q.nextDeadline(), runAt);
  await q.enqueue({ n: 2 });
  const job = await q.claimOne('w');
  assert.deepEqual(job.payload, { n: 2 });
  const deadline = q.nextDeadlineSync();
  const now = Date.now() / 1000;
  assert.ok(deadline > now + 590 && deadline <= now + 600, `the lease ends first: ${deadline - now}`);
  assert.equal(await job.ack(), true);
  assert.equal(q.nextDeadlineSync(), runAt);
  db.close();
});

test('Stream.lastOffset', async () => {
  const db = open(tmpdb());
  const s = db.stream('orders');
  assert.equal(await s.lastOffset(), 0);
  await s.publish({ n: 1 });
  const last = await s.publish({ n: 2 });
  await db.stream('other').publish({ n: 3 });
  assert.equal(await s.lastOffset(), last);
  assert.equal(s.lastOffsetSync(), last);
  db.close();
});

test('Stream.setRetention, retention and prune remove old events', async () => {
  const db = open(tmpdb());
  const s = db.stream('audit');
  const none = { maxAgeS: null, maxCount: null };
  assert.deepEqual(await s.retention(), none);
  const offsets = [];
  for (let i = 0; i < 5; i++) offsets.push(await s.publish({ n: i }));
  assert.equal(await s.prune(), 0, 'no retention: keep everything');
  await s.setRetention({ maxCount: 2 });
  assert.deepEqual(await s.retention(), { maxAgeS: null, maxCount: 2 });
  assert.equal(await s.prune(), 3);
  assert.deepEqual((await s.readSince(0)).map((e) => e.offset), offsets.slice(3));
  assert.equal(await s.lastOffset(), offsets[4]);
  s.setRetentionSync({ maxAgeS: 0.001, maxCount: 2 });
  assert.deepEqual(s.retentionSync(), { maxAgeS: 0.001, maxCount: 2 });
  await sleep(20);
  assert.equal(await s.prune(), 2);
  assert.deepEqual(await s.readSince(0), []);
  await s.setRetention({ maxAgeS: 86400, maxCount: null }); // null: no such limit, as retention() shows it
  assert.deepEqual(await s.retention(), { maxAgeS: 86400, maxCount: null });
  await s.setRetention();
  assert.deepEqual(await s.retention(), none);
  for (const bad of [{ maxCount: 0 }, { maxCount: -1 }, { maxAgeS: 0 }, { maxAgeS: -1 }, { maxAgeS: NaN }, { maxCount: 'x' }, 60]) {
    await rejectsWith(() => s.setRetention(/** @type {any} */ (bad)), 'invalid_argument');
    await rejectsWith(() => s.setRetentionSync(/** @type {any} */ (bad)), 'invalid_argument');
  }
  assert.deepEqual(await s.retention(), none, 'a refused retention changes nothing');
  await rejectsWith(() => db.stream('').setRetention({ maxCount: 1 }), 'invalid_argument');
  await rejectsWith(() => db.stream('').prune(), 'invalid_argument');
  db.close();
});

test('Database.lockHolder shows owner, token and expiry', async () => {
  const db = open(tmpdb());
  assert.equal(await db.lockHolder('migrations'), null);
  const lock = await db.tryLock('migrations', 'host:1', 60);
  const held = await db.lockHolder('migrations');
  assert.deepEqual([held.name, held.owner, held.fencingToken], ['migrations', 'host:1', lock.fencingToken]);
  const now = Date.now() / 1000;
  assert.ok(held.expiresAt > now + 50 && held.expiresAt <= now + 60, `expiresAt in epoch seconds: ${held.expiresAt - now}`);
  assert.deepEqual(db.lockHolderSync('migrations'), held);
  assert.equal(await lock.release(), true);
  assert.equal(await db.lockHolder('migrations'), null);
  assert.ok(await db.tryLock('brief', 'o', 0.001));
  await sleep(20);
  assert.equal(db.lockHolderSync('brief'), null, 'an expired lock has no holder');
  db.close();
});

test('Database.sweepResults removes only expired results', async () => {
  const db = open(tmpdb());
  // The long-lived one first: saving also sweeps a few expired results.
  await db.saveResult(2, { ok: true }, 3600);
  await db.saveResult(1, { ok: true }, 0.001);
  await sleep(20);
  assert.equal(await db.sweepResults(), 1);
  assert.equal(await db.getResult(1), undefined);
  assert.deepEqual(await db.getResult(2), { ok: true });
  assert.equal(await db.sweepResults(), 0);
  db.close();
});

test('Scheduler.soonest is the next fire of any unpaused schedule, in epoch seconds', async () => {
  const db = open(tmpdb());
  const sched = db.scheduler();
  assert.equal(await sched.soonest(), null);
  await sched.add({ name: 'nightly', queue: 'backups', schedule: '0 3 * * *', tz: 'Europe/Paris' });
  await sched.add({ name: 'hourly', queue: 'ticks', schedule: '@hourly' });
  const next = Object.fromEntries((await sched.list()).map((s) => [s.name, s.nextFireAtMs / 1000]));
  assert.equal(await sched.soonest(), Math.min(...Object.values(next)));
  assert.equal(await sched.soonest(), cronNext('@hourly'));
  await sched.pause('hourly');
  assert.equal(await sched.soonest(), next.nightly);
  await sched.pause('nightly');
  assert.equal(await sched.soonest(), null);
  db.close();
});

test('cronNext across the America/New_York DST changes matches tests/vectors/cron_dst.json', () => {
  const file = path.join(__dirname, '..', '..', 'tests', 'vectors', 'cron_dst.json');
  const steps = JSON.parse(fs.readFileSync(file, 'utf8')).steps;
  assert.ok(steps.length >= 10);
  for (const { args, expect, note } of steps) {
    const opts = args.tz === undefined ? undefined : { tz: args.tz };
    assert.equal(cronNext(args.expr, args.after_ms / 1000, opts) * 1000, expect, note);
    assert.equal(cronNext(args.expr, new Date(args.after_ms), opts) * 1000, expect, `${note} (after as a Date)`);
  }
  // Spelled out: 02:00 on 2026-03-08 does not exist in New York; it fires at 03:00 EDT (07:00Z).
  assert.equal(cronNext('0 2 * * *', Date.UTC(2026, 2, 7, 7) / 1000, { tz: 'America/New_York' }), Date.UTC(2026, 2, 8, 7) / 1000);
  // 01:30 on 2026-11-01 happens twice; after the first (05:30Z) the next is the 2nd's 01:30 EST.
  assert.equal(cronNext('30 1 * * *', Date.UTC(2026, 10, 1, 5, 30) / 1000, { tz: 'America/New_York' }), Date.UTC(2026, 10, 2, 6, 30) / 1000);
});

test('cronNext defaults and errors', async () => {
  const now = Date.now() / 1000;
  const next = cronNext('* * * * * *'); // six fields: every second
  assert.ok(next > now && next <= Date.now() / 1000 + 1, `${next - now}`);
  assert.equal(cronNext('0 0 1 1 *', 0), 31536000, '1971-01-01, strictly after the epoch');
  assert.equal(cronNext('0 0 1 1 *', null, { tz: null }) > now, true);
  assert.ok(cronNext('@every 90s', 1000.5) > 1000.5);
  await rejectsWith(() => cronNext('61 * * * *', 0), 'invalid_cron');
  await rejectsWith(() => cronNext('every tuesday', 0), 'invalid_cron');
  await rejectsWith(() => cronNext('0 3 * * *', 0, { tz: 'Mars/Olympus' }), 'invalid_timezone');
  await rejectsWith(() => cronNext('CRON_TZ=Mars/Olympus 0 3 * * *', 0), 'invalid_timezone');
  await rejectsWith(() => cronNext('0 3 * * *', NaN), 'invalid_argument');
  await rejectsWith(() => cronNext('0 3 * * *', -1), 'invalid_argument');
  await rejectsWith(() => cronNext('0 3 * * *', 0, /** @type {any} */ ('UTC')), 'invalid_argument');
});

test('the new calls fail with closed once the database is closed', async () => {
  const db = open(tmpdb());
  const q = db.queue('q');
  const s = db.stream('s');
  db.close();
  for (const call of [() => q.stats(), () => q.statsSync(), () => q.sweepExpired(), () => q.nextDeadline(),
    () => s.lastOffset(), () => s.setRetention({ maxCount: 1 }), () => s.retention(), () => s.prune(),
    () => db.lockHolder('l'), () => db.sweepResults(), () => db.scheduler().soonest()]) {
    await rejectsWith(call, 'closed');
  }
});

test('queues() and jobs() list what an operator looks at', async () => {
  const db = open(tmpdb());
  const q = db.queue('emails');
  const send = q.task('send', () => undefined);
  const first = (await send.enqueue('a@example.com')).id;
  const second = q.enqueueSync({ raw: true }, { key: 'k' });
  const other = db.queue('other');
  other.enqueueSync(1, { maxAttempts: 1 });
  const job = other.claimOneSync('w');
  assert.equal(await job.fail('boom'), true);
  await db.queue('idle').pause();

  const summary = await db.queues();
  assert.deepEqual(summary.map((s) => s.name), ['emails', 'idle', 'other']);
  assert.deepEqual(summary[0].stats, { ready: 2, scheduled: 0, processing: 0, dead: 0, completed: 0 });
  assert.equal(summary[1].controls.paused, true);
  assert.deepEqual(db.queuesSync()[2].stats.dead, 1);

  assert.deepEqual((await db.jobs({ queue: 'emails' })).map((j) => j.id), [second, first]);
  assert.deepEqual((await db.jobs({ task: 'send' })).map((j) => j.id), [first]);
  assert.deepEqual(db.jobsSync({ key: 'k' }).map((j) => j.id), [second]);
  assert.deepEqual((await db.jobs({ state: 'dead' })).map((j) => j.state), ['dead']);
  const page = await db.jobs({ limit: 2 });
  const rest = await db.jobs({ beforeId: page[1].id });
  assert.equal(page.length + rest.length, 3);
  assert.ok(rest.every((j) => j.id < page[1].id));
  await assert.rejects(db.jobs({ state: 'finished' }), /state/);
  await assert.rejects(db.jobs({ limit: -1 }), /limit/);
  db.close();
});

test('streams() lists each consumer offset', async () => {
  const db = open(tmpdb());
  const s = db.stream('orders');
  const first = await s.publish({ n: 1 });
  const last = await s.publish({ n: 2 });
  assert.equal(await s.saveOffset('billing', first), true);
  await db.stream('other').publish(0); // offsets are shared: the lag is counted
  assert.deepEqual((await db.streams())[0], { name: 'orders', lastOffset: last, consumers: { billing: { offset: first, lag: 1 } } });
  assert.deepEqual(db.streamsSync()[0].consumers.billing.lag, 1);
  db.close();
});
