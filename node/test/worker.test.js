'use strict';
// Tasks and workers: drain, run, results, retries, timeouts, leases,
// unknown tasks, and as processes a SIGTERM drain and a SIGKILL reclaim.
const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { open, Retry, HonkerError } = require('..');
const { tmpdb, deadline, child, killChildren } = require('./helpers.js');

test.after(killChildren);

const TASK_WORKER = path.join(__dirname, 'fixtures', 'task-worker.js');

/** Runs `worker` until `until()` resolves, then stops it and waits for the drain. */
async function runUntil(db, opts, until, what) {
  const ac = new AbortController();
  const worker = db.worker({ ...opts, signal: ac.signal });
  const ran = worker.run();
  try {
    return await deadline(until(), 20000, what);
  } finally {
    ac.abort();
    await deadline(ran, 20000, 'the worker to drain');
  }
}

test('drain runs what is due, saves results, and the enqueuer reads them', async () => {
  const db = open(tmpdb());
  const q = db.queue('emails');
  const seen = [];
  const send = q.task('send', (payload, ctx) => {
    seen.push([payload.to, ctx.task, ctx.attempt, ctx.queue]);
    return { sent: payload.to };
  });
  const quiet = q.task('quiet', () => undefined);
  const a = await send.enqueue({ to: 'a@example.com' });
  const b = send.enqueueSync({ to: 'b@example.com' });
  const c = await quiet.enqueue();
  const later = await send.enqueue({ to: 'later' }, { delayS: 3600 });
  assert.equal(await db.worker({ queues: ['emails'] }).drain(), 3);
  assert.deepEqual(seen, [
    ['a@example.com', 'send', 1, 'emails'],
    ['b@example.com', 'send', 1, 'emails'],
  ]);
  assert.deepEqual(await a.result({ timeoutS: 5 }), { sent: 'a@example.com' });
  assert.deepEqual(await b.result({ timeoutS: 5 }), { sent: 'b@example.com' });
  assert.equal(await c.result({ timeoutS: 5 }), undefined);
  // The delayed one is left, and waiting for it times out.
  assert.equal((await q.getJob(later.id)).state, 'scheduled');
  await assert.rejects(later.result({ timeoutS: 0.05 }), { name: 'TimeoutError' });
  assert.deepEqual([...db.tasks.keys()].sort(), ['quiet', 'send']);
  db.close();
});

test('the envelope: payload is args[0]; args and kwargs reach the context', async () => {
  const db = open(tmpdb());
  const q = db.queue('q');
  let got = null;
  q.task('t', (payload, ctx) => {
    got = { payload, args: ctx.args, kwargs: ctx.kwargs };
  });
  // As a Python producer writes it: two args and a keyword argument.
  await q.enqueue({ task: 't', args: [1, 'two'], kwargs: { three: 3 } });
  assert.equal(await db.worker().drain(), 1);
  assert.deepEqual(got, { payload: 1, args: [1, 'two'], kwargs: { three: 3 } });
  // What a task's enqueue writes.
  const h = await q.task('u', () => 1).enqueue({ x: 1 });
  assert.deepEqual((await q.getJob(h.id)).payload, { task: 'u', args: [{ x: 1 }] });
  db.close();
});

test('a worker run is woken by an enqueue and the handle awaits the result', async () => {
  const db = open(tmpdb());
  const q = db.queue('q');
  const double = q.task('double', async (n) => n * 2);
  const results = await runUntil(db, { concurrency: 4 }, async () => {
    const handles = await Promise.all([1, 2, 3, 4, 5].map((n) => double.enqueue(n)));
    return Promise.all(handles.map((h) => h.result({ timeoutS: 10 })));
  }, 'the results');
  assert.deepEqual(results, [2, 4, 6, 8, 10]);
  assert.deepEqual(await q.stats(), { ready: 0, scheduled: 0, processing: 0, dead: 0, completed: 0 });
  db.close();
});

