"""honker's Python package beside the stdlib sqlite3 module doing single-row
insert transactions on the same kind of file (WAL, synchronous=NORMAL), in
the same run, in alternating rounds; medians.

Run: make bench-python (builds the package in release mode first).
"""

import asyncio
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import threading
import time

import honker

ROUNDS = 7
QUICK = "--quick" in sys.argv
N = 300 if QUICK else 2000


def stdlib_db(path):
    c = sqlite3.connect(path, isolation_level=None)
    c.execute("PRAGMA journal_mode=WAL")
    c.execute("PRAGMA synchronous=NORMAL")
    c.execute(
        "CREATE TABLE jobs (id INTEGER PRIMARY KEY, queue TEXT NOT NULL, payload TEXT NOT NULL,"
        " run_at INTEGER NOT NULL, worker TEXT, created_at INTEGER NOT NULL)"
    )
    # The same minimal job table as the Rust bench's raw baseline.
    c.execute("CREATE INDEX jobs_ready ON jobs (queue, run_at, id) WHERE worker IS NULL")
    return c


def stdlib_insert(c, i):
    now = int(time.time() * 1000)
    c.execute(
        "INSERT INTO jobs (queue, payload, run_at, created_at) VALUES (?, ?, ?, ?)",
        ("bench", json.dumps({"n": i}), now, now),
    )


def stdlib_claim_ack(c):
    """The bare floor of a claim and an ack: two transactions, no leases,
    attempts, priorities, delays or dead letters."""
    row = c.execute(
        "UPDATE jobs SET worker = 'w' WHERE id = (SELECT id FROM jobs WHERE queue = 'bench' AND worker IS NULL"
        " ORDER BY run_at, id LIMIT 1) RETURNING id, payload"
    ).fetchone()
    json.loads(row[1])
    assert c.execute("DELETE FROM jobs WHERE id = ? AND worker = 'w'", (row[0],)).rowcount == 1


def rate(n, f):
    t = time.perf_counter()
    f()
    return n / (time.perf_counter() - t)


def main():
    d = tempfile.mkdtemp()
    raw = stdlib_db(os.path.join(d, "raw.db"))
    db = honker.open(os.path.join(d, "honker.db"))
    q = db.queue("bench")
    rows = {
        k: []
        for k in (
            "raw",
            "raw_claim_ack",
            "enqueue",
            "enqueue_many",
            "claim_ack",
            "batch128",
            "async",
            "async_ack",
            "enqueue_async",
            "worker",
        )
    }
    tq = db.queue("tasks")
    done = [0]
    finished = threading.Event()

    @tq.task(name="noop")
    def noop(i):
        done[0] += 1
        if done[0] == N:
            finished.set()

    def worker_round():
        """The worker runtime, concurrency 1, no-op sync tasks: from the first
        claim to the last job acked (run() stops once the last one ran)."""
        done[0] = 0
        finished.clear()
        db.worker(["tasks"], concurrency=1).run(stop=finished)
    counter = [0]

    def raw_round():
        for _ in range(N):
            stdlib_insert(raw, counter[0])
            counter[0] += 1

    def raw_claim_ack_round():
        for _ in range(N):
            stdlib_claim_ack(raw)

    def enqueue_round():
        for i in range(N):
            q.enqueue({"n": i})

    def enqueue_many_round():
        for b in range(N // 100 * 10):
            q.enqueue_many([{"n": b * 100 + i} for i in range(100)])

    def claim_ack_round():
        for _ in range(N):
            job = q.claim_one("w")
            assert job is not None and job.ack()

    def batch_round():
        done = 0
        while done < N * 10:
            jobs = q.claim_batch("w", 128)
            assert jobs and q.ack_batch(jobs) == len(jobs)
            done += len(jobs)

    async def async_round():
        n = 0
        async for job in q.claim("w", timeout_s=5):
            assert job.ack()
            n += 1
            if n == N:
                break
        assert n == N, f"the async loop got {n} of {N} jobs"

    async def async_ack_round():
        n = 0
        async for job in q.claim("w", timeout_s=5):
            assert await job.ack_async()
            n += 1
            if n == N:
                break
        assert n == N, f"the async loop got {n} of {N} jobs"

    async def enqueue_async_round():
        for i in range(N):
            await q.enqueue_async({"n": i})

    for _ in range(ROUNDS):
        rows["raw"].append(rate(N, raw_round))
        rows["enqueue"].append(rate(N, enqueue_round))
        rows["raw"].append(rate(N, raw_round))
        rows["enqueue_many"].append(rate(N // 100 * 1000, enqueue_many_round))
        rows["claim_ack"].append(rate(N, claim_ack_round))
        rows["raw_claim_ack"].append(rate(N, raw_claim_ack_round))
        rows["batch128"].append(rate(N * 10, batch_round))
        q.enqueue_many([{"n": i} for i in range(N)])  # untimed: the async round's jobs
        rows["async"].append(rate(N, lambda: asyncio.run(async_round())))
        rows["enqueue_async"].append(rate(N, lambda: asyncio.run(enqueue_async_round())))
        rows["async_ack"].append(rate(N, lambda: asyncio.run(async_ack_round())))
        tq.enqueue_many([{"task": "noop", "args": [i]} for i in range(N)])  # untimed
        rows["worker"].append(rate(N, worker_round))
        # Drain what is left so every round starts from the same depth.
        while q.claim_batch("w", 1000):
            pass
    raw_rate = statistics.median(rows["raw"])
    print(f"honker Python bench (sqlite3 {sqlite3.sqlite_version} for the baseline), {ROUNDS} rounds, medians")
    print()
    print("| operation | ops/s | / stdlib single-row insert txn |")
    print("| --- | ---: | ---: |")
    print(f"| stdlib sqlite3: INSERT, 1 per transaction | {raw_rate:.0f} | 1.00 |")
    for key, label in [
        ("raw_claim_ack", "stdlib sqlite3: claim (UPDATE … RETURNING) + ack (DELETE), the bare floor"),
        ("enqueue", "enqueue, 1 per transaction"),
        ("enqueue_many", "enqueue_many, 100 per transaction"),
        ("claim_ack", "claim_one + ack"),
        ("batch128", "claim_batch(128) + ack_batch"),
        ("enqueue_async", "await enqueue_async, 1 per transaction"),
        ("async", "async for claim loop + ack, end to end"),
        ("async_ack", "async for claim loop + await ack_async, end to end"),
        ("worker", "worker runtime: no-op sync tasks, concurrency 1"),
    ]:
        r = statistics.median(rows[key])
        print(f"| {label} | {r:.0f} | {r / raw_rate:.2f} |")
    print()
    e = statistics.median(rows["enqueue"]) / raw_rate
    c = statistics.median(rows["claim_ack"]) / raw_rate
    floor = statistics.median(rows["raw_claim_ack"]) / raw_rate
    print(f"single enqueue / stdlib insert: {e:.2f} (goal: at least 0.8); claim+ack / stdlib insert: {c:.2f} (goal: at least 0.4)")
    print(f"claim+ack / the stdlib floor of claim+ack: {c / floor:.2f}")
    w = statistics.median(rows["worker"]) / raw_rate
    print(f"worker (no-op tasks, concurrency 1) / stdlib insert: {w:.2f} (goal: at least 0.6)")


if __name__ == "__main__":
    main()
