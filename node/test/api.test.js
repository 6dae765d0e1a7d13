'use strict';
// Every method of the public API, async and Sync.
const test = require('node:test');
const assert = require('node:assert/strict');
const honker = require('..');
const { tmpdb, deadline } = require('./helpers.js');

const { open, HonkerError } = honker;

test('open, close, isClosed, version, error codes', () => {
  const db = open(tmpdb(), { busyTimeoutS: 2 });
  assert.equal(db.isClosed, false);
  assert.match(honker.VERSION, /^\d+\.\d+\.\d+/);
  assert.ok(honker.ERROR_CODES.includes('invalid_cron'));
  assert.equal(honker.ERROR_CODES.length, 20);
  db.close();
  db.close();
  assert.equal(db.isClosed, true);
});

test('ESM entry exports the same API', async () => {
  const esm = await import('../index.mjs');
  assert.equal(esm.open, honker.open);
  assert.equal(esm.default, honker);
  assert.equal(esm.HonkerError, HonkerError);
});

test('queue: enqueue, claim, ack (async and Sync)', async () => {
  const db = open(tmpdb());
  const q = db.queue('emails', { visibilityTimeoutS: 30, maxAttempts: 2 });
  assert.equal(q.name, 'emails');
  assert.equal(q.visibilityTimeoutS, 30);
  const id = await q.enqueue({ to: 'a@b.c' });
  const id2 = q.enqueueSync({ to: 'd@e.f' }, { priority: 5 });
  assert.ok(id2 > id);
  const first = await q.claimOne('w1');
  assert.equal(first.id, id2, 'higher priority first');
  assert.deepEqual(first.payload, { to: 'd@e.f' });
  assert.equal(first.queue, 'emails');
  assert.equal(first.attempts, 1);
  assert.equal(first.maxAttempts, 2);
  assert.equal(first.priority, 5);
  assert.equal(first.workerId, 'w1');
  assert.equal(await first.ack(), true);
  assert.equal(await first.ack(), false, 'a second ack is refused');
  const second = q.claimOneSync('w2');
  assert.equal(second.id, id);
  assert.equal(second.ackSync(), true);
  assert.equal(q.claimOneSync('w2'), null);
  assert.equal(await q.claimOne('w2'), null);
  db.close();
});

test('queue: enqueue options (delay, runAt, key, expires, maxAttempts)', async () => {
  const db = open(tmpdb());
  const q = db.queue('q');
  const later = await q.enqueue(1, { delayS: 3600 });
  const atDate = q.enqueueSync(2, { runAt: new Date(Date.now() + 3_600_000) });
  const atSecs = q.enqueueSync(3, { runAt: Date.now() / 1000 + 3600 });
  assert.equal(await q.claimOne('w'), null, 'none due yet');
  const info = await q.getJob(later);
  assert.equal(info.state, 'scheduled');
  assert.ok(info.runAtMs > Date.now() + 3_000_000);
  assert.ok(q.getJobSync(atDate).runAtMs > Date.now() + 3_000_000);
  assert.ok(q.getJobSync(atSecs).runAtMs > Date.now() + 3_000_000);
  const k1 = await q.enqueue({ n: 1 }, { key: 'order-42', maxAttempts: 7, expiresS: 60 });
  const k2 = await q.enqueue({ n: 2 }, { key: 'order-42' });
  assert.equal(k1, k2, 'the key deduplicates');
  const j = await q.claimOne('w');
  assert.equal(j.key, 'order-42');
  assert.equal(j.maxAttempts, 7);
  assert.equal(await q.getJob(123456), null);
  db.close();
});

test('queue: enqueueMany, claimBatch, ackBatch (async and Sync)', async () => {
  const db = open(tmpdb());
  const q = db.queue('bulk');
  const ids = await q.enqueueMany([1, 2, 3]);
  const ids2 = q.enqueueManySync([4, 5], { priority: 1 });
  assert.equal(ids.length, 3);
  assert.equal(ids2.length, 2);
  const batch = await q.claimBatch('w', 4);
  assert.equal(batch.length, 4);
  assert.deepEqual(batch.slice(0, 2).map((j) => j.payload), [4, 5]);
  assert.equal(await q.ackBatch(batch), 4);
  const rest = q.claimBatchSync('w', 10);
  assert.equal(rest.length, 1);
  assert.equal(q.ackBatchSync(rest), 1);
  assert.equal(q.ackBatchSync(rest), 0, 'acked already');
  db.close();
});

