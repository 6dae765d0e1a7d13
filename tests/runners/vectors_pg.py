"""Runs tests/vectors/*.json through honker's PL/pgSQL functions with psycopg:
every step is one SQL statement calling a function in honker's schema, as any
PostgreSQL client would (the functions are what is under test; Python only
drives them). Each vector file gets a schema of its own, made by opening it
once with honker (the migration) and dropped after.

    HONKER_PG_URL=postgresql://... .venv/bin/python tests/runners/vectors_pg.py [FILE.json ...]

Steps for which the functions are not the interface (schedules, cron, the
operator's listings and controls as read back) go through honker's Python API
on the same schema, as an application would.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import psycopg
import vectorlib
from vectorlib import Context, OpError

from vectors import PyBackend

URL = os.environ.get("HONKER_PG_URL", "")
# SQLSTATEs honker's functions raise, as honker's error codes.
CODES = {"22023": "invalid_argument", "22P02": "invalid_json", "P0002": "not_found"}


class PgBackend:
    def __init__(self, target: str) -> None:
        self.s = vectorlib.SCHEMA or "honker"
        self.api = PyBackend(target)  # migrates the schema
        self.conn = psycopg.connect(URL, autocommit=True)  # each call is its own transaction
        self.locks: dict[int, str] = {}

    def close(self) -> None:
        self.conn.close()
        self.api.close()

    def drop_schema(self, schema: str) -> None:
        self.conn.execute(f"DROP SCHEMA {schema} CASCADE")

    def one(self, sql: str, *params: Any) -> Any:
        try:
            row = self.conn.execute(sql.replace("{s}", self.s), params).fetchone()
        except psycopg.Error as e:
            raise OpError(CODES.get(e.sqlstate or "", "postgres"), str(e)) from None
        return None if row is None else row[0]

    def rows(self, sql: str, *params: Any) -> list[Any]:
        try:
            return self.conn.execute(sql.replace("{s}", self.s), params).fetchall()
        except psycopg.Error as e:
            raise OpError(CODES.get(e.sqlstate or "", "postgres"), str(e)) from None

    @staticmethod
    def error_matches(e: OpError, code: str) -> bool:
        return e.code == code

    def enqueue(self, ctx: Context, a: dict[str, Any]) -> int:
        opts = {k: a[k] for k in ("run_at", "delay_s", "priority", "max_attempts", "key") if k in a}
        return int(
            self.one("SELECT {s}.enqueue(%s, %s, %s::jsonb)", a["queue"], json.dumps(a["payload"]), json.dumps(opts))
        )

    def claim(self, ctx: Context, a: dict[str, Any]) -> list[vectorlib.Lease]:
        jobs = self.rows("SELECT id, worker_id, attempts FROM {s}.claim(%s, %s, %s)", a["queue"], a["worker"], a["n"])
        return [(i, w, n) for (i, w, n) in jobs]

    def ack(self, ctx: Context, a: dict[str, Any]) -> bool:
        return bool(self.one("SELECT {s}.ack(%s, %s, %s)", *ctx.lease(a)))

    def release(self, ctx: Context, a: dict[str, Any]) -> bool:
        return bool(self.one("SELECT {s}.release(%s, %s, %s)", *ctx.lease(a)))

    def retry(self, ctx: Context, a: dict[str, Any]) -> bool:
        return bool(self.one("SELECT {s}.retry(%s, %s, %s, %s, %s)", *ctx.lease(a), a["delay_s"], a.get("error", "")))

    def fail(self, ctx: Context, a: dict[str, Any]) -> bool:
        return bool(self.one("SELECT {s}.fail(%s, %s, %s, %s)", *ctx.lease(a), a.get("error", "")))

    def dead_jobs(self, ctx: Context, a: dict[str, Any]) -> list[int]:
        return [r[0] for r in self.rows("SELECT id FROM {s}.dead_jobs(%s, %s)", a["queue"], a.get("limit", 100))]

    def requeue_dead(self, ctx: Context, a: dict[str, Any]) -> bool:
        self.one("SELECT {s}.requeue_dead(%s)", ctx.ref(a["job"]))
        return True

    def get_job_state(self, ctx: Context, a: dict[str, Any]) -> dict[str, Any] | None:
        job = self.one("SELECT {s}.get_job(%s)", ctx.ref(a["job"]))
        if job is None:
            return None
        return {k: job[k] for k in vectorlib.JOB_FIELDS}

    def cancel(self, ctx: Context, a: dict[str, Any]) -> bool:
        return bool(self.one("SELECT {s}.cancel(%s)", ctx.ref(a["job"])))

    def purge(self, ctx: Context, a: dict[str, Any]) -> int:
        return int(self.one("SELECT {s}.purge(%s)", a["queue"]))

    def requeue_dead_all(self, ctx: Context, a: dict[str, Any]) -> int:
        return int(self.one("SELECT {s}.requeue_dead_all(%s, %s)", a["queue"], a.get("reason")))

    def cancel_many(self, ctx: Context, a: dict[str, Any]) -> int:
        return int(self.one("SELECT {s}.cancel_many(%s)", [ctx.ref(j) for j in a["jobs"]]))

    def pause(self, ctx: Context, a: dict[str, Any]) -> bool:
        return bool(self.one("SELECT {s}.set_paused(%s, true)", a["queue"]))

    def resume(self, ctx: Context, a: dict[str, Any]) -> bool:
        return bool(self.one("SELECT {s}.set_paused(%s, false)", a["queue"]))

    def set_max_in_flight(self, ctx: Context, a: dict[str, Any]) -> bool:
        self.one("SELECT {s}.set_max_in_flight(%s, %s)", a["queue"], a["max"])
        return True

    def set_rate_limit(self, ctx: Context, a: dict[str, Any]) -> bool:
        per_ms = None if a.get("per_s") is None else round(a["per_s"] * 1000)
        self.one("SELECT {s}.set_rate_limit(%s, %s, %s)", a["queue"], a["limit"], per_ms)
        return True

    def set_retention(self, ctx: Context, a: dict[str, Any]) -> bool:
        limits = [None if a.get(t) is None else json.dumps(a[t]) for t in ("completed", "dead")]
        self.one("SELECT {s}.set_queue_retention(%s, %s::jsonb, %s::jsonb)", a["queue"], *limits)
        return True

    def set_events(self, ctx: Context, a: dict[str, Any]) -> bool:
        self.one("SELECT {s}.set_events(%s, %s)", a["queue"], a["on"])
        return True

    def events(self, ctx: Context, a: dict[str, Any]) -> list[tuple[str, int]]:
        found = self.rows("SELECT payload FROM {s}.read_since('honker:events', 0, 1000)")
        return [(p["type"], p["job_id"]) for p in (json.loads(r[0]) for r in found)]

    def prune(self, ctx: Context, a: dict[str, Any]) -> int:
        return int(self.one("SELECT {s}.prune_queue(%s)", a["queue"]))

    def rate_limit(self, ctx: Context, a: dict[str, Any]) -> bool:
        return bool(self.one("SELECT {s}.try_rate_limit(%s, %s, %s)", a["key"], a["limit"], round(a["per_s"] * 1000)))

    def publish(self, ctx: Context, a: dict[str, Any]) -> int:
        return int(self.one("SELECT {s}.publish(%s, %s, %s)", a["stream"], json.dumps(a["payload"]), a.get("key")))

    def read_since(self, ctx: Context, a: dict[str, Any]) -> list[dict[str, Any]]:
        found = self.rows(
            "SELECT seq, event_key, payload FROM {s}.read_since(%s, %s, %s)",
            a["stream"],
            ctx.ref(a["offset"]),
            a.get("limit", 100),
        )
        return [{"offset": o, "key": k, "payload": json.loads(p)} for (o, k, p) in found]

    def save_offset(self, ctx: Context, a: dict[str, Any]) -> bool:
        return bool(self.one("SELECT {s}.save_offset(%s, %s, %s)", a["stream"], a["consumer"], ctx.ref(a["offset"])))

    def get_offset(self, ctx: Context, a: dict[str, Any]) -> int:
        return int(self.one("SELECT {s}.get_offset(%s, %s)", a["stream"], a["consumer"]))

    def lock_acquire(self, ctx: Context, a: dict[str, Any]) -> int | None:
        token = self.one("SELECT {s}.try_lock(%s, %s, %s)", a["name"], a["owner"], round(a["ttl_s"] * 1000))
        if token is not None:
            self.locks[token] = a["name"]
        return None if token is None else int(token)

    def lock_release(self, ctx: Context, a: dict[str, Any]) -> bool:
        token = ctx.ref(a["lock"])
        return bool(self.one("SELECT {s}.release_lock(%s, %s)", self.locks[token], token))

    def ack_batch(self, ctx: Context, a: dict[str, Any]) -> int:
        ids, workers, attempts = zip(*ctx.batch_leases(a)) if ctx.batch_leases(a) else ((), (), ())
        return int(self.one("SELECT {s}.ack_many(%s, %s, %s)", list(ids), list(workers), list(attempts)))

    def execute(self, ctx: Context, a: dict[str, Any]) -> int:
        try:
            return self.conn.execute(vectorlib.sql_of(a), a.get("params", [])).rowcount
        except psycopg.Error as e:
            raise OpError(CODES.get(e.sqlstate or "", "postgres"), str(e)) from None

    def __getattr__(self, op: str) -> Any:
        # Not a function's job: honker's API on the same schema.
        if op in vectorlib.OPS:
            return getattr(self.api, op)
        raise AttributeError(op)


def main() -> int:
    if not URL:
        print(__doc__)
        return 2
    os.environ["HONKER_VECTORS_POSTGRES"] = URL
    vectorlib.POSTGRES = URL
    return vectorlib.main("postgres-sql", PgBackend, sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
