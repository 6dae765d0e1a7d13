// The Node roles of the cross-language suite, run as separate processes by
// run.py: producer, worker, listener, publisher, consumer, scheduler, lock, rate.
// Imports the package from the repository's node/ directory.
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const here = path.dirname(fileURLToPath(import.meta.url));
const { open } = createRequire(import.meta.url)(path.join(here, '..', '..', 'node'));

class Rollback extends Error {}

// n business transactions, each an order and its job; every fifth rolls back.
async function producer(file, queue, n, workers, prefix) {
  const db = open(file);
  const q = db.queue(queue);
  for (let i = 0; i < n; i++) {
    const ref = `${prefix}-${i}`;
    try {
      await db.transaction(async (tx) => {
        tx.execute('INSERT INTO orders (ref) VALUES (?)', [ref]);
        await q.enqueue({ order_ref: ref }, { tx });
        if (i % 5 === 4) throw new Rollback();
      });
    } catch (e) {
      if (!(e instanceof Rollback)) throw e;
    }
  }
  for (let w = 0; w < workers; w++) await q.enqueue({ stop: true }, { priority: -1 });
  db.close();
}

// n business transactions, each an order and its ship_order task (every
// fifth rolls back); then reads every committed task's result back, as the
// handler (in another language) returned it.
async function taskProducer(file, queue, n, prefix) {
  const db = open(file);
  const shipOrder = db.queue(queue).task('ship_order', () => {
    throw new Error('ship_order runs on a worker in another language');
  });
  const handles = [];
  for (let i = 0; i < n; i++) {
    const ref = `${prefix}-${i}`;
    try {
      const h = await db.transaction(async (tx) => {
        tx.execute('INSERT INTO orders (ref) VALUES (?)', [ref]);
        const handle = await shipOrder.enqueue(ref, { tx });
        if (i % 5 === 4) throw new Rollback();
        return handle;
      });
      handles.push([ref, h]);
    } catch (e) {
      if (!(e instanceof Rollback)) throw e;
    }
  }
  const by = {};
  for (const [ref, h] of handles) {
    const r = await h.result({ timeoutS: 60 });
    if (r?.order_ref !== ref) throw new Error(`job ${h.id} for ${ref}: result ${JSON.stringify(r)}`);
    by[r.lang] = (by[r.lang] ?? 0) + 1;
  }
  console.log(`${handles.length} results read back, by ${JSON.stringify(by)}`);
  db.close();
}

// Runs the ship_order task (recording each run in `processed`) until
// stdin closes, then drains.
async function taskWorker(file, queue, name, probe) {
  const db = open(file);
  // With a probe queue: its `probe` task prints "probed", so the caller
  // knows this worker has looked at its queues since the probe was enqueued.
  if (probe) db.queue(probe).task('probe', () => console.log('probed'));
  db.queue(queue).task('ship_order', async (orderRef, ctx) => {
    await db.execute("INSERT INTO processed (job_id, order_ref, worker, lang) VALUES (?, ?, ?, 'node')", [
      ctx.id,
      orderRef,
      name,
    ]);
    return { order_ref: orderRef, lang: 'node', worker: name };
  });
  const stop = new AbortController();
  process.stdin.on('end', () => stop.abort());
  process.stdin.resume();
  const running = db.worker({ workerId: name, concurrency: 4, signal: stop.signal }).run();
  console.log('ready');
  await running;
  db.close();
}

// Claims until a stop job; the effect and the ack commit together.
async function worker(file, queue, name) {
  const db = open(file);
  const q = db.queue(queue);
  console.log('ready');
  for await (const job of q.claim(name, { timeoutS: 60 })) {
    if (job.payload.stop) {
      await job.ack();
      db.close();
      return;
    }
    await db.transaction(async (tx) => {
      tx.execute("INSERT INTO processed (job_id, order_ref, worker, lang) VALUES (?, ?, ?, 'node')", [
        job.id,
        job.payload.order_ref,
        name,
      ]);
      if (!(await job.ack({ tx }))) throw new Error(`lost the lease on job ${job.id}`);
    });
  }
  throw new Error(`${name}: no job for 60 s`);
}

// Prints the wall-clock time (ns) at which each notification arrived.
async function listener(file, channel, n) {
  const db = open(file);
  const sub = db.listen(channel);
  console.log('ready');
  for (let i = 0; i < n; i++) {
    const got = await sub.recv(60);
    const at = BigInt(Math.round((performance.timeOrigin + performance.now()) * 1e6));
    if (!got || got.payload.i !== i) throw new Error(`notification ${i}: got ${JSON.stringify(got)}`);
    console.log(at.toString());
  }
  sub.close();
  db.close();
}

async function publisher(file, stream, first, end) {
  const db = open(file);
  const s = db.stream(stream);
  for (let i = first; i < end; i++) await s.publish({ i }, { key: `k${i % 7}` });
  db.close();
}

async function consumer(file, stream, name, last) {
  const db = open(file);
  const s = db.stream(stream);
  const sub = s.subscribe(name, { timeoutS: 60 });
  console.log('ready');
  for await (const ev of sub) {
    console.log(String(ev.payload.i));
    if (ev.payload.i === last) {
      await sub.commit();
      db.close();
      return;
    }
  }
  throw new Error(`${name}: no event for 60 s`);
}

// Leads or stands by (leader lock TTL 1 s) until stdin closes.
async function scheduler(file, owner) {
  const db = open(file);
  const sched = db.scheduler();
  await sched.add({ name: 'tick', queue: 'ticks', schedule: '* * * * * *', payload: { from: 'schedule' } });
  const stop = new AbortController();
  process.stdin.on('end', () => stop.abort());
  process.stdin.resume();
  console.log('ready');
  await sched.run(owner, { signal: stop.signal, lockTtlS: 1 });
  db.close();
}

// Tries the lock: prints its fencing token (and releases it) or "none".
async function lock(file, name, owner) {
  const db = open(file);
  const held = await db.tryLock(name, owner, 30);
  if (held) {
    console.log(String(held.fencingToken));
    await held.release();
  } else {
    console.log('none');
  }
  db.close();
}

// Prints 1 if the call is within the rate limit, else 0.
async function rate(file, key, limit, perS) {
  const db = open(file);
  console.log((await db.tryRateLimit(key, limit, perS)) ? '1' : '0');
  db.close();
}

const [role, ...args] = process.argv.slice(2);
const roles = {
  producer: () => producer(args[0], args[1], Number(args[2]), Number(args[3]), args[4]),
  worker: () => worker(args[0], args[1], args[2]),
  listener: () => listener(args[0], args[1], Number(args[2])),
  publisher: () => publisher(args[0], args[1], Number(args[2]), Number(args[3])),
  consumer: () => consumer(args[0], args[1], args[2], Number(args[3])),
  scheduler: () => scheduler(args[0], args[1]),
  lock: () => lock(args[0], args[1], args[2]),
  rate: () => rate(args[0], args[1], Number(args[2]), Number(args[3])),
  'task-producer': () => taskProducer(args[0], args[1], Number(args[2]), args[3]),
  'task-worker': () => taskWorker(args[0], args[1], args[2], args[3]),
};
if (!roles[role]) {
  console.error(`unknown role ${role}`);
  process.exit(2);
}
roles[role]().catch((e) => {
  console.error(e);
  process.exit(1);
});