test('job: retry, fail, heartbeat; dead jobs and requeue; cancel', async () => {
  const db = open(tmpdb());
  const q = db.queue('work', { maxAttempts: 2 });
  const id = await q.enqueue('x');
  let j = await q.claimOne('w');
  assert.equal(await j.heartbeat(60), true);
  assert.equal(await j.retry({ delayS: 0, error: 'try again' }), true);
  j = await q.claimOne('w');
  assert.equal(j.id, id);
  assert.equal(j.attempts, 2);
  assert.equal(j.lastError, 'try again');
  assert.equal(await j.fail('gave up'), true);
  assert.equal(await j.heartbeat(60), false, 'no longer leased');
  const dead = await q.deadJobs();
  assert.equal(dead.length, 1);
  assert.equal(dead[0].id, id);
  assert.equal(dead[0].state, 'dead');
  assert.equal(dead[0].payload, 'x');
  await q.requeueDead(id);
  assert.equal((await q.getJob(id)).state, 'ready');
  await assert.rejects(q.requeueDead(id), { code: 'not_found' });
  assert.equal(await q.cancel(id), true);
  assert.equal(await q.getJob(id), null);
  assert.equal(await q.cancel(id), false);
  db.close();
});

test('transaction: commits with the business write, rolls back on throw', async () => {
  const db = open(tmpdb());
  await db.execute('CREATE TABLE orders (id INTEGER PRIMARY KEY, user_id INTEGER)');
  const emails = db.queue('emails');
  const s = db.stream('orders');
  const result = await db.transaction(async (tx) => {
    assert.equal(tx.db, db);
    assert.equal(tx.execute('INSERT INTO orders (user_id) VALUES (?)', [42]), 1);
    assert.deepEqual(tx.query('SELECT user_id FROM orders'), [{ user_id: 42 }]);
    await emails.enqueue({ to: 'alice@example.com' }, { tx });
    emails.enqueueSync({ to: 'bob@example.com' }, { tx });
    await emails.enqueueMany([1], { tx });
    await s.publish({ id: 1 }, { tx });
    s.publishSync({ id: 2 }, { tx });
    await s.saveOffset('c', 1, { tx });
    await db.notify('ch', 'hi', { tx });
    db.notifySync('ch', 'hi', { tx });
    return 'done';
  });
  assert.equal(result, 'done');
  assert.equal((await db.query('SELECT COUNT(*) AS n FROM orders'))[0].n, 1);
  assert.equal((await emails.claimBatch('w', 10)).length, 3);
  assert.equal(await s.getOffset('c'), 1);

  await assert.rejects(
    db.transaction(async (tx) => {
      tx.execute('INSERT INTO orders (user_id) VALUES (?)', [7]);
      await emails.enqueue('never', { tx });
      throw new Error('boom');
    }),
    /boom/,
  );
  assert.equal(db.querySync('SELECT COUNT(*) AS n FROM orders')[0].n, 1);
  assert.equal(emails.claimOneSync('w'), null);
  db.close();
});

test('transaction: ack and ackBatch inside it commit with the business write', async () => {
  const db = open(tmpdb());
  await db.execute('CREATE TABLE sent (job INTEGER)');
  const q = db.queue('q');
  q.enqueueManySync([1, 2, 3]);
  const [one, ...rest] = await q.claimBatch('w', 3);
  await assert.rejects(db.transaction(async (tx) => {
    tx.execute('INSERT INTO sent VALUES (?)', [one.id]);
    assert.equal(await one.ack({ tx }), true);
    throw new Error('crash before commit');
  }), /crash/);
  assert.equal((await q.getJob(one.id)).state, 'processing', 'the ack rolled back with the write');
  await db.transaction(async (tx) => {
    tx.execute('INSERT INTO sent VALUES (?)', [one.id]);
    assert.equal(one.ackSync({ tx }), true);
    for (const j of rest) tx.execute('INSERT INTO sent VALUES (?)', [j.id]);
    assert.equal(await q.ackBatch(rest, { tx }), 2);
  });
  assert.equal(db.querySync('SELECT COUNT(*) AS n FROM sent')[0].n, 3);
  for (const j of [one, ...rest]) assert.equal(await q.getJob(j.id), null);
  assert.equal(q.ackBatchSync([one]), 0);
  db.close();
});

