'use strict';
// No wait blocks the event loop: a 1 ms interval keeps its pace while this
// process waits for a job, a stream event, a notification, and a writer
// in another process holding the lock.
const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { open } = require('..');
const { tmpdb, deadline, pace, child, killChildren } = require('./helpers.js');

test.after(killChildren);

const HOLDER = path.join(__dirname, 'fixtures', 'hold-write-lock.js');
const WAIT_MS = 300;
// A blocked loop would show one gap of about WAIT_MS.
const MAX_GAP_MS = 100;

function kept(what, r) {
  console.log(`${what}: waited ${r.elapsed.toFixed(0)} ms, ${r.ticks} ticks, largest gap ${r.maxGap.toFixed(1)} ms`);
  assert.ok(r.elapsed >= WAIT_MS * 0.9, `${what}: the wait lasted ${r.elapsed} ms`);
  assert.ok(r.maxGap < MAX_GAP_MS, `${what}: the interval stalled for ${r.maxGap.toFixed(1)} ms`);
  assert.ok(r.ticks >= r.elapsed / 10, `${what}: only ${r.ticks} ticks in ${r.elapsed.toFixed(0)} ms`);
}

/** Resolves after `ms` (the trigger for a wait, not a test's own wait). */
const after = (ms, fn) => new Promise((resolve) => setTimeout(() => resolve(fn()), ms));

test('waiting for a job', async () => {
  const db = open(tmpdb());
  const q = db.queue('q');
  const r = await pace(async () => {
    after(WAIT_MS, () => q.enqueueSync('late'));
    for await (const job of q.claim('w', { timeoutS: 30 })) return job;
    return null;
  });
  assert.equal(r.value.payload, 'late');
  kept('job', r);
  db.close();
});

test('waiting for a stream event', async () => {
  const db = open(tmpdb());
  const s = db.stream('s');
  const r = await pace(async () => {
    after(WAIT_MS, () => s.publishSync('late'));
    for await (const ev of s.subscribe('c', { timeoutS: 30 })) return ev;
    return null;
  });
  assert.equal(r.value.payload, 'late');
  kept('stream event', r);
  db.close();
});

test('waiting for a notification', async () => {
  const db = open(tmpdb());
  const r = await pace(async () => {
    const l = db.listen('ch');
    after(WAIT_MS, () => db.notifySync('ch', 'late'));
    for await (const n of l) return n;
    return null;
  });
  assert.equal(r.value.payload, 'late');
  kept('notification', r);
  db.close();
});

test('waiting for a writer in another process (enqueue, lock, transaction)', async () => {
  const file = tmpdb();
  open(file).close();
  const db = open(file, { busyTimeoutS: 30 });
  for (const [what, call] of [
    ['enqueue', () => db.queue('q').enqueue(1)],
    ['tryLock', () => db.tryLock('l', `o${Math.random()}`, 60)],
    ['transaction', () => db.transaction((tx) => tx.execute('CREATE TABLE IF NOT EXISTS t (x)'))],
  ]) {
    const holder = child(HOLDER, [file]);
    await holder.next((m) => m === 'locked', 20000, 'the lock');
    const r = await pace(async () => {
      after(WAIT_MS, () => holder.send('release'));
      return deadline(call(), 30000, what);
    });
    kept(`${what} behind a busy writer`, r);
    await holder.next((m) => m === 'released', 10000, 'release');
    await deadline(holder.exited(), 10000, 'holder exit');
  }
  db.close();
});