test('a pause from another handle stops a running worker and a resume wakes it', async () => {
  const file = tmpdb();
  const db = open(file);
  const operator = open(file).queue('q'); // another connection, like another process
  const q = db.queue('q');
  const echo = q.task('echo', (s) => s);
  const otherEcho = db.queue('other').task('echo2', (s) => s);
  await runUntil(db, { queues: ['q', 'other'], concurrency: 2 }, async () => {
    assert.equal(await (await echo.enqueue('a')).result({ timeoutS: 10 }), 'a');
    assert.equal(await operator.pause(), true);
    assert.equal(operator.pauseSync(), false, 'already paused');
    assert.deepEqual(await q.controls(), { paused: true, maxInFlight: null, rateLimit: null, retention: { completed: null, dead: null }, events: false });
    const b = await echo.enqueue('b');
    // Enqueued after b on the other queue: once it has run, the worker has
    // looked at both queues since b was enqueued.
    assert.equal(await (await otherEcho.enqueue('c')).result({ timeoutS: 10 }), 'c');
    assert.equal((await q.getJob(b.id)).state, 'ready');
    assert.equal(await operator.resume(), true);
    assert.equal(await b.result({ timeoutS: 10 }), 'b', 'woken by the resume');
  }, 'the pause and the resume');
  db.close();
});

test('maxInFlight and the rate limit are stored and checked; bad values are named', async () => {
  const db = open(tmpdb());
  const q = db.queue('q');
  for (let i = 0; i < 3; i++) q.enqueueSync({ i });
  await q.setMaxInFlight(2);
  assert.deepEqual(q.controlsSync(), { paused: false, maxInFlight: 2, rateLimit: null, retention: { completed: null, dead: null }, events: false });
  q.setRateLimitSync(5, 60);
  assert.deepEqual((await q.controls()).rateLimit, { limit: 5, perS: 60 });
  await assert.rejects(q.setRateLimit(5), /per_s/);
  await q.setRateLimit(null);
  assert.equal(q.claimBatchSync('w', 10).length, 2);
  assert.equal(q.claimBatchSync('w2', 10).length, 0);
  q.setMaxInFlightSync(null);
  assert.equal(q.claimBatchSync('w2', 10).length, 1);
  for (const bad of [0, -1, 2 ** 32, 1.5]) {
    await assert.rejects(q.setMaxInFlight(bad), (e) => e instanceof HonkerError && /maxInFlight|max_in_flight/.test(e.message), String(bad));
  }
  await assert.rejects(db.queue('').pause(), /queue/);
  db.close();
});

test('a queue that keeps history shows what its worker did', async () => {
  const db = open(tmpdb());
  const q = db.queue('history');
  const double = q.task('double', (n) => {
    if (n < 0) throw new Error(`negative: ${n}`);
    return 2 * n;
  });
  await q.setRetention({ completed: { maxCount: 10 }, dead: { maxAgeS: 86400 } });
  assert.deepEqual((await q.controls()).retention, {
    completed: { maxAgeS: null, maxCount: 10 },
    dead: { maxAgeS: 86400, maxCount: null },
  });
  const ok = [];
  for (let n = 0; n < 3; n++) ok.push(await double.enqueue(n));
  const bad = await double.enqueue(-1, { maxAttempts: 1 });
  const before = Date.now();
  assert.equal(await db.worker({ queues: ['history'] }).drain(), 4);
  assert.deepEqual(await Promise.all(ok.map((h) => h.result({ timeoutS: 10 }))), [0, 2, 4], 'a kept job\'s handle sees it finished');
  const done = await q.getJob(ok[1].id);
  assert.equal(done.state, 'completed');
  assert.equal(done.result, 2);
  assert.equal(done.attempts, 1);
  assert.ok(done.createdAtMs <= done.startedAtMs && done.startedAtMs <= done.completedAtMs);
  assert.ok(done.completedAtMs >= before - 1000);
  assert.deepEqual((await db.jobs({ queue: 'history', state: 'completed' })).map((j) => j.id), ok.map((h) => h.id).reverse());
  const dead = await q.getJob(bad.id);
  assert.equal(dead.state, 'dead');
  assert.match(dead.lastError, /negative: -1/);
  assert.equal((await q.stats()).completed, 3);
  const summary = (await db.queues()).find((s) => s.name === 'history');
  assert.equal(summary.stats.completed, 3);

  // At most 10 (+ 10 / 64) kept; prune() trims exactly.
  for (let n = 0; n < 20; n++) await double.enqueue(n);
  await db.worker({ queues: ['history'] }).drain();
  assert.equal(q.statsSync().completed, 10);
  assert.equal(await q.prune(), 0);
  q.setRetentionSync({ completed: { maxCount: 4 } });
  assert.equal(q.pruneSync(), 6);
  assert.equal(q.statsSync().completed, 4);
  assert.equal(q.controlsSync().retention.dead, null, 'setRetention replaces both');

  for (const keep of [{}, { maxCount: 0 }, { maxCount: -1 }, { maxCount: 1.5 }]) {
    await assert.rejects(q.setRetention({ completed: keep }), (e) => e instanceof HonkerError && e.code === 'invalid_argument', JSON.stringify(keep));
  }
  await assert.rejects(q.setRetention({ completed: { maxCount: 1 }, kept: 1 }), /kept/);
  await assert.rejects(q.setRetention({ dead: { maxAgeS: -1 } }), /maxAgeS|max_age/);
  db.close();
});