test('transaction: other calls wait for it; Sync calls outside it are refused', async () => {
  const db = open(tmpdb());
  await db.execute('CREATE TABLE t (x)');
  const q = db.queue('q');
  let release;
  const gate = new Promise((r) => { release = r; });
  let inside;
  const entered = new Promise((r) => { inside = r; });
  const txDone = db.transaction(async (tx) => {
    tx.execute('INSERT INTO t VALUES (1)');
    inside();
    await gate;
    tx.execute('INSERT INTO t VALUES (2)');
  });
  await entered;
  // An async call from elsewhere waits for the transaction, then sees its rows.
  let counted = null;
  const outside = db.query('SELECT COUNT(*) AS n FROM t').then((r) => { counted = r[0].n; });
  const enq = q.enqueue('after');
  assert.throws(() => q.enqueueSync('x'), (e) => e instanceof HonkerError && e.code === 'transaction_open');
  assert.throws(() => db.querySync('SELECT 1'), { code: 'transaction_open' });
  // A second transaction queues behind the first.
  const second = db.transaction((tx) => tx.query('SELECT COUNT(*) AS n FROM t')[0].n);
  await new Promise((r) => setImmediate(r));
  assert.equal(counted, null, 'still waiting while the transaction is open');
  release();
  await deadline(txDone, 10000, 'the transaction');
  await deadline(outside, 10000, 'the waiting query');
  assert.equal(counted, 2);
  assert.equal(await second, 2);
  assert.ok((await enq) > 0);
  // A finished transaction cannot be reused.
  let stale;
  await db.transaction((tx) => { stale = tx; });
  assert.throws(() => stale.execute('SELECT 1'), { code: 'transaction_inactive' });
  db.close();
});

test('transaction: a call inside the callback without { tx } fails instead of deadlocking', async () => {
  const db = open(tmpdb());
  const q = db.queue('q');
  await assert.rejects(db.transaction(async () => {
    await q.enqueue('forgot the tx');
  }), { code: 'transaction_open' });
  await assert.rejects(db.transaction(async () => {
    await db.transaction(() => {});
  }), { code: 'transaction_open' });
  await assert.rejects(db.transaction(async () => {
    for await (const j of q.claim('w')) void j;
  }), { code: 'transaction_open' });
  await assert.rejects(db.transaction(async () => {
    for await (const e of db.stream('s').subscribe('c')) void e;
  }), { code: 'transaction_open' });
  // The failed transactions rolled back; the database is usable.
  assert.equal(q.claimOneSync('w'), null);
  // After the transaction ends, work started inside its callback proceeds.
  let late;
  await db.transaction(async () => {
    late = new Promise((r) => setTimeout(r, 10)).then(() => q.enqueue('after'));
  });
  assert.ok((await deadline(late, 10000, 'the late enqueue')) > 0);
  db.close();
});

test('sql: execute and query (params and values)', async () => {
  const db = open(tmpdb());
  db.executeSync('CREATE TABLE v (i, r, s, b, n, big)');
  await db.execute('INSERT INTO v VALUES (?, ?, ?, ?, ?, ?)', [1, 1.5, 'x', Buffer.from([1, 2]), null, 2n ** 60n]);
  db.executeSync('INSERT INTO v VALUES (?, ?, ?, ?, ?, ?)', [true, -2, '', Buffer.alloc(0), undefined, 3]);
  const rows = await db.query('SELECT * FROM v ORDER BY rowid');
  assert.deepEqual(rows[0], { i: 1, r: 1.5, s: 'x', b: Buffer.from([1, 2]), n: null, big: 2n ** 60n });
  assert.deepEqual(db.querySync('SELECT i, r FROM v WHERE rowid = 2'), [{ i: 1, r: -2 }]);
  await assert.rejects(db.query('SELECT * FROM nope'), { code: 'sqlite' });
  assert.throws(() => db.executeSync('INSERT INTO v VALUES (?)', [{}]), { code: 'invalid_argument' });
  db.close();
});

