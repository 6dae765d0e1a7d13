'use strict';
// Bad input is rejected with an Error carrying the right stable `.code`.
const test = require('node:test');
const assert = require('node:assert/strict');
const { open, HonkerError } = require('..');
const { tmpdb } = require('./helpers.js');

/**
 * Asserts `fn` throws (or its Promise rejects with) a HonkerError of `code`
 * (and, when given, a message matching `message`).
 */
async function rejectsWith(code, fn, message) {
  await assert.rejects(async () => fn(), (e) => {
    assert.ok(e instanceof HonkerError, `expected a HonkerError, got ${e}`);
    assert.ok(e instanceof Error);
    assert.equal(e.code, code, e.message);
    if (message) assert.match(e.message, message);
    assert.ok(!e.message.startsWith('honker:'), 'the code is not left in the message');
    return true;
  });
}

test('circular and non-JSON payloads: invalid_json', async () => {
  const db = open(tmpdb());
  const q = db.queue('q');
  const circular = {};
  circular.self = circular;
  await rejectsWith('invalid_json', () => q.enqueue(circular));
  await rejectsWith('invalid_json', () => q.enqueueSync(circular));
  await rejectsWith('invalid_json', () => q.enqueueMany([1, circular]));
  await rejectsWith('invalid_json', () => q.enqueue(10n));
  await rejectsWith('invalid_json', () => q.enqueue(() => 1));
  await rejectsWith('invalid_json', () => db.stream('s').publish(circular));
  await rejectsWith('invalid_json', () => db.notify('c', circular));
  await rejectsWith('invalid_json', () => db.saveResult(1, circular, 60));
  await rejectsWith('invalid_json', () => db.scheduler().add({ name: 'n', queue: 'q', schedule: '@hourly', payload: circular }));
  // undefined is stored as null
  const id = q.enqueueSync(undefined);
  assert.equal((await q.getJob(id)).payload, null);
  db.close();
});

test('bad cron and time zone: invalid_cron, invalid_timezone', async () => {
  const db = open(tmpdb());
  const sched = db.scheduler();
  await rejectsWith('invalid_cron', () => sched.add({ name: 'n', queue: 'q', schedule: 'every tuesday' }));
  await rejectsWith('invalid_cron', () => sched.add({ name: 'n', queue: 'q', schedule: '61 * * * *' }));
  await rejectsWith('invalid_timezone', () => sched.add({ name: 'n', queue: 'q', schedule: '@daily', tz: 'Mars/Olympus' }));
  await rejectsWith('not_found', () => sched.resume('missing'));
  db.close();
});

test('closed database: closed, for every kind of call', async () => {
  const db = open(tmpdb());
  const q = db.queue('q');
  const s = db.stream('s');
  db.close();
  await rejectsWith('closed', () => q.enqueue(1));
  await rejectsWith('closed', () => q.enqueueSync(1));
  await rejectsWith('closed', () => q.claimOne('w'));
  await rejectsWith('closed', () => s.publish(1));
  await rejectsWith('closed', () => db.query('SELECT 1'));
  await rejectsWith('closed', () => db.querySync('SELECT 1'));
  await rejectsWith('closed', () => db.transaction(() => {}));
  await rejectsWith('closed', () => db.tryLock('l', 'o'));
  await rejectsWith('closed', () => db.listen('c'));
  // Iterators on a closed database simply end.
  assert.equal((await q.claim('w').next()).done, true);
  assert.equal((await s.subscribe('c').next()).done, true);
});

test('invalid arguments: invalid_argument', async () => {
  const db = open(tmpdb());
  const q = db.queue('q');
  await rejectsWith('invalid_argument', () => db.queue('').enqueue(1));
  await rejectsWith('invalid_argument', () => q.enqueue(1, { delayS: -1 }));
  await rejectsWith('invalid_argument', () => q.enqueueSync(1, { expiresS: Number.NaN }));
  await rejectsWith('invalid_argument', () => q.claimBatch('w', -1));
  await rejectsWith('invalid_argument', () => q.claimBatch('', 1));
  await rejectsWith('invalid_argument', () => db.tryRateLimit('k', 1, 0));
  await rejectsWith('invalid_argument', () => db.saveResult(1, 1, -5));
  await rejectsWith('invalid_argument', () => q.enqueue(1, { tx: {} }));
  // A wrong JS type for an argument (napi-rs's own check) is invalid_argument too.
  await rejectsWith('invalid_argument', () => q.enqueueSync(1, { priority: 'high' }));
  await rejectsWith('invalid_argument', () => db.executeSync('SELECT ?', [{}]));
  await rejectsWith('invalid_argument', () => open(''));
  db.close();
});

