"""The part of the vector runners that does not depend on the binding: loading
tests/vectors/*.json, labels, checking results against expectations, and the
report. Each runner supplies a backend with one method per op (see
tests/README.md); a method that the binding cannot do raises Skip.

Standard library only (the SQL runner runs on Debian's /usr/bin/python3)."""

from __future__ import annotations

import glob
import json
import os
import sys
import tempfile
from typing import Any, Callable

VECTORS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "vectors")

OPS = {
    "enqueue",
    "claim",
    "ack",
    "release",
    "retry",
    "fail",
    "dead_jobs",
    "requeue_dead",
    "get_job_state",
    "cancel",
    "purge",
    "pause",
    "resume",
    "set_max_in_flight",
    "set_rate_limit",
    "queues",
    "streams",
    "list_jobs",
    "requeue_dead_all",
    "cancel_many",
    "queue_controls",
    "set_retention",
    "prune",
    "set_events",
    "events",
    "rate_limit",
    "cron_next",
    "publish",
    "read_since",
    "save_offset",
    "get_offset",
    "lock_acquire",
    "lock_release",
    "ack_batch",
    "schedule_add",
    "schedule_tick",
    "schedule_error",
    "execute",
}

# Fields get_job_state may name in its expectation; every backend reports these.
JOB_FIELDS = (
    "queue",
    "payload",
    "state",
    "priority",
    "attempts",
    "max_attempts",
    "worker_id",
    "key",
    "last_error",
    "dead_reason",
)

Lease = tuple[int, str, int]


class Skip(Exception):
    """The binding cannot do this step; the message says why."""