test('streams: publish, readSince, offsets (async and Sync), subscribe', async () => {
  const db = open(tmpdb());
  const s = db.stream('orders');
  assert.equal(s.name, 'orders');
  const o1 = await s.publish({ id: 1 }, { key: 'a' });
  const o2 = s.publishSync({ id: 2 });
  assert.ok(o2 > o1);
  assert.deepEqual(await s.readSince(0), [
    { offset: o1, key: 'a', payload: { id: 1 } },
    { offset: o2, key: null, payload: { id: 2 } },
  ]);
  assert.deepEqual(s.readSinceSync(o1, 10).map((e) => e.offset), [o2]);
  assert.equal(await s.getOffset('c'), 0);
  assert.equal(await s.saveOffset('c', o1), true);
  assert.equal(s.getOffsetSync('c'), o1);
  assert.equal(s.saveOffsetSync('c', 0), false, 'offsets only move forward');

  // subscribe replays from the saved offset, then waits for new events.
  const ac = new AbortController();
  const seen = [];
  const sub = s.subscribe('c', { signal: ac.signal });
  const loop = (async () => {
    for await (const ev of sub) {
      seen.push(ev.payload.id);
      if (ev.payload.id === 3) ac.abort();
    }
  })();
  while (seen.length < 1) await deadline(new Promise((r) => setTimeout(r, 5)), 10000, 'replay');
  await s.publish({ id: 3 });
  await deadline(loop, 10000, 'the subscription to end');
  assert.deepEqual(seen, [2, 3]);
  // Moved past 2; 3 was being handled at the abort: delivered again (at-least-once).
  assert.equal(await s.getOffset('c'), o2);

  // commit() saves the offset of the event in hand.
  const sub2 = s.subscribe('c', { timeoutS: 5 });
  const { value } = await sub2.next();
  assert.equal(value.payload.id, 3);
  await sub2.commit();
  assert.equal(await s.getOffset('c'), value.offset);
  await sub2.return();
  // timeoutS ends an idle subscription.
  const idle = s.subscribe('c', { timeoutS: 0.05 });
  assert.equal((await idle.next()).done, true);
  db.close();
});

test('a burst bigger than a fetch: every event once, in order, offsets saved as moved past', async () => {
  const db = open(tmpdb());
  const s = db.stream('burst');
  const offsets = await db.transaction(async (tx) => {
    const out = [];
    for (let i = 0; i < 250; i++) out.push(s.publishSync(i, { tx }));
    return out;
  });
  const seen = [];
  for await (const ev of s.subscribe('c', { timeoutS: 5 })) {
    seen.push(ev.offset);
    if (seen.length === 120) break;
  }
  assert.deepEqual(seen, offsets.slice(0, 120));
  // Moved past the first 119; the 120th was in hand at the break.
  assert.equal(await s.getOffset('c'), offsets[118]);
  const rest = [];
  for await (const ev of s.subscribe('c', { timeoutS: 0.2 })) rest.push(ev.offset);
  assert.deepEqual(rest, offsets.slice(119), 'resumed at the one in hand, then the rest, once each');
  assert.equal(await s.getOffset('c'), offsets[249], 'asking past the last one marked it handled');

  // The same for notifications already waiting in a listener.
  const listener = db.listen('n');
  await db.transaction(async (tx) => {
    for (let i = 0; i < 300; i++) db.notifySync('n', i, { tx });
  });
  const got = [];
  for await (const n of listener) {
    got.push(n.payload);
    if (got.length === 300) break;
  }
  assert.deepEqual(got, Array.from({ length: 300 }, (_, i) => i));
  db.close();
});

test('notify and listen (iterator and recv)', async () => {
  const db = open(tmpdb());
  const ac = new AbortController();
  const listener = db.listen('orders', { signal: ac.signal });
  const early = db.listen('orders');
  const id = await db.notify('orders', { id: 42 });
  db.notifySync('other', 'ignored');
  db.notifySync('orders', 'second');
  const got = [];
  for await (const n of listener) {
    got.push(n);
    if (got.length === 2) ac.abort();
  }
  assert.deepEqual(got[0], { id, channel: 'orders', payload: { id: 42 } });
  assert.equal(got[1].payload, 'second');
  assert.equal((await early.recv(5)).payload.id, 42);
  assert.equal((await early.recv(5)).payload, 'second');
  assert.equal(await early.recv(0.02), null);
  early.close();
  assert.equal((await early.next()).done, true);
  db.close();
});

