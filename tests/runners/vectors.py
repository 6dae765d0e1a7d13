"""Runs tests/vectors/*.json through the honker Python package's public API.

.venv/bin/python tests/runners/vectors.py [FILE.json ...]
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Any

import honker
import vectorlib
from vectorlib import Context, OpError, Skip

FORGED = (
    "not available in Python: a forged lease (one no claim returned) cannot be expressed; "
    "Job.ack/retry/fail always act on their own claim's lease"
)


def _code(e: honker.HonkerError) -> str:
    # One exception class per engine error code, each carrying it.
    return str(getattr(e, "code", type(e).__name__))


def _limits(r: honker.Retention | None) -> dict[str, Any] | None:
    if r is None:
        return None
    # Whole seconds read back as integers, as the files write them.
    age = r.max_age_s
    return {"max_age_s": int(age) if age is not None and age == int(age) else age, "max_count": r.max_count}


class PyBackend:
    def __init__(self, path: str) -> None:
        self.db = honker.open(path)
        self.jobs: dict[vectorlib.Lease, honker.Job] = {}
        self.locks: dict[int, honker.Lock] = {}

    def close(self) -> None:
        self.db.close()

    def drop_schema(self, schema: str) -> None:
        with self.db.transaction() as tx:
            tx.execute(f"DROP SCHEMA {schema} CASCADE")

    @staticmethod
    def error_matches(e: OpError, code: str) -> bool:
        return e.code == code

    def call(self, f: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return f(*args, **kwargs)
        except honker.HonkerError as e:
            raise OpError(_code(e), str(e)) from None

    def q(self, a: dict[str, Any]) -> honker.Queue:
        return self.db.queue(a.get("queue", "default"))

    def handle(self, ctx: Context, a: dict[str, Any]) -> honker.Job:
        lease = ctx.lease(a)
        if lease not in self.jobs:
            raise Skip(FORGED)
        return self.jobs[lease]

    def enqueue(self, ctx: Context, a: dict[str, Any]) -> int:
        return self.call(
            self.q(a).enqueue,
            a["payload"],
            run_at=a.get("run_at"),
            delay_s=a.get("delay_s"),
            priority=a.get("priority", 0),
            max_attempts=a.get("max_attempts"),
            key=a.get("key"),
        )

    def claim(self, ctx: Context, a: dict[str, Any]) -> list[vectorlib.Lease]:
        leases = []
        for job in self.call(self.q(a).claim_batch, a["worker"], a["n"]):
            lease = (job.id, a["worker"], job.attempts)
            self.jobs[lease] = job
            leases.append(lease)
        return leases

    def ack(self, ctx: Context, a: dict[str, Any]) -> bool:
        return self.call(self.handle(ctx, a).ack)

    def release(self, ctx: Context, a: dict[str, Any]) -> bool:
        return self.call(self.handle(ctx, a).release)

    def retry(self, ctx: Context, a: dict[str, Any]) -> bool:
        return self.call(self.handle(ctx, a).retry, a["delay_s"], a.get("error", ""))

    def fail(self, ctx: Context, a: dict[str, Any]) -> bool:
        return self.call(self.handle(ctx, a).fail, a.get("error", ""))

    def dead_jobs(self, ctx: Context, a: dict[str, Any]) -> list[int]:
        return [j.id for j in self.call(self.q(a).dead_jobs, a.get("limit", 100))]

    def requeue_dead(self, ctx: Context, a: dict[str, Any]) -> bool:
        self.call(self.q(a).requeue_dead, ctx.ref(a["job"]))
        return True

    def get_job_state(self, ctx: Context, a: dict[str, Any]) -> dict[str, Any] | None:
        job = self.call(self.q(a).get_job, ctx.ref(a["job"]))
        if job is None:
            return None
        return {k: getattr(job, k) for k in vectorlib.JOB_FIELDS}

    def cancel(self, ctx: Context, a: dict[str, Any]) -> bool:
        return self.call(self.q(a).cancel, ctx.ref(a["job"]))

    def purge(self, ctx: Context, a: dict[str, Any]) -> int:
        return self.call(self.q(a).purge)

    def queues(self, ctx: Context, a: dict[str, Any]) -> list[dict[str, Any]]:
        return [
            {"name": q.name, **dataclasses.asdict(q.stats), "paused": q.controls.paused}
            for q in self.call(self.db.queues)
        ]

    def streams(self, ctx: Context, a: dict[str, Any]) -> list[dict[str, Any]]:
        return [{"name": s.name, "lags": {c.name: c.lag for c in s.consumers}} for s in self.call(self.db.streams)]

    def list_jobs(self, ctx: Context, a: dict[str, Any]) -> list[int]:
        before = ctx.ref(a["before"]) if "before" in a else None
        found = self.call(
            self.db.jobs,
            queue=a.get("queue"),
            state=a.get("state"),
            task=a.get("task"),
            key=a.get("key"),
            before_id=before,
            limit=a.get("limit", 100),
        )
        return [j.id for j in found]

    def requeue_dead_all(self, ctx: Context, a: dict[str, Any]) -> int:
        return self.call(self.q(a).requeue_dead_all, a.get("reason"))

    def cancel_many(self, ctx: Context, a: dict[str, Any]) -> int:
        return self.call(self.q(a).cancel_many, [ctx.ref(j) for j in a["jobs"]])

    def pause(self, ctx: Context, a: dict[str, Any]) -> bool:
        return self.call(self.q(a).pause)

    def resume(self, ctx: Context, a: dict[str, Any]) -> bool:
        return self.call(self.q(a).resume)

    def set_max_in_flight(self, ctx: Context, a: dict[str, Any]) -> bool:
        self.call(self.q(a).set_max_in_flight, a["max"])
        return True

    def set_rate_limit(self, ctx: Context, a: dict[str, Any]) -> bool:
        self.call(self.q(a).set_rate_limit, a["limit"], a.get("per_s"))
        return True

    def queue_controls(self, ctx: Context, a: dict[str, Any]) -> dict[str, Any]:
        c = self.call(self.q(a).controls)
        rate = None if c.rate_limit is None else {"limit": c.rate_limit.limit, "per_s": c.rate_limit.per_s}
        keep = {t: _limits(getattr(c.retention, t)) for t in ("completed", "dead")}
        return {
            "paused": c.paused,
            "max_in_flight": c.max_in_flight,
            "rate_limit": rate,
            "retention": keep,
            "events": c.events,
        }

    def set_events(self, ctx: Context, a: dict[str, Any]) -> bool:
        self.call(self.q(a).set_events, a["on"])
        return True

    def events(self, ctx: Context, a: dict[str, Any]) -> list[tuple[str, int]]:
        found = self.call(self.db.stream(honker.EVENTS_STREAM).read_since, 0, 1000)
        return [(e.payload["type"], e.payload["job_id"]) for e in found]

    def set_retention(self, ctx: Context, a: dict[str, Any]) -> bool:
        keep = {t: None if a.get(t) is None else honker.Retention(**a[t]) for t in ("completed", "dead")}
        self.call(self.q(a).set_retention, **keep)
        return True

    def prune(self, ctx: Context, a: dict[str, Any]) -> int:
        return self.call(self.q(a).prune)

    def rate_limit(self, ctx: Context, a: dict[str, Any]) -> bool:
        return self.call(self.db.try_rate_limit, a["key"], a["limit"], a["per_s"])

    def cron_next(self, ctx: Context, a: dict[str, Any]) -> int:
        # honker.cron_next works in epoch seconds; the files' whole-second
        # instants convert exactly both ways.
        return round(self.call(honker.cron_next, a["expr"], a["after_ms"] / 1000, tz=a.get("tz")) * 1000)

    def publish(self, ctx: Context, a: dict[str, Any]) -> int:
        return self.call(self.db.stream(a["stream"]).publish, a["payload"], key=a.get("key"))

    def read_since(self, ctx: Context, a: dict[str, Any]) -> list[dict[str, Any]]:
        events = self.call(self.db.stream(a["stream"]).read_since, ctx.ref(a["offset"]), a.get("limit", 100))
        return [{"offset": e.offset, "key": e.key, "payload": e.payload} for e in events]

    def save_offset(self, ctx: Context, a: dict[str, Any]) -> bool:
        return self.call(self.db.stream(a["stream"]).save_offset, a["consumer"], ctx.ref(a["offset"]))

    def get_offset(self, ctx: Context, a: dict[str, Any]) -> int:
        return self.call(self.db.stream(a["stream"]).get_offset, a["consumer"])

    def lock_acquire(self, ctx: Context, a: dict[str, Any]) -> int | None:
        lock = self.call(self.db.try_lock, a["name"], a["owner"], a["ttl_s"])
        if lock is None:
            return None
        self.locks[lock.fencing_token] = lock
        return lock.fencing_token

    def lock_release(self, ctx: Context, a: dict[str, Any]) -> bool:
        return self.call(self.locks[ctx.ref(a["lock"])].release)

    def ack_batch(self, ctx: Context, a: dict[str, Any]) -> int:
        leases = ctx.batch_leases(a)
        if any(lease not in self.jobs for lease in leases):
            raise Skip(FORGED)
        return self.call(self.db.queue("unused").ack_batch, [self.jobs[lease] for lease in leases])

    def schedule_add(self, ctx: Context, a: dict[str, Any]) -> bool:
        self.call(self.db.scheduler().add, a["name"], queue=a["queue"], schedule=a["cron"], payload=a["payload"])
        return True

    def schedule_tick(self, ctx: Context, a: dict[str, Any]) -> list[str]:
        return [fired[0] for fired in self.call(self.db.scheduler().tick)]

    def schedule_error(self, ctx: Context, a: dict[str, Any]) -> bool:
        (s,) = [s for s in self.call(self.db.scheduler().list) if s.name.startswith(a["name_prefix"])]
        return s.last_error is not None

    def execute(self, ctx: Context, a: dict[str, Any]) -> int:
        with self.db.transaction() as tx:
            return self.call(tx.execute, vectorlib.sql_of(a), a.get("params", []))


if __name__ == "__main__":
    sys.exit(vectorlib.main("python", PyBackend, sys.argv[1:]))
