'use strict';
// Regression tests for the defects a hostile test pass found (issue #12):
// each failed on the main branch before its fix.
const test = require('node:test');
const assert = require('node:assert/strict');
const Sqlite = require('better-sqlite3');
const honker = require('..');
const { open, HonkerError } = honker;
const { tmpdb, deadline } = require('./helpers.js');

/** Asserts `p` is a Promise (the call did not throw) that rejects with `code`. */
async function rejects(p, code, message) {
  assert.ok(p instanceof Promise, 'a Promise, not a synchronous throw');
  await assert.rejects(p, (e) => {
    assert.ok(e instanceof HonkerError, `expected a HonkerError, got ${e}`);
    assert.equal(e.code, code, e.message);
    if (message) assert.match(e.message, message);
    return true;
  });
}

/** Asserts a synchronous call throws a HonkerError with `code`. */
function throws(fn, code, message) {
  assert.throws(fn, (e) => {
    assert.ok(e instanceof HonkerError, `expected a HonkerError, got ${e}`);
    assert.equal(e.code, code, e.message);
    if (message) assert.match(e.message, message);
    return true;
  });
}

/** Waits for `cond()` with a deadline, looking again every few ms. */
async function until(cond, what, ms = 20000) {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

test('1. absurd instants are invalid_argument, and a panic is code internal (the process lives)', async () => {
  const db = open(tmpdb());
  const q = db.queue('q');
  throws(() => q.enqueueSync({}, { runAt: 1e19 }), 'invalid_argument', /`runAt`/);
  await rejects(q.enqueue({}, { runAt: 1e19 }), 'invalid_argument', /`runAt`/);
  await rejects(q.enqueue({}, { delayS: 1e17 }), 'invalid_argument', /`delay/);
  await rejects(db.tryLock('l', 'o', 1e17), 'invalid_argument', /`ttl/);
  await rejects(db.saveResult(1, {}, 1e17), 'invalid_argument', /`ttl/);
  throws(() => honker.cronNext('* * * * *', 9223372036854775), 'invalid_argument', /`after`/);
  await rejects(db._async(() => db._n.panicForTest()), 'internal', /deliberate panic/);
  assert.equal(await q.enqueue(1) > 0, true, 'the database works after the panic');
  db.close();
});

test('2. cron steps out of range are invalid_cron', () => {
  throws(() => honker.cronNext('1/4294967295 * * * *', 0), 'invalid_cron', /step/);
  assert.equal(honker.cronNext('*/59 * * * *', 0), 59 * 60);
});

test('3. one schedule that cannot fire does not stop the others, and is reported', async () => {
  const db = open(tmpdb());
  const sched = db.scheduler();
  await rejects(sched.add({ name: 'n'.repeat(500), queue: 'q', schedule: '@every 1s' }), 'invalid_argument', /at most 480 bytes/);
  await sched.add({ name: 'good', queue: 'q', schedule: '@every 1s' });
  await sched.add({ name: 'bad', queue: 'q', schedule: '@every 1s' });
  // As an older version could have stored it: a name too long for its key.
  await db.execute("UPDATE _honker_schedules SET name = ? WHERE name = 'bad'", ['b'.repeat(500)]);
  await db.execute('UPDATE _honker_schedules SET next_fire_at = 0');
  const problems = [];
  const stop = new AbortController();
  const running = sched.run('me', { signal: stop.signal, onProblem: (m) => problems.push(m) });
  await until(() => problems.some((m) => m.includes('could not fire')), 'the problem report');
  await until(async () => (await db.queue('q').stats()).ready >= 1, "the good schedule's fire");
  stop.abort();
  await deadline(running, 20000, 'the scheduler to stop');
  const bad = (await sched.list()).find((s) => s.name.startsWith('b'));
  assert.match(bad.lastError, /`key`/);
  db.close();
});

test('4. a stale batch ack leaves the current claim alone', async () => {
  const db = open(tmpdb());
  const q = db.queue('q');
  await q.enqueue({ n: 1 });
  const stale = await q.claimOne('w');
  assert.equal(await stale.retry({ delayS: 0 }), true);
  const current = await q.claimOne('w'); // the same worker name, the next attempt
  assert.equal(current.id, stale.id);
  assert.equal(await q.ackBatch([stale]), 0);
  assert.equal((await q.getJob(stale.id)).state, 'processing');
  assert.equal(await current.ack(), true);
  await rejects(q.ackBatch([stale.id]), 'invalid_argument', /claimed Job objects/);
  db.close();
});

test('7. a crafted file cannot make honker call its functions', async () => {
  const path = tmpdb('hostile');
  const c = new Sqlite(path);
  c.exec(`CREATE TABLE _honker_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
          CREATE TABLE loot (x);
          CREATE TRIGGER grab AFTER INSERT ON _honker_meta BEGIN
            SELECT honker_enqueue('victim', '{}'); INSERT INTO loot VALUES (1);
          END;`);
  c.close();
  throws(() => open(path), 'sqlite', /unsafe use of honker_enqueue/);
  const after = new Sqlite(path);
  assert.equal(after.prepare('SELECT COUNT(*) AS n FROM loot').get().n, 0);
  after.close();

  // An attached file's view cannot release the application's lock.
  const evil = tmpdb('evil');
  const e = new Sqlite(evil);
  e.exec("CREATE VIEW v AS SELECT honker_lock_release('app', 1) AS r");
  e.close();
  const db = open(tmpdb());
  const lock = await db.tryLock('app', 'me');
  await db.execute('ATTACH DATABASE ? AS evil', [evil]);
  await rejects(db.query('SELECT * FROM evil.v'), 'sqlite', /unsafe use of honker_lock_release/);
  assert.equal((await db.lockHolder('app')).fencingToken, lock.fencingToken);
  await lock.release();
  db.close();

  // An application that vouches for its own schema may use triggers.
  const own = open(tmpdb(), { trustedSchema: true });
  await own.execute('CREATE TABLE orders (id INTEGER PRIMARY KEY)');
  await own.execute("CREATE TRIGGER mail AFTER INSERT ON orders BEGIN SELECT honker_enqueue('emails', json_object('order', NEW.id)); END");
  await own.execute('INSERT INTO orders (id) VALUES (7)');
  assert.deepEqual((await own.queue('emails').claimOne('w')).payload, { order: 7 });
  own.close();
});

test("8. a subscription keeps its place: abort, break, the README's pattern", async () => {
  const db = open(tmpdb());
  const s = db.stream('orders');
  const offs = [];
  for (let i = 0; i < 5; i++) offs.push(await s.publish({ i }));
  // Subscribe, then abort after the third event (the README's pattern).
  const done = new AbortController();
  let seen = 0;
  for await (const ev of s.subscribe('billing', { signal: done.signal })) {
    seen += 1;
    if (ev.offset === offs[2]) done.abort();
  }
  assert.equal(seen, 3);
  assert.equal(await s.getOffset('billing'), offs[1], 'all but the event in hand');
  // break
  for await (const ev of s.subscribe('billing')) {
    assert.equal(ev.offset, offs[2], 'only the event in hand comes again');
    break;
  }
  assert.equal(await s.getOffset('billing'), offs[1]);
  db.close();
});

test('9. every Promise API reports every error by rejection', async () => {
  const db = open(tmpdb());
  const q = db.queue('q');
  const s = db.stream('s');
  const circular = {};
  circular.self = circular;
  const job = (await q.enqueue(1)) && (await q.claimOne('w'));
  const lock = await db.tryLock('l', 'o');
  const calls = [
    () => q.enqueue(circular),
    () => q.enqueue(1, { nope: 1 }),
    () => q.enqueueMany('not an array'),
    () => q.ackBatch(null),
    () => q.claimBatch('w', -1),
    () => q.getJob(1.5),
    () => q.cancel(Number.NaN),
    () => q.deadJobs(-1),
    () => q.requeueDead(1.5),
    () => s.publish(circular),
    () => s.publish(1, { nope: 1 }),
    () => s.readSince(Number.NaN),
    () => s.saveOffset('c', 1.5),
    () => s.setRetention({ maxAge: 1 }),
    () => db.notify('c', circular),
    () => db.execute('SELECT ?', [new Date()]),
    () => db.query('SELECT ?', [{}]),
    () => db.tryRateLimit('k', 1.5, 1),
    () => db.saveResult(1, circular, 60),
    () => db.scheduler().add(null),
    () => db.scheduler().run('o', { nope: 1 }),
    () => db.withLock('x', 'not a function'),
    () => job.ack({ nope: 1 }),
    () => job.retry({ nope: 1 }),
    () => job.heartbeat(-1),
    () => lock.heartbeat(-1),
  ];
  for (const call of calls) {
    let p;
    assert.doesNotThrow(() => {
      p = call();
    }, `${call} threw synchronously`);
    assert.ok(p instanceof Promise, `${call} returned a Promise`);
    await assert.rejects(p, (e) => e instanceof HonkerError && typeof e.code === 'string', `${call}`);
  }
  await lock.release();
  db.close();
});

test('10. options are checked everywhere; old duration names are deprecated aliases', async () => {
  const path = tmpdb();
  throws(() => open(path, { busyTimeout: 1 }), 'invalid_argument', /unknown option "busyTimeout"/);
  const db = open(path, { busyTimeoutS: 5, walAutocheckpoint: 500 });
  throws(() => db.queue('q', { maxAttempt: 9 }), 'invalid_argument', /unknown option "maxAttempt"/);
  throws(() => db.stream('s').subscribe('c', { timeOut: 1 }), 'invalid_argument', /unknown option "timeOut"/);
  throws(() => db.listen('c', { sigal: null }), 'invalid_argument', /unknown option "sigal"/);
  throws(() => honker.cronNext('@daily', 0, { zone: 'UTC' }), 'invalid_argument', /unknown option "zone"/);
  const warnings = [];
  const onWarning = (w) => warnings.push(w);
  process.on('warning', onWarning);
  try {
    const q = db.queue('q');
    await q.enqueue(1);
    const job = await q.claimOne('w');
    // `delay` was silently ignored (retried in 0.6 s); now it means 600 seconds.
    assert.equal(await job.retry({ delay: 600 }), true);
    const info = await q.getJob(job.id);
    assert.equal(info.state, 'scheduled');
    assert.ok(info.runAtMs >= Date.now() + 590_000, 'delay is in seconds');
    await rejects(q.enqueue(1, { delay: 1, delayS: 1 }), 'invalid_argument', /not both/);
    await until(() => warnings.some((w) => w.name === 'DeprecationWarning' && /`delay`.*`delayS`/.test(w.message)), 'the warning');
  } finally {
    process.off('warning', onWarning);
  }
  db.close();
});

test('11. a held lock keeps itself alive and reports its loss', async () => {
  const db = open(tmpdb());
  const lock = await db.tryLock('m', 'me', 0.3);
  const first = await db.lockHolder('m');
  await until(async () => (await db.lockHolder('m'))?.expiresAt > first.expiresAt + 0.5, 'renewals past the TTL');
  assert.equal(lock.lost, false);
  lock.check();
  assert.equal(await lock.release(), true);
  assert.equal(await db.lockHolder('m'), null);

  // Lost: someone else holds it now (as after a stall past the TTL).
  await rejects(
    db.withLock('m', async (l) => {
      await db.execute("UPDATE _honker_locks SET token = token + 1000, owner = 'thief' WHERE name = 'm'");
      await until(() => l.lost, 'the keeper noticing');
      throws(() => l.check(), 'lock_lost');
    }, { ttlS: 0.3 }),
    'lock_lost',
  );
  const held = await db.tryLock('busy', 'a');
  await rejects(db.withLock('busy', () => 1), 'lock_held');
  assert.equal(await db.withLock('free', (l) => l.fencingToken > 0), true);
  await held.release();
  db.close();
});

test('12. errors that name the problem; typed job records', async () => {
  const db = open(tmpdb());
  const q = db.queue('q');
  await rejects(db.queue('a\0b').enqueue(1), 'invalid_argument', /NUL/);
  const missing = require('node:path').join(require('node:os').tmpdir(), 'no-such-honker-dir', 'app.db');
  throws(() => open(missing), 'cannot_open', /no-such-honker-dir/);
  const id = await q.enqueue({ to: 'a@b.c' }, { key: 'k1' });
  const info = await q.getJob(id);
  assert.deepEqual(info.payload, { to: 'a@b.c' });
  assert.equal(typeof info.createdAtMs, 'number');
  assert.equal(info.diedAtMs, null);
  db.close();
});