class OpError(Exception):
    """The binding raised an error; `code` is honker's error code when the
    binding exposes it, `message` its text."""

    def __init__(self, code: str | None, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Mismatch(Exception):
    pass


class VectorError(Exception):
    """The vector file itself is wrong (unknown op, unknown label...)."""


class Context:
    def __init__(self) -> None:
        self.labels: dict[str, int] = {}
        self.job_labels: dict[int, str] = {}
        self.leases: set[Lease] = set()

    def ref(self, value: Any) -> int:
        """An id or offset argument: an integer, or the label of one."""
        if isinstance(value, str):
            if value not in self.labels:
                raise VectorError(f"unknown label {value!r}")
            return self.labels[value]
        if isinstance(value, bool) or not isinstance(value, int):
            raise VectorError(f"expected an integer or a label, got {value!r}")
        return value

    def job_name(self, job_id: int) -> str:
        return self.job_labels.get(job_id, f"#{job_id}")

    def batch_leases(self, args: dict[str, Any]) -> list[Lease]:
        """The leases of an ack_batch: each checked as `lease` checks one."""
        return [self.lease(item) for item in args["leases"]]

    def lease(self, args: dict[str, Any]) -> Lease:
        lease = (self.ref(args["job"]), str(args["worker"]), int(args["attempt"]))
        forged = bool(args.get("forged", False))
        if forged and lease in self.leases:
            raise VectorError(f"lease {lease} is marked forged but a claim returned it")
        if not forged and lease not in self.leases:
            raise VectorError(f'no claim returned lease {lease}; mark it "forged": true if that is the point')
        return lease


def show(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _subset(expect: dict[str, Any], got: dict[str, Any], what: str) -> None:
    for k, v in expect.items():
        if k not in got:
            raise VectorError(f"{what} has no field {k!r}")
        if got[k] != v or isinstance(got[k], bool) != isinstance(v, bool):
            raise Mismatch(f"{what}.{k}: expected {show(v)}, got {show(got[k])}")


def _expect_after(ctx: Context, expect: Any, got: int | None, what: str) -> None:
    if isinstance(expect, dict) and set(expect) == {"after"}:
        floor = ctx.ref(expect["after"])
        if got is None or got <= floor:
            raise Mismatch(f"expected {what} greater than {expect['after']} ({floor}), got {got}")
    elif expect is True or expect is False:
        if (got is not None) != expect:
            raise Mismatch(f"expected {expect}, got {what} {got}")
    elif isinstance(expect, (int, str)):
        if got != ctx.ref(expect):
            raise Mismatch(f"expected {what} {show(expect)} ({ctx.ref(expect)}), got {got}")
    else:
        raise VectorError(f"bad expectation {show(expect)}")


def run_step(backend: Any, ctx: Context, step: dict[str, Any]) -> None:
    op = step.get("op")
    if op not in OPS:
        raise VectorError(f"unknown op {op!r}")
    args: dict[str, Any] = step.get("args", {})
    has_expect = "expect" in step
    expect = step.get("expect")
    label = step.get("as")
    method: Callable[[Context, dict[str, Any]], Any] = getattr(backend, op)
    try:
        got = method(ctx, args)
    except OpError as e:
        if isinstance(expect, dict) and set(expect) == {"error"}:
            if not backend.error_matches(e, expect["error"]):
                raise Mismatch(f"expected error {expect['error']!r}, got {e.code!r}: {e.message}") from None
            return
        raise Mismatch(f"unexpected error {e.code!r}: {e.message}") from None
    if isinstance(expect, dict) and set(expect) == {"error"}:
        raise Mismatch(f"expected error {expect['error']!r}, got {show(got)}")

    if op == "enqueue":
        if isinstance(expect, str):
            if got != ctx.ref(expect):
                raise Mismatch(f"expected the id of {expect} ({ctx.ref(expect)}), got {got}")
        elif has_expect:
            raise VectorError("enqueue's expect is the label of the job whose id it must return")
        elif got in ctx.job_labels:
            raise Mismatch(f"expected a new job id, got {got} (the id of {ctx.job_labels[got]})")
        if label:
            ctx.labels[label] = got
            ctx.job_labels.setdefault(got, label)
        return
    if op == "claim":
        # Backends return the leases they were handed: (job id, worker, attempt).
        ctx.leases.update(got)
        got = [lease[0] for lease in got]
    if op in ("claim", "dead_jobs", "list_jobs"):
        names = [ctx.job_name(i) for i in got]
        if has_expect and names != expect:
            raise Mismatch(f"expected {show(expect)}, got {show(names)}")
        return
    if op == "events":
        # Backends return the events stream's events as (kind, job id).
        names = [f"{kind} {ctx.job_name(i)}" for kind, i in got]
        if has_expect and names != expect:
            raise Mismatch(f"expected {show(expect)}, got {show(names)}")
        return
    if op == "get_job_state":
        if expect is None:
            if got is not None:
                raise Mismatch(f"expected no job, got state {got['state']!r}")
        elif got is None:
            raise Mismatch(f"expected {show(expect)}, got no job")
        elif isinstance(expect, str):
            _subset({"state": expect}, got, "job")
        else:
            _subset(expect, got, "job")
        return
    if op in ("publish", "lock_acquire"):
        if has_expect:
            _expect_after(ctx, expect, got, "offset" if op == "publish" else "token")
        if label:
            if got is None:
                raise VectorError(f"nothing to bind to {label!r}")
            ctx.labels[label] = got
        return
    if op == "read_since":
        if not has_expect:
            return
        if len(got) != len(expect):
            raise Mismatch(f"expected {len(expect)} events, got {show(got)}")
        for i, (event, g) in enumerate(zip(expect, got)):
            want = dict(event)
            if "offset" in want:
                want["offset"] = ctx.ref(want["offset"])
            _subset(want, g, f"event[{i}]")
        return
    if op == "schedule_tick":
        if has_expect and got != expect:
            raise Mismatch(f"expected the fires {show(expect)}, got {show(got)}")
        return
    if op in ("ack_batch", "execute", "purge", "requeue_dead_all", "cancel_many", "prune"):
        if not isinstance(got, int) or isinstance(got, bool):
            raise Mismatch(f"expected a count, got {show(got)}")
        if has_expect and got != expect:
            raise Mismatch(f"expected {show(expect)}, got {show(got)}")
        return
    if op in ("queue_controls", "queues", "streams"):
        if has_expect and got != expect:
            raise Mismatch(f"expected {show(expect)}, got {show(got)}")
        return
    if op in ("get_offset", "cron_next"):
        if has_expect and got != ctx.ref(expect):
            raise Mismatch(f"expected {show(expect)} ({ctx.ref(expect)}), got {got}")
        return
    # ack, release, retry, fail, requeue_dead, cancel, pause, resume, set_max_in_flight, set_rate_limit, set_retention, set_events,
    # rate_limit, save_offset, lock_release, schedule_add, schedule_error: booleans.
    if not isinstance(got, bool):
        raise Mismatch(f"expected a boolean result, got {show(got)}")
    if has_expect and got != expect:
        raise Mismatch(f"expected {show(expect)}, got {show(got)}")


# With a PostgreSQL URL here, every vector file runs on PostgreSQL (in a
# schema of its own, dropped after), not on a SQLite file.
POSTGRES = os.environ.get("HONKER_VECTORS_POSTGRES")


# The schema the current vector file runs in, on PostgreSQL.
SCHEMA: str | None = None


def sql_of(a: dict[str, Any]) -> str:
    """An execute step's statement for the database it runs on: `sql` on
    SQLite, `sql_postgres` (honker's schema written `{schema}`) on
    PostgreSQL."""
    if SCHEMA is None:
        return str(a["sql"])
    if "sql_postgres" not in a:
        raise VectorError("this execute step has no sql_postgres for PostgreSQL")
    return str(a["sql_postgres"]).replace("{schema}", SCHEMA)


def where(tmp: str, vector: str) -> tuple[str, str | None]:
    """Where a vector file runs: a fresh SQLite file in `tmp`, or (with
    HONKER_VECTORS_POSTGRES) a fresh schema; the schema's name, if any."""
    if not POSTGRES:
        return os.path.join(tmp, "vectors.db"), None
    schema = f"v_{os.getpid()}_{vector.removesuffix('.json')}"
    return f"{POSTGRES}{'&' if '?' in POSTGRES else '?'}schema={schema}", schema


def main(language: str, make_backend: Callable[[str], Any], argv: list[str]) -> int:
    """Runs every vector file (or the ones named in argv) on a fresh database
    each; prints one line per file, every SKIP, and a summary. Returns the
    exit status."""
    global SCHEMA  # one vector file at a time
    files = [os.path.abspath(a) for a in argv] or sorted(glob.glob(os.path.join(VECTORS, "*.json")))
    if not files:
        print(f"no vector files in {VECTORS}")
        return 1
    failed = all_skipped = 0
    steps_run = 0
    skips = 0
    for path in files:
        name = os.path.basename(path)
        with open(path, encoding="utf-8") as f:
            scenario = json.load(f)
        ctx = Context()
        ran = skipped = 0
        error = None
        with tempfile.TemporaryDirectory(prefix="honker-vectors-") as tmp:
            target, schema = where(tmp, name)
            SCHEMA = schema
            backend = make_backend(target)
            try:
                for i, step in enumerate(scenario["steps"]):
                    try:
                        run_step(backend, ctx, step)
                        ran += 1
                    except Skip as s:
                        skipped += 1
                        print(f"SKIP {name} step {i} {step.get('op')}: {s}")
                    except Exception as e:  # noqa: BLE001 (any failure ends this file; the others still run)
                        kind = {Mismatch: "mismatch", VectorError: "vector error"}.get(type(e), type(e).__name__)
                        error = f"step {i} {step.get('op')} {show(step.get('args', {}))}: {kind}: {e}"
                        break
            finally:
                if schema:
                    backend.drop_schema(schema)
                backend.close()
        steps_run += ran
        skips += skipped
        if error:
            failed += 1
            print(f"FAIL {name}: {error}")
        elif ran == 0:
            all_skipped += 1
            print(f"skip {name} (no step run, {skipped} skipped)")
        else:
            extra = f", {skipped} skipped" if skipped else ""
            print(f"ok   {name} ({ran} steps{extra})")
    passed = len(files) - failed - all_skipped
    print(
        f"{language}: {len(files)} files, {passed} passed, {failed} failed, {all_skipped} wholly skipped; "
        f"{steps_run} steps run, {skips} skipped"
    )
    sys.stdout.flush()
    return 1 if failed else 0