test('locks: tryLock, heartbeat, release, fencing tokens (async and Sync)', async () => {
  const db = open(tmpdb());
  const lock = await db.tryLock('migrations', 'host-a', 60);
  assert.ok(lock);
  assert.equal(lock.name, 'migrations');
  assert.equal(lock.owner, 'host-a');
  assert.equal(typeof lock.fencingToken, 'number');
  assert.equal(await db.tryLock('migrations', 'host-b', 60), null);
  assert.equal(db.tryLockSync('migrations', 'host-a', 60), null, 'not re-entrant');
  assert.equal(await lock.heartbeat(60), true);
  assert.equal(await lock.release(), true);
  assert.equal(await lock.release(), false);
  const again = db.tryLockSync('migrations', 'host-b', 60);
  assert.ok(again.fencingToken > lock.fencingToken);
  assert.equal(again.releaseSync(), true);
  await assert.rejects(db.tryLock('x', 'o', 0), { code: 'invalid_argument' });
  db.close();
});

test('rate limits and results (async and Sync)', async () => {
  const db = open(tmpdb());
  assert.equal(await db.tryRateLimit('api:1', 2, 60), true);
  assert.equal(db.tryRateLimitSync('api:1', 2, 60), true);
  assert.equal(await db.tryRateLimit('api:1', 2, 60), false);
  await db.saveResult(7, { sentAt: 1234 }, 3600);
  assert.deepEqual(await db.getResult(7), { sentAt: 1234 });
  db.saveResultSync(8, [1, 2], 3600);
  assert.deepEqual(db.getResultSync(8), [1, 2]);
  assert.equal(await db.getResult(9), undefined);
  assert.equal(db.getResultSync(9), undefined);
  db.close();
});

test('scheduler: add, list, pause, resume, tick, remove, run', async () => {
  const db = open(tmpdb());
  const sched = db.scheduler();
  await sched.add({ name: 'nightly', queue: 'backups', schedule: '0 3 * * *', payload: { target: 's3' }, expiresS: 3600 });
  await sched.add({ name: 'paris', queue: 'q', schedule: '@hourly', tz: 'Europe/Paris', priority: 2 });
  let list = await sched.list();
  assert.deepEqual(list.map((s) => s.name).sort(), ['nightly', 'paris']);
  const nightly = list.find((s) => s.name === 'nightly');
  assert.equal(nightly.queue, 'backups');
  assert.equal(nightly.schedule, '0 3 * * *');
  assert.deepEqual(nightly.payload, { target: 's3' });
  assert.equal(nightly.paused, false);
  assert.ok(nightly.nextFireAtMs > Date.now());
  await sched.pause('nightly');
  assert.equal((await sched.list()).find((s) => s.name === 'nightly').paused, true);
  await sched.resume('nightly');
  assert.equal((await sched.list()).find((s) => s.name === 'nightly').paused, false);
  assert.deepEqual(await sched.tick(), [], 'nothing due');
  assert.equal(await sched.remove('paris'), true);
  assert.equal(await sched.remove('paris'), false);
  await assert.rejects(sched.pause('paris'), { code: 'not_found' });

  // run(): a schedule due every second fires a job; abort stops it.
  await sched.add({ name: 'often', queue: 'ticks', schedule: '@every 1s', payload: 'tick' });
  const ac = new AbortController();
  const running = sched.run('host-a', { signal: ac.signal, lockTtlS: 2 });
  const ticks = db.queue('ticks');
  const job = await deadline((async () => {
    for await (const j of ticks.claim('w', { timeoutS: 10 })) return j;
    return null;
  })(), 15000, 'a scheduled fire');
  assert.equal(job.payload, 'tick');
  ac.abort();
  await deadline(running, 5000, 'the scheduler to stop');
  db.close();
});
