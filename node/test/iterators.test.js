'use strict';
// Aborting ends iterators promptly, leaks nothing (the process exits on its
// own), and a job claimed in the instant of the abort is given back.
const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { execFile } = require('node:child_process');
const { open } = require('..');
const { tmpdb, deadline } = require('./helpers.js');

const FIXTURE = path.join(__dirname, 'fixtures', 'exit-after-abort.js');

test('abort ends a waiting claim, subscribe, listen and scheduler promptly', async () => {
  const db = open(tmpdb());
  const ac = new AbortController();
  const { signal } = ac;
  const loops = [
    (async () => { for await (const j of db.queue('q').claim('w', { signal })) void j; return 'claim'; })(),
    (async () => { for await (const e of db.stream('s').subscribe('c', { signal })) void e; return 'subscribe'; })(),
    (async () => { for await (const n of db.listen('ch', { signal })) void n; return 'listen'; })(),
    db.scheduler().run('o', { signal }).then(() => 'scheduler'),
  ];
  await new Promise((r) => setTimeout(r, 50)); // let every wait start
  const t0 = performance.now();
  ac.abort();
  const ended = await deadline(Promise.all(loops), 2000, 'the iterators to end');
  assert.deepEqual(ended, ['claim', 'subscribe', 'listen', 'scheduler']);
  assert.ok(performance.now() - t0 < 1000);
  db.close();
});

test('aborted waits leave no thread behind', { skip: process.platform !== 'linux' && 'reads /proc/self/task' }, async () => {
  const fs = require('node:fs');
  const { setMaxListeners } = require('node:events');
  // Waits run on threads named honker-wait; count them.
  const waiting = () => fs.readdirSync('/proc/self/task').filter((t) => {
    try {
      return fs.readFileSync(`/proc/self/task/${t}/comm`, 'utf8').trim() === 'honker-wait';
    } catch {
      return false; // exited meanwhile
    }
  }).length;
  const db = open(tmpdb());
  const ac = new AbortController();
  const { signal } = ac;
  setMaxListeners(100, signal);
  const loops = [];
  try {
    for (let i = 0; i < 10; i++) {
      loops.push((async () => { for await (const j of db.queue('q').claim(`w${i}`, { signal })) void j; })());
      loops.push((async () => { for await (const e of db.stream('s').subscribe(`c${i}`, { signal })) void e; })());
      loops.push((async () => { for await (const n of db.listen('ch', { signal })) void n; })());
    }
    await deadline((async () => {
      while (waiting() < 30) await new Promise((r) => setTimeout(r, 5));
    })(), 10000, 'the 30 waits to start');
    ac.abort();
    await deadline(Promise.all(loops), 5000, 'the loops to end');
    await deadline((async () => {
      while (waiting() > 0) await new Promise((r) => setTimeout(r, 5));
    })(), 5000, 'every wait thread to exit');
  } finally {
    ac.abort();
    db.close();
  }
});

test('an already aborted signal yields nothing', async () => {
  const db = open(tmpdb());
  const q = db.queue('q');
  q.enqueueSync(1);
  const signal = AbortSignal.abort();
  for await (const j of q.claim('w', { signal })) assert.fail(`got job ${j.id}`);
  assert.equal(q.claimOneSync('w').payload, 1, 'the job is still there');
  const s = db.stream('s');
  s.publishSync('e');
  for await (const e of s.subscribe('c', { signal })) assert.fail(`got event ${e.offset}`);
  assert.equal(s.getOffsetSync('c'), 0, 'nothing was consumed');
  const listener = db.listen('ch', { signal });
  db.notifySync('ch', 'n');
  for await (const n of listener) assert.fail(`got notification ${n.id}`);
  db.close();
});

test('break ends the iteration; the job in hand is the caller\'s', async () => {
  const db = open(tmpdb());
  const q = db.queue('q');
  q.enqueueManySync([1, 2]);
  for await (const j of q.claim('w')) {
    assert.equal(await j.ack(), true);
    break;
  }
  assert.equal(q.claimOneSync('w').payload, 2);
  db.close();
});

test('a job claimed in the instant of the abort is given back, not lost, its attempt not counted', async () => {
  const db = open(tmpdb());
  // One attempt: a give-back that counted it (a retry) would dead-letter the job.
  const q = db.queue('q', { maxAttempts: 1 });
  let ended = 0;
  // Count the iterator's give-backs (through the native release) and their outcome.
  const released = [];
  const nativeRelease = db._n.release.bind(db._n);
  db._n.release = (...args) => {
    const p = nativeRelease(...args);
    p.then((ok) => released.push(ok), () => released.push('error'));
    return p;
  };
  for (let i = 0; i < 20; i++) {
    const id = q.enqueueSync(i);
    const before = q.getJobSync(id);
    const ac = new AbortController();
    const it = q.claim('w', { signal: ac.signal });
    const pending = it.next(); // the wait thread claims the due job...
    ac.abort(); // ...while the abort lands
    const r = await deadline(pending, 5000, 'the aborted claim');
    if (!r.done) {
      // Delivered before the abort was seen: the caller has it.
      assert.equal(await r.value.ack(), true);
      continue;
    }
    // Ended: the job was either never claimed or claimed and released;
    // both leave it exactly as it was.
    ended++;
    const job = q.getJobSync(id);
    assert.ok(job, 'the job still exists');
    assert.equal(job.state, 'ready', 'back in the queue');
    assert.equal(job.attempts, 0, 'no attempt used');
    assert.equal(job.lastError, null, 'released, not retried');
    assert.equal(job.workerId, null);
    assert.equal(job.runAtMs, before.runAtMs, 'in its old place');
    assert.equal(q.statsSync().processing, 0);
    const again = q.claimOneSync('w2');
    assert.equal(again.id, id);
    assert.equal(again.attempts, 1, 'its one attempt is still there');
    assert.equal(again.ackSync(), true);
  }
  assert.equal(q.statsSync().dead, 0, 'no give-back dead-lettered a job');
  assert.ok(released.every((ok) => ok === true), `every give-back released its job: ${released}`);
  console.log(`ended by the abort: ${ended} of 20, of which ${released.length} released a job claimed in that instant`);
  db.close();
});

test('timeoutS ends an idle claim', async () => {
  const db = open(tmpdb());
  const r = await deadline(db.queue('q').claim('w', { timeoutS: 0.05 }).next(), 5000, 'the timeout');
  assert.equal(r.done, true);
  db.close();
});

for (const how of ['abort', 'close']) {
  test(`the process exits on its own after ${how} (no waiter keeps it alive)`, async () => {
    const out = await deadline(new Promise((resolve, reject) => {
      execFile(process.execPath, [FIXTURE, tmpdb(), how], (err, stdout, stderr) => {
        if (err) reject(new Error(`${err.message}\n${stderr}`));
        else resolve(stdout);
      });
    }), 10000, 'the child to exit');
    assert.equal(out.trim(), 'ended');
  });
}