test('lifecycle events follow a worker\'s jobs, in their transactions', async () => {
  const { EVENTS_STREAM } = require('..');
  const db = open(tmpdb());
  const q = db.queue('mail');
  const send = q.task('send', (to) => {
    if (to === 'nobody') throw new Error('no such address');
    return `sent to ${to}`;
  });
  await q.setEvents(true);
  assert.equal((await q.controls()).events, true);
  const ok = await send.enqueue('ada');
  const bad = await send.enqueue('nobody', { maxAttempts: 1 });
  await assert.rejects(
    db.transaction(async (tx) => {
      await send.enqueue('grace', { tx });
      throw new Error('roll back');
    }),
    /roll back/,
  );
  assert.equal(await db.worker({ queues: ['mail'] }).drain(), 2);
  const events = await db.stream(EVENTS_STREAM).readSince(0, 100);
  const of = (id) => events.filter((e) => e.payload.job_id === id).map((e) => e.payload.type);
  assert.deepEqual(of(ok.id), ['enqueued', 'started', 'completed']);
  assert.deepEqual(of(bad.id), ['enqueued', 'started', 'failed', 'dead']);
  assert.equal(events.length, 7, 'the rolled-back enqueue published nothing');
  assert.ok(events.every((e) => e.key === 'mail' && e.payload.task === 'send'));
  assert.match(events.find((e) => e.payload.type === 'failed').payload.error, /no such address/);
  q.setEventsSync(false);
  assert.equal(q.controlsSync().events, false);
  db.close();
});

test('an enqueue inside a rolled-back transaction leaves no job', async () => {
  const db = open(tmpdb());
  const q = db.queue('q');
  const t = q.task('t', () => 1);
  await assert.rejects(
    db.transaction(async (tx) => {
      await t.enqueue('x', { tx });
      throw new Error('business write failed');
    }),
    /business write failed/,
  );
  const kept = await db.transaction((tx) => t.enqueue('y', { tx }));
  assert.equal(await db.worker().drain(), 1);
  assert.equal(await kept.result({ timeoutS: 5 }), 1);
  db.close();
});

