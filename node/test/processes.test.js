'use strict';
// Real processes: exactly-once claiming across workers, cross-process wake,
// and a busy writer in another process.
const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { open } = require('..');
const { tmpdb, deadline, child, killChildren } = require('./helpers.js');

test.after(killChildren);

const WORKER = path.join(__dirname, 'fixtures', 'worker.js');
const HOLDER = path.join(__dirname, 'fixtures', 'hold-write-lock.js');

const TOTAL = 600;

test('three worker processes claim 600 jobs exactly once', async () => {
  const file = tmpdb();
  const db = open(file);
  const q = db.queue('work');
  const workers = [0, 1, 2].map(() => child(WORKER, [file, 'claim']));
  await Promise.all(workers.map((w) => w.next((m) => m === 'ready', 20000, 'worker ready')));
  const acked = [];
  const allAcked = new Promise((resolve) => {
    for (const w of workers) {
      w.proc.on('message', (m) => {
        if (m && m.acked !== undefined && acked.push(m.acked) >= TOTAL) resolve();
      });
    }
  });
  const ids = [];
  for (let i = 0; i < 6; i++) ids.push(...(await q.enqueueMany(Array.from({ length: 100 }, (_, k) => i * 100 + k))));
  const want = new Set(ids);
  await deadline(allAcked, 60000, 'all acks');
  // Stop the workers; they must exit on their own.
  for (const w of workers) w.send('stop');
  await Promise.all(workers.map((w) => w.next((m) => m === 'done', 20000, 'worker done')));
  await Promise.all(workers.map((w) => deadline(w.exited(), 10000, 'worker exit')));
  assert.equal(acked.length, ids.length, 'no job acked twice');
  assert.deepEqual(new Set(acked), want, 'every job acked once');
  assert.ok(workers.filter((w) => w.proc.exitCode === 0).length === 3);
  assert.equal(await q.claimOne('check'), null);
  db.close();
});

test('a commit in this process wakes jobs, events and notifications in another', async () => {
  const file = tmpdb();
  const db = open(file);
  const w = child(WORKER, [file, 'wake']);
  await w.next((m) => m === 'ready', 20000, 'worker ready');
  // The listener registers synchronously before 'ready'; give the
  // subscription and claim their first read by checking round trips.
  for (let i = 0; i < 3; i++) {
    const t0 = Date.now();
    await db.queue('wake').enqueue({ i });
    const job = await w.next((m) => m.kind === 'job', 10000, 'the job to wake the worker');
    assert.deepEqual(job.payload, { i });
    await db.stream('wake').publish({ i });
    const ev = await w.next((m) => m.kind === 'event', 10000, 'the event to wake the worker');
    assert.deepEqual(ev.payload, { i });
    await db.notify('wake', { i });
    const n = await w.next((m) => m.kind === 'notification', 10000, 'the notification to wake the worker');
    assert.deepEqual(n.payload, { i });
    console.log(`round ${i}: job+event+notification woke the other process in ${Date.now() - t0} ms`);
  }
  w.send('stop');
  await w.next((m) => m === 'done', 10000, 'worker done');
  await deadline(w.exited(), 10000, 'worker exit');
  db.close();
});

test('a writer in another process: waits (async) or fails with busy after the timeout', async () => {
  const file = tmpdb();
  open(file).close();
  const holder = child(HOLDER, [file]);
  await holder.next((m) => m === 'locked', 20000, 'the lock');
  const impatient = open(file, { busyTimeoutS: 0.1 });
  await assert.rejects(impatient.queue('q').enqueue(1), { code: 'busy' });
  assert.throws(() => impatient.queue('q').enqueueSync(1), { code: 'busy' });
  impatient.close();
  const patient = open(file, { busyTimeoutS: 20 });
  const enq = patient.queue('q').enqueue(1);
  holder.send('release');
  assert.ok((await deadline(enq, 20000, 'the enqueue')) > 0);
  await holder.next((m) => m === 'released', 10000, 'release');
  patient.close();
});
