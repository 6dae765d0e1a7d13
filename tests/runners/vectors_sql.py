"""Runs tests/vectors/*.json through the SQLite loadable extension: every step
is one SQL statement calling honker_* functions on the stdlib sqlite3 module's
own connection (the SQL is what is under test; Python only drives it).

    /usr/bin/python3 tests/runners/vectors_sql.py PATH/libhonker_ext.so [FILE.json ...]

Debian's /usr/bin/python3: its sqlite3 module can load extensions.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
from typing import Any

import vectorlib
from vectorlib import Context, OpError


class SqlBackend:
    def __init__(self, ext: str, path: str) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)  # autocommit: each function is its own transaction
        self.conn.enable_load_extension(True)
        self.conn.load_extension(ext)
        self.conn.enable_load_extension(False)
        self.conn.execute("PRAGMA journal_mode = WAL")
        self.one("SELECT honker_bootstrap()")
        self.locks: dict[int, str] = {}

    def close(self) -> None:
        self.conn.close()

    def one(self, sql: str, *params: Any) -> Any:
        try:
            return self.conn.execute(sql, params).fetchone()[0]
        except sqlite3.Error as e:
            raise OpError(None, str(e)) from None

    def js(self, sql: str, *params: Any) -> Any:
        text = self.one(sql, *params)
        return None if text is None else json.loads(text)

    @staticmethod
    def error_matches(e: OpError, code: str) -> bool:
        # The extension's messages carry the code: "honker_requeue_dead [not_found]: dead job 1 not found".
        return f" [{code}]: " in e.message

    @staticmethod
    def flag(value: Any) -> bool:
        if value not in (0, 1):
            raise OpError(None, f"expected 0 or 1, got {value!r}")
        return value == 1

    def enqueue(self, ctx: Context, a: dict[str, Any]) -> int:
        opts = {k: a[k] for k in ("run_at", "delay_s", "priority", "max_attempts", "key") if k in a}
        return self.one("SELECT honker_enqueue(?, ?, ?)", a["queue"], json.dumps(a["payload"]), json.dumps(opts))

    def claim(self, ctx: Context, a: dict[str, Any]) -> list[vectorlib.Lease]:
        jobs = self.js("SELECT honker_claim_batch(?, ?, ?)", a["queue"], a["worker"], a["n"])
        for j in jobs:
            if j["worker_id"] != a["worker"]:
                raise OpError(None, f"claimed job {j['id']} has worker_id {j['worker_id']!r}")
        return [(j["id"], j["worker_id"], j["attempts"]) for j in jobs]

    def ack(self, ctx: Context, a: dict[str, Any]) -> bool:
        job, worker, attempt = ctx.lease(a)
        return self.flag(self.one("SELECT honker_ack(?, ?, ?)", job, worker, attempt))

    def release(self, ctx: Context, a: dict[str, Any]) -> bool:
        job, worker, attempt = ctx.lease(a)
        return self.flag(self.one("SELECT honker_release(?, ?, ?)", job, worker, attempt))

    def retry(self, ctx: Context, a: dict[str, Any]) -> bool:
        job, worker, attempt = ctx.lease(a)
        return self.flag(
            self.one("SELECT honker_retry(?, ?, ?, ?, ?)", job, worker, attempt, a["delay_s"], a.get("error", ""))
        )

    def fail(self, ctx: Context, a: dict[str, Any]) -> bool:
        job, worker, attempt = ctx.lease(a)
        return self.flag(self.one("SELECT honker_fail(?, ?, ?, ?)", job, worker, attempt, a.get("error", "")))

    def dead_jobs(self, ctx: Context, a: dict[str, Any]) -> list[int]:
        if "limit" in a:
            jobs = self.js("SELECT honker_dead_jobs(?, ?)", a["queue"], a["limit"])
        else:
            jobs = self.js("SELECT honker_dead_jobs(?)", a["queue"])
        return [j["id"] for j in jobs]

    def requeue_dead(self, ctx: Context, a: dict[str, Any]) -> bool:
        return self.flag(self.one("SELECT honker_requeue_dead(?)", ctx.ref(a["job"])))

    def get_job_state(self, ctx: Context, a: dict[str, Any]) -> dict[str, Any] | None:
        job = self.js("SELECT honker_get_job(?)", ctx.ref(a["job"]))
        return None if job is None else {k: job[k] for k in vectorlib.JOB_FIELDS}

    def cancel(self, ctx: Context, a: dict[str, Any]) -> bool:
        return self.flag(self.one("SELECT honker_cancel(?)", ctx.ref(a["job"])))

    def purge(self, ctx: Context, a: dict[str, Any]) -> int:
        return self.one("SELECT honker_purge(?)", a["queue"])

    def queues(self, ctx: Context, a: dict[str, Any]) -> list[dict[str, Any]]:
        keys = ("name", "ready", "scheduled", "processing", "dead", "completed", "paused")
        return [{k: q[k] for k in keys} for q in json.loads(self.one("SELECT honker_queues()"))]

    def streams(self, ctx: Context, a: dict[str, Any]) -> list[dict[str, Any]]:
        return [
            {"name": s["name"], "lags": {c: v["lag"] for c, v in s["consumers"].items()}}
            for s in json.loads(self.one("SELECT honker_streams()"))
        ]

    def list_jobs(self, ctx: Context, a: dict[str, Any]) -> list[int]:
        f = {k: a[k] for k in ("queue", "state", "task", "key", "limit") if k in a}
        if "before" in a:
            f["before_id"] = ctx.ref(a["before"])
        return [j["id"] for j in json.loads(self.one("SELECT honker_jobs(?)", json.dumps(f)))]

    def requeue_dead_all(self, ctx: Context, a: dict[str, Any]) -> int:
        return int(self.one("SELECT honker_requeue_dead_all(?, ?)", a["queue"], a.get("reason")))

    def cancel_many(self, ctx: Context, a: dict[str, Any]) -> int:
        return int(self.one("SELECT honker_cancel_many(?)", json.dumps([ctx.ref(j) for j in a["jobs"]])))

    def pause(self, ctx: Context, a: dict[str, Any]) -> bool:
        return self.flag(self.one("SELECT honker_pause(?)", a["queue"]))

    def resume(self, ctx: Context, a: dict[str, Any]) -> bool:
        return self.flag(self.one("SELECT honker_resume(?)", a["queue"]))

    def set_max_in_flight(self, ctx: Context, a: dict[str, Any]) -> bool:
        return self.flag(self.one("SELECT honker_set_max_in_flight(?, ?)", a["queue"], a["max"]))

    def set_rate_limit(self, ctx: Context, a: dict[str, Any]) -> bool:
        return self.flag(self.one("SELECT honker_set_rate_limit(?, ?, ?)", a["queue"], a["limit"], a.get("per_s")))

    def set_retention(self, ctx: Context, a: dict[str, Any]) -> bool:
        limits = [None if a.get(t) is None else json.dumps(a[t]) for t in ("completed", "dead")]
        return self.flag(self.one("SELECT honker_set_retention(?, ?, ?)", a["queue"], *limits))

    def set_events(self, ctx: Context, a: dict[str, Any]) -> bool:
        return self.flag(self.one("SELECT honker_set_events(?, ?)", a["queue"], a["on"]))

    def events(self, ctx: Context, a: dict[str, Any]) -> list[tuple[str, int]]:
        found = json.loads(self.one("SELECT honker_read_since('honker:events', 0, 1000)"))
        return [(e["payload"]["type"], e["payload"]["job_id"]) for e in found]

    def prune(self, ctx: Context, a: dict[str, Any]) -> int:
        return int(self.one("SELECT honker_prune(?)", a["queue"]))

    def queue_controls(self, ctx: Context, a: dict[str, Any]) -> dict[str, Any]:
        got: dict[str, Any] = json.loads(self.one("SELECT honker_queue_controls(?)", a["queue"]))
        return got

    def rate_limit(self, ctx: Context, a: dict[str, Any]) -> bool:
        return self.flag(self.one("SELECT honker_rate_limit(?, ?, ?)", a["key"], a["limit"], a["per_s"]))

    def cron_next(self, ctx: Context, a: dict[str, Any]) -> int:
        if "tz" in a:
            return self.one("SELECT honker_cron_next(?, ?, ?)", a["expr"], a["after_ms"], a["tz"])
        return self.one("SELECT honker_cron_next(?, ?)", a["expr"], a["after_ms"])

    def publish(self, ctx: Context, a: dict[str, Any]) -> int:
        if "key" in a:
            return self.one("SELECT honker_publish(?, ?, ?)", a["stream"], json.dumps(a["payload"]), a["key"])
        return self.one("SELECT honker_publish(?, ?)", a["stream"], json.dumps(a["payload"]))

    def read_since(self, ctx: Context, a: dict[str, Any]) -> list[dict[str, Any]]:
        offset = ctx.ref(a["offset"])
        if "limit" in a:
            events = self.js("SELECT honker_read_since(?, ?, ?)", a["stream"], offset, a["limit"])
        else:
            events = self.js("SELECT honker_read_since(?, ?)", a["stream"], offset)
        return [{"offset": e["offset"], "key": e["key"], "payload": e["payload"]} for e in events]

    def save_offset(self, ctx: Context, a: dict[str, Any]) -> bool:
        return self.flag(
            self.one("SELECT honker_save_offset(?, ?, ?)", a["stream"], a["consumer"], ctx.ref(a["offset"]))
        )

    def get_offset(self, ctx: Context, a: dict[str, Any]) -> int:
        return self.one("SELECT honker_get_offset(?, ?)", a["stream"], a["consumer"])

    def lock_acquire(self, ctx: Context, a: dict[str, Any]) -> int | None:
        token = self.one("SELECT honker_lock_acquire(?, ?, ?)", a["name"], a["owner"], a["ttl_s"])
        if token is not None:
            self.locks[token] = a["name"]
        return token

    def lock_release(self, ctx: Context, a: dict[str, Any]) -> bool:
        token = ctx.ref(a["lock"])
        return self.flag(self.one("SELECT honker_lock_release(?, ?)", self.locks[token], token))

    def ack_batch(self, ctx: Context, a: dict[str, Any]) -> int:
        jobs = [{"id": i, "worker_id": w, "attempts": n} for (i, w, n) in ctx.batch_leases(a)]
        return self.one("SELECT honker_ack_batch(?)", json.dumps(jobs))

    def schedule_add(self, ctx: Context, a: dict[str, Any]) -> bool:
        return self.flag(
            self.one(
                "SELECT honker_schedule_add(?, ?, ?, ?)", a["name"], a["queue"], a["cron"], json.dumps(a["payload"])
            )
        )

    def schedule_tick(self, ctx: Context, a: dict[str, Any]) -> list[str]:
        return [f["name"] for f in self.js("SELECT honker_schedule_tick()")]

    def schedule_error(self, ctx: Context, a: dict[str, Any]) -> bool:
        (s,) = [s for s in self.js("SELECT honker_schedule_list()") if s["name"].startswith(a["name_prefix"])]
        return s["last_error"] is not None

    def execute(self, ctx: Context, a: dict[str, Any]) -> int:
        try:
            return self.conn.execute(a["sql"], a.get("params", [])).rowcount
        except sqlite3.Error as e:
            raise OpError(None, str(e)) from None


def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    ext = os.path.abspath(sys.argv[1])
    return vectorlib.main("sql", lambda path: SqlBackend(ext, path), sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
