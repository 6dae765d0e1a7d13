"""The Python roles of the cross-language suite, run as separate processes
by run.py: ``producer``, ``worker``, ``listener``, ``publisher``,
``consumer``, ``scheduler``, ``task-producer``, ``task-worker``."""

from __future__ import annotations

import sys
import threading
import time

import honker


class Rollback(Exception):
    pass


def producer(path: str, queue: str, n: int, workers: int, prefix: str) -> None:
    """n business transactions, each an order and its job; every fifth rolls back."""
    db = honker.open(path)
    q = db.queue(queue)
    for i in range(n):
        ref = f"{prefix}-{i}"
        try:
            with db.transaction() as tx:
                tx.execute("INSERT INTO orders (ref) VALUES (?)", [ref])
                q.enqueue({"order_ref": ref}, tx=tx)
                if i % 5 == 4:
                    raise Rollback
        except Rollback:
            pass
    for _ in range(workers):
        q.enqueue({"stop": True}, priority=-1)
    db.close()


def task_worker(path: str, queue: str, name: str, probe: str) -> None:
    """Runs ``ship_order`` tasks of ``queue`` (recording each order in
    ``processed``) and ``probe`` tasks of the queue ``probe`` (printing
    "probed": the worker has looked at its queues since the probe was
    enqueued) until stdin closes, then drains."""
    db = honker.open(path)

    @db.queue(queue).task(name="ship_order")
    def ship_order(order_ref: str) -> dict[str, str]:
        with db.transaction() as tx:
            tx.execute(
                "INSERT INTO processed (job_id, order_ref, worker, lang) VALUES (?, ?, ?, 'python')",
                [honker.current_task().id, order_ref, name],
            )
        return {"order_ref": order_ref, "lang": "python", "worker": name}

    @db.queue(probe).task(name="probe")
    def probe_task() -> None:
        sys.stdout.write("probed\n")
        sys.stdout.flush()

    stop = threading.Event()

    def stop_at_eof() -> None:
        sys.stdin.read()
        stop.set()

    threading.Thread(target=stop_at_eof, daemon=True).start()
    print("ready", flush=True)
    db.worker(queues=[queue, probe], worker_id=name, concurrency=4).run(stop=stop)
    db.close()


def task_producer(path: str, queue: str, n: int, prefix: str) -> None:
    """n business transactions, each an order and its ``ship_order`` task
    (every fifth rolls back); then reads every committed task's result back,
    as the handler (in another language) returned it."""
    db = honker.open(path)
    q = db.queue(queue)

    @q.task(name="ship_order")
    def ship_order(order_ref: str) -> dict[str, str]:
        raise RuntimeError("ship_order runs on a worker in another language")

    handles: list[tuple[str, honker.TaskHandle]] = []
    for i in range(n):
        ref = f"{prefix}-{i}"
        try:
            with db.transaction() as tx:
                tx.execute("INSERT INTO orders (ref) VALUES (?)", [ref])
                h = ship_order.options(tx=tx).enqueue(ref)
                if i % 5 == 4:
                    raise Rollback
            handles.append((ref, h))
        except Rollback:
            pass
    by: dict[str, int] = {}
    for ref, h in handles:
        r = h.result(timeout=60)
        if not isinstance(r, dict) or r.get("order_ref") != ref:
            raise SystemExit(f"job {h.id} for {ref}: result {r!r}")
        by[r["lang"]] = by.get(r["lang"], 0) + 1
    print(f"{len(handles)} results read back, by {by}", flush=True)
    db.close()


def worker(path: str, queue: str, name: str) -> None:
    """Claims until a stop job; the effect and the ack commit together."""
    db = honker.open(path)
    q = db.queue(queue)
    print("ready", flush=True)
    for job in q.claim(name, timeout_s=60):
        if job.payload.get("stop"):
            job.ack()
            db.close()
            return
        with db.transaction() as tx:
            tx.execute(
                "INSERT INTO processed (job_id, order_ref, worker, lang) VALUES (?, ?, ?, 'python')",
                [job.id, job.payload["order_ref"], name],
            )
            if not job.ack(tx=tx):
                raise SystemExit(f"lost the lease on job {job.id}")
    raise SystemExit(f"{name}: no job for 60 s")


def listener(path: str, channel: str, n: int) -> None:
    """Prints the wall-clock time (ns) at which each notification arrived."""
    db = honker.open(path)
    sub = db.listen(channel)
    print("ready", flush=True)
    for i in range(n):
        got = sub.recv(timeout_s=60)
        at = time.time_ns()
        if got is None or got.payload != {"i": i}:
            raise SystemExit(f"notification {i}: got {got!r}")
        print(at, flush=True)
    db.close()


def publisher(path: str, stream: str, first: int, end: int) -> None:
    """Events first..end-1, one transaction each."""
    db = honker.open(path)
    s = db.stream(stream)
    for i in range(first, end):
        s.publish({"i": i}, key=f"k{i % 7}")
    db.close()


def consumer(path: str, stream: str, name: str, last: int) -> None:
    """Prints each event's i (once handled) until i == last."""
    db = honker.open(path)
    s = db.stream(stream)
    print("ready", flush=True)
    for ev in s.subscribe(name, timeout_s=60):
        print(ev.payload["i"], flush=True)
        if ev.payload["i"] == last:
            s.save_offset(name, ev.offset)  # moving past it would save it; we stop here
            db.close()
            return
    raise SystemExit(f"{name}: no event for 60 s")


def scheduler(path: str, owner: str) -> None:
    """Leads or stands by (leader lock TTL 1 s) until stdin closes."""
    db = honker.open(path)
    sched = db.scheduler()
    # The same task as the Rust role's: one job a second into `ticks`.
    sched.add("tick", queue="ticks", schedule="* * * * * *", payload={"from": "schedule"})
    stop = threading.Event()

    def on_eof() -> None:
        sys.stdin.read()
        stop.set()

    threading.Thread(target=on_eof, daemon=True).start()
    print("ready", flush=True)
    sched.run(owner, stop, lock_ttl_s=1.0)
    db.close()


if __name__ == "__main__":
    role, *args = sys.argv[1:]
    if role == "producer":
        producer(args[0], args[1], int(args[2]), int(args[3]), args[4])
    elif role == "task-producer":
        task_producer(args[0], args[1], int(args[2]), args[3])
    elif role == "task-worker":
        task_worker(args[0], args[1], args[2], args[3])
    elif role == "worker":
        worker(args[0], args[1], args[2])
    elif role == "listener":
        listener(args[0], args[1], int(args[2]))
    elif role == "publisher":
        publisher(args[0], args[1], int(args[2]), int(args[3]))
    elif role == "consumer":
        consumer(args[0], args[1], args[2], int(args[3]))
    elif role == "scheduler":
        scheduler(args[0], args[1])
    else:
        raise SystemExit(f"unknown role {role}")
