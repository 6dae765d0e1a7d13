// Compiled with `tsc --noEmit` (make node-test): the public types accept
// the README's usage and reject misuse.
import {
  open, cronNext, HonkerError, type Job, type ErrorCode, type Event, type Notification,
  type QueueStats, type Retention, type LockInfo,
  Retry, type Task, type TaskContext, type TaskHandle, type CancelReason,
} from '../dist/index.js';

async function tasks(signal: AbortSignal): Promise<void> {
  const db = open('app.db');
  const emails = db.queue('emails');
  const send: Task<{ to: string }, { sent: string }> = emails.task(
    'send_email',
    async (p: { to: string }, ctx: TaskContext) => {
      ctx.signal.throwIfAborted();
      const why: CancelReason | null = ctx.cancelReason;
      void why;
      return { sent: p.to };
    },
    { timeoutS: 30, retry: Retry.exponential({ baseS: 2, maxS: 600 }), maxAttempts: 5, storeResult: true },
  );
  emails.task('fixed', () => undefined, { retry: Retry.fixed(5) });
  emails.task('fn', () => 1, { retry: (attempt: number) => attempt * 10 });
  const h: TaskHandle<{ sent: string }> = await send.enqueue({ to: 'a@example.com' }, { delayS: 60 });
  const r: { sent: string } | undefined = await h.result({ timeoutS: 10, signal });
  void r;
  const worker = db.worker({ queues: ['emails'], concurrency: 8, signal, graceS: 5 });
  await worker.run();
  const ran: number = await db.worker().drain();
  void ran;
  // @ts-expect-error the payload is typed
  await send.enqueue({ too: 'x' });
  // @ts-expect-error unknown tasks are dead-lettered or left
  db.worker({ unknownTasks: 'drop' });
}
void tasks;

async function main(signal: AbortSignal): Promise<void> {
  const db = open('app.db', { busyTimeoutS: 5 });
  const emails = db.queue('emails', { visibilityTimeoutS: 300, maxAttempts: 3 });
  const id: number = await db.transaction(async (tx) => {
    tx.execute('INSERT INTO orders (user_id) VALUES (?)', [42]);
    const rows: Record<string, unknown>[] = tx.query('SELECT 1 AS one');
    void rows;
    return emails.enqueue({ to: 'alice@example.com' }, { tx, priority: 1, delayS: 0.5, key: 'k' });
  });
  const ids: number[] = emails.enqueueManySync([1, 2], { runAt: new Date() });
  const syncId: number = emails.enqueueSync({ a: 1 }, { runAt: 1_700_000_000, expiresS: 60, maxAttempts: 5 });
  for await (const job of emails.claim<{ to: string }>('worker-1', { signal })) {
    const to: string = job.payload.to;
    void to;
    const ok: boolean = await job.ack();
    await job.retry({ delayS: 1, error: 'x' });
    await job.fail('boom');
    await job.heartbeat(30);
    void ok;
  }
  const one: Job | null = await emails.claimOne('w');
  const batch: Job[] = emails.claimBatchSync('w', 128);
  const acked: number = await emails.ackBatch(batch);
  const info = await emails.getJob(id);
  const state: string | undefined = info?.state;
  const cancelled: boolean = await emails.cancel(id);
  const dead = await emails.deadJobs(10);
  await emails.requeueDead(dead[0].id);
  void [ids, syncId, one, acked, state, cancelled];

  const orders = db.stream('orders');
  const off: number = await orders.publish({ id: 1 }, { key: 'k' });
  const evs: Event[] = await orders.readSince(0, 10);
  await orders.saveOffset('c', off);
  const got: number = orders.getOffsetSync('c');
  for await (const ev of orders.subscribe('c', { signal })) {
    const o: number = ev.offset;
    void o;
  }
  void [evs, got];

  await db.notify('ch', { x: 1 });
  for await (const n of db.listen('ch', { signal })) {
    const c: string = n.channel;
    void c;
  }
  const n: Notification | null = await db.listen('ch').recv(1);
  void n;

  const lock = await db.tryLock('migrations', 'host-a', 60);
  if (lock) {
    const t: number = lock.fencingToken;
    await lock.heartbeat(60);
    await lock.release();
    void t;
  }
  const allowed: boolean = await db.tryRateLimit('api', 100, 60);
  await db.saveResult(1, { sent: true }, 3600);
  const r: { sent: boolean } | undefined = await db.getResult<{ sent: boolean }>(1);
  void [allowed, r];

  const sched = db.scheduler();
  await sched.add({ name: 'nightly', queue: 'backups', schedule: '0 3 * * *', payload: { t: 's3' }, expiresS: 3600, tz: 'Europe/Paris' });
  await sched.pause('nightly');
  await sched.resume('nightly');
  const list = await sched.list();
  void list[0].nextFireAtMs;
  await sched.remove('nightly');
  await sched.run('host-a', { signal });

  const stats: QueueStats = await emails.stats();
  const statsNow: number = emails.statsSync().ready + stats.dead;
  const swept: number = await emails.sweepExpired();
  const due: number | null = (await emails.nextDeadline()) ?? emails.nextDeadlineSync();
  const released: boolean = (await one?.release()) ?? one?.releaseSync() ?? false;
  const last: number = (await orders.lastOffset()) + orders.lastOffsetSync();
  await orders.setRetention({ maxAgeS: 86400, maxCount: 1000 });
  orders.setRetentionSync({ maxCount: null });
  await orders.setRetention();
  const kept: Retention = await orders.retention();
  const keptCount: number | null = orders.retentionSync().maxCount;
  const pruned: number = await orders.prune();
  const holder: LockInfo | null = (await db.lockHolder('migrations')) ?? db.lockHolderSync('migrations');
  const expiresAt: number | undefined = holder?.expiresAt;
  const sweptResults: number = await db.sweepResults();
  const soonest: number | null = await sched.soonest();
  const nextFire: number = cronNext('0 2 * * *', new Date(), { tz: 'America/New_York' }) + cronNext('@daily') + cronNext('@hourly', 0);
  void [statsNow, swept, due, released, last, kept, keptCount, pruned, expiresAt, sweptResults, soonest, nextFire];

  try {
    emails.enqueueSync(undefined);
  } catch (e) {
    if (e instanceof HonkerError) {
      const code: ErrorCode = e.code;
      void code;
    }
  }
  db.close();

  // @ts-expect-error the payload's options are an object, not a number
  await emails.enqueue({}, 5);
  // @ts-expect-error claim needs a worker name
  emails.claim();
  // @ts-expect-error the retention is an object
  await orders.setRetention(60);
  // @ts-expect-error the zone goes in the options object
  cronNext('0 3 * * *', 0, 'UTC');
  // @ts-expect-error codes are a closed set
  const bad: ErrorCode = 'nope';
  void bad;
}

void main;