test('failures retry by the task policy, then dead-letter; result() rejects with job_failed', async () => {
  const db = open(tmpdb());
  const q = db.queue('q', { maxAttempts: 5 });
  const attempts = [];
  const flaky = q.task('flaky', (_p, ctx) => {
    attempts.push(ctx.attempt);
    throw new TypeError(`boom ${ctx.attempt}`);
  }, { retry: Retry.fixed(0), maxAttempts: 3 });
  const h = await flaky.enqueue();
  // Fixed 0 s: each retry is due at once, so one drain runs all three.
  assert.equal(await db.worker().drain(), 3);
  assert.deepEqual(attempts, [1, 2, 3]);
  const err = await h.result({ timeoutS: 5 }).then(() => null, (e) => e);
  assert.ok(err instanceof HonkerError);
  assert.equal(err.code, 'job_failed');
  assert.match(err.message, /TypeError: boom 3/);
  // A function policy: its delay is used (an hour here, so it waits).
  const slowRetry = q.task('slowRetry', () => {
    throw new Error('nope');
  }, { retry: (attempt) => attempt * 3600 });
  const s = await slowRetry.enqueue();
  assert.equal(await db.worker().drain(), 1);
  const j = await q.getJob(s.id);
  assert.equal(j.state, 'scheduled');
  assert.equal(j.attempts, 1);
  assert.equal(j.lastError, 'Error: nope');
  assert.ok(j.runAtMs > Date.now() + 3500 * 1000, 'retried an hour later');
  db.close();
});

test('a timeout aborts the handler signal (TimeoutError) and the job is retried', async () => {
  const db = open(tmpdb());
  const q = db.queue('q');
  const seen = [];
  const t = q.task('slow', (_p, ctx) => {
    if (ctx.attempt > 1) return 'second';
    return new Promise((_, reject) => {
      ctx.signal.addEventListener('abort', () => {
        seen.push([ctx.cancelReason, ctx.signal.reason.name]);
        reject(ctx.signal.reason);
      });
    });
  }, { timeoutS: 0.2, retry: Retry.fixed(0) });
  const h = await t.enqueue();
  assert.equal(await deadline(db.worker().drain(), 20000, 'the drain'), 2);
  assert.deepEqual(seen, [['timeout', 'TimeoutError']]);
  assert.equal(await h.result({ timeoutS: 5 }), 'second');
  const j = await q.getJob(h.id);
  assert.equal(j, null, 'acked');
  db.close();
});

test('a long handler keeps its lease past the lease length', async () => {
  const file = tmpdb();
  const db = open(file);
  const q = db.queue('q');
  let stolen = null;
  const other = open(file);
  const t = q.task('long', async (_p, ctx) => {
    // Three lease lengths; meanwhile another worker finds nothing to claim.
    const until = Date.now() + 900;
    while (Date.now() < until) {
      await new Promise((r) => setTimeout(r, 100));
      const got = await other.queue('q').claimOne('thief');
      if (got) stolen = got.id;
    }
    return ctx.attempt;
  });
  const h = await t.enqueue();
  assert.equal(await deadline(db.worker({ leaseS: 0.3 }).drain(), 20000, 'the drain'), 1);
  assert.equal(stolen, null, 'nobody else claimed the job');
  assert.equal(await h.result({ timeoutS: 5 }), 1);
  other.close();
  db.close();
});

test('a job of an unknown task is dead-lettered naming it, or left for another worker', async () => {
  const db = open(tmpdb());
  const q = db.queue('q');
  q.task('known', () => 1);
  const id = await q.enqueue({ task: 'mystery', args: [] });
  assert.equal(await db.worker().drain(), 0);
  const dead = await q.getJob(id);
  assert.equal(dead.state, 'dead');
  assert.match(dead.lastError, /mystery/);
  assert.match(dead.lastError, /known/);
  const left = await q.enqueue({ task: 'elsewhere', args: [] });
  assert.equal(await db.worker({ unknownTasks: 'leave', leaveUnknownS: 60 }).drain(), 0);
  const j = await q.getJob(left);
  assert.equal(j.state, 'scheduled');
  assert.equal(j.attempts, 0, 'the attempt is not counted');
  db.close();
});