test('numbers: whole where whole is meant, never truncated, wrapped or zeroed', async () => {
  const db = open(tmpdb());
  const q = db.queue('q');
  const bad = (fn, message) => rejectsWith('invalid_argument', fn, message);
  await bad(() => q.enqueueSync(1, { maxAttempts: -1 }), /`maxAttempts`: must be a whole number from 1 to 4294967295, got -1/);
  await bad(() => q.enqueue(1, { maxAttempts: 1.5 }), /`maxAttempts`: must be a whole number, got 1.5/);
  await bad(() => db.queue('z', { maxAttempts: -1 }).enqueueSync(1), /`maxAttempts`/);
  await bad(() => q.enqueueSync(1, { priority: 1e300 }), /`priority`: must be a whole number, got 1e300/);
  await bad(() => q.enqueueSync(1, { priority: Number.NaN }), /`priority`/);
  await bad(() => q.claimBatchSync('w', 1.5), /`n`: must be a whole number/);
  await bad(() => q.claimBatch('w', Number.NaN), /`n`/);
  await bad(() => db.stream('s').readSinceSync(Number.NaN, 10), /`offset`/);
  await bad(() => db.stream('s').readSince(0, -1), /`limit`: must not be negative, got -1/);
  await bad(() => db.stream('s').saveOffsetSync('c', 2.5), /`offset`/);
  await bad(() => db.tryRateLimitSync('k', 1.5, 60), /`limit`: must be a whole number/);
  await bad(() => db.saveResultSync(1.5, 'v', 60), /`jobId`/);
  await bad(() => db.stream('s').setRetentionSync({ maxCount: 0.5 }), /`maxCount`/);
  await bad(() => db.scheduler().add({ name: 'n', queue: 'q', schedule: '@hourly', payload: 1, priority: 0.5 }), /`priority`/);
  // A misspelt option is an error, not a silent default.
  await bad(() => q.enqueueSync(1, { delay_s: 60 }), /unknown option "delay_s" \(expected tx, delayS, runAt/);
  await bad(() => q.enqueueMany([1], { priorty: 1 }), /unknown option "priorty"/);
  // A SQL parameter of no SQL type is named.
  await bad(() => db.executeSync('SELECT ?, ?', [1, new Date()]), /`params`: parameter 2 is a Date/);
  assert.deepEqual(q.claimBatchSync('w', 10), [], 'none of the refused calls enqueued anything');
  assert.equal(await db.stream('s').lastOffset(), 0);
  db.close();
});

test('sql errors: sqlite', async () => {
  const db = open(tmpdb());
  await rejectsWith('sqlite', () => db.execute('NOT SQL'));
  await rejectsWith('sqlite', () => db.transaction((tx) => tx.execute('NOT SQL')));
  db.close();
});

test('a corrupt payload read back: decode', async () => {
  const db = open(tmpdb());
  const q = db.queue('q');
  const id = q.enqueueSync({ ok: true });
  // Written behind honker's back: not JSON.
  db.executeSync('UPDATE _honker_live SET payload = ? WHERE id = ?', ['{oops', id]);
  await rejectsWith('decode', () => q.claimOne('w'));
  db.close();
});

test('ERROR_CODES is honker-core\'s list of codes (the addon\'s), in order', () => {
  const { native } = require('../dist/native.js');
  assert.deepEqual([...require('..').ERROR_CODES], native.errorCodes());
});

test('the addon sets .code itself, on thrown errors and on rejections alike', async () => {
  const { native } = require('../dist/native.js');
  const db = new native.NativeDatabase(tmpdb());
  // Thrown on this thread: a plain Error whose code is the core's.
  assert.throws(() => db.enqueue(true, 'q', '{}', { delayS: -1 }, null, 3), (e) => {
    assert.equal(e.code, 'invalid_argument');
    assert.match(e.message, /delayS/);
    return true;
  });
  // Rejected from the libuv pool and from a wait thread.
  db.close();
  await assert.rejects(db.enqueue(false, 'q', '{}', null, null, 3), { code: 'closed' });
  await assert.rejects(db.claimNext('q', 'w', db.stopFlag(), 30, 3, 0.01), { code: 'closed' });
});