test('bad options and registrations are named', async () => {
  const db = open(tmpdb());
  const q = db.queue('q');
  const t = q.task('t', () => 1);
  const code = (f, re) => assert.throws(f, (e) => e instanceof HonkerError && e.code === 'invalid_argument' && re.test(e.message));
  code(() => q.task('t', () => 2), /already registered/);
  assert.equal(q.task('t', t.handler), t.queue.db.tasks.get('t'));
  code(() => q.task('h', 'not a function'), /handler/);
  code(() => q.task('r', () => 1, { retry: 5 }), /retry/);
  code(() => q.task('o', () => 1, { tiemout: 1 }), /unknown option "tiemout"/);
  code(() => db.worker({ concurrency: 0 }), /concurrency/);
  code(() => db.worker({ queue: ['q'] }), /unknown option "queue"/);
  code(() => db.worker({ unknownTasks: 'drop' }), /unknownTasks/);
  code(() => db.worker({ queues: [] }), /queue/);
  code(() => db.worker({ leaseS: -1 }), /leaseS/);
  code(() => db.worker({ batch: 0 }), /batch/);
  code(() => db.worker({ batch: 1001 }), /batch/);
  code(() => q.task('', () => 1), /task/);
  const other = open(tmpdb());
  other.queue('q').task('neg', () => 1, { timeoutS: -1 });
  code(() => other.worker(), /timeoutS/);
  other.close();
  await assert.rejects(t.enqueue(1n), (e) => e.code === 'invalid_json');
  const w = db.worker();
  const running = w.run();
  await assert.rejects(w.run(), /already running/);
  w.stop();
  await deadline(running, 10000, 'the stop');
  db.close();
  await assert.rejects(t.enqueue(1), (e) => e.code === 'closed');
  assert.throws(() => db.worker(), (e) => e.code === 'closed');
});

test('SIGTERM drains: in-flight jobs finish, unfinished ones are released without using an attempt', async () => {
  const file = tmpdb();
  const db = open(file);
  const q = db.queue('tasks');
  const w = child(TASK_WORKER, [file, '1', '30']);
  await w.next((m) => m === 'ready', 20000, 'worker ready');
  const slow = await q.enqueue({ task: 'slow', args: [{ ms: 400 }] });
  const hang = await q.enqueue({ task: 'hang', args: [null] });
  await w.next((m) => m && m.started === slow, 20000, 'slow started');
  await w.next((m) => m && m.started === hang, 20000, 'hang started');
  w.proc.kill('SIGTERM');
  await w.next((m) => m && m.finished === slow, 20000, 'slow finished');
  const aborted = await w.next((m) => m && m.aborted === hang, 20000, 'hang aborted after the grace');
  assert.equal(aborted.reason, 'shutdown');
  await w.next((m) => m && m.drained, 20000, 'drained');
  assert.deepEqual(await w.exited(), [0, null]);
  assert.deepEqual(await db.getResult(slow), { done: slow });
  assert.equal(await q.getJob(slow), null, 'slow was acked');
  const j = await q.getJob(hang);
  assert.equal(j.state, 'ready');
  assert.equal(j.attempts, 0, 'the released job kept its attempt');
  db.close();
});

test('a worker killed mid-handler: its job is reclaimed after the lease', async () => {
  const file = tmpdb();
  const db = open(file);
  const q = db.queue('tasks');
  const w = child(TASK_WORKER, [file, '10', '1']);
  await w.next((m) => m === 'ready', 20000, 'worker ready');
  const id = await q.enqueue({ task: 'hang', args: [null] });
  await w.next((m) => m && m.started === id, 20000, 'hang started');
  w.proc.kill('SIGKILL');
  await w.exited();
  // This process takes over with a handler that finishes.
  let ran;
  const reran = new Promise((resolve) => {
    ran = resolve;
  });
  q.task('hang', (_p, ctx) => {
    ran(ctx.attempt);
    return ctx.attempt;
  });
  const attempt = await runUntil(db, {}, () => reran, 'the reclaimed job to run');
  assert.equal(attempt, 2, 'run again as attempt 2');
  assert.equal(await db.getResult(id), 2);
  db.close();
});
