"""Tasks and workers: @queue.task, enqueue, results, run/run_async/drain,
timeouts, retries, unknown tasks, and the worker process (SIGTERM drain,
SIGKILL reclaim)."""

from __future__ import annotations

import asyncio
import os
import select
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import honker

LONG = 30.0


@pytest.fixture
def db(tmp_path: Path) -> honker.Database:
    return honker.open(str(tmp_path / "app.db"))


def test_a_task_stays_callable_and_runs_on_a_worker(db: honker.Database) -> None:
    q = db.queue("math")

    @q.task
    def add(a: int, b: int = 0) -> int:
        return a + b

    assert add(2, 3) == 5
    assert add.name == "add" and add.__name__ == "add"
    handles = [add.enqueue(i, b=1) for i in range(5)]
    w = db.worker()
    assert w.queues == ["math"]
    assert w.drain() == 5
    assert [h.result(timeout=LONG) for h in handles] == [1, 2, 3, 4, 5]
    assert w.drain() == 0


def test_enqueue_options_do_not_collide_with_task_arguments(db: honker.Database) -> None:
    q = db.queue("q")

    @q.task(name="echo")
    def echo(delay_s: int, tx: str) -> list[object]:
        return [delay_s, tx]

    now = echo.enqueue(5, tx="mine")
    later = echo.options(delay_s=3600).enqueue(1, tx="x")
    with db.transaction() as tx:
        echo.options(tx=tx).enqueue(2, tx="kept")
    tx2 = db.transaction()
    tx2.__enter__()
    echo.options(tx=tx2).enqueue(3, tx="gone")
    tx2.rollback()
    assert db.worker().drain() == 2
    assert now.result(timeout=LONG) == [5, "mine"]
    info = q.get_job(later.id)
    assert info is not None and info.state == "scheduled"
    with pytest.raises(TimeoutError):
        later.result(timeout=0.05)


def test_failures_follow_per_task_retry_policies_then_dead_letter(db: honker.Database) -> None:
    q = db.queue("q")
    calls: list[int] = []

    @q.task(max_attempts=3, retry=honker.Retry.fixed(0))
    def flaky() -> str:
        attempt = honker.current_task().attempt
        calls.append(attempt)
        if attempt < 3:
            raise ValueError(f"attempt {attempt}")
        return "ok"

    @q.task(max_attempts=2, retry=lambda attempt: 0.0)
    def always_fails() -> None:
        raise RuntimeError("nope")

    @q.task
    def backs_off() -> None:
        raise RuntimeError("later")

    h1, h2, h3 = flaky.enqueue(), always_fails.enqueue(), backs_off.enqueue()
    db.worker(retry=honker.Retry.fixed(3600)).drain()
    assert calls == [1, 2, 3]
    assert h1.result(timeout=LONG) == "ok"
    with pytest.raises(honker.JobFailed) as e:
        h2.result(timeout=LONG)
    assert "RuntimeError: nope" in str(e.value) and e.value.code == "job_failed"
    info = q.get_job(h3.id)
    assert info is not None and info.state == "scheduled" and info.attempts == 1


def test_unknown_tasks_are_dead_lettered_with_a_reason(db: honker.Database) -> None:
    q = db.queue("q")

    @q.task
    def known() -> int:
        return 1

    stranger = q.enqueue({"task": "stranger", "args": []})
    db.worker().drain()
    info = q.get_job(stranger)
    assert info is not None and info.state == "dead"
    assert info.last_error is not None and 'unknown task "stranger"' in info.last_error
    left = q.enqueue({"task": "stranger"})
    assert db.worker(unknown_tasks="leave", leave_unknown_s=60).drain() == 0
    info = q.get_job(left)
    assert info is not None and info.state == "scheduled" and info.attempts == 0


def test_a_timeout_tells_the_handler_and_retries(db: honker.Database) -> None:
    q = db.queue("q")
    seen: list[str | None] = []

    @q.task(timeout_s=0.1, retry=honker.Retry.fixed(0))
    def slow() -> str:
        ctx = honker.current_task()
        if ctx.attempt == 1:
            seen.append(ctx.wait_cancelled(LONG))
            return "too late"
        return "second"

    h = slow.enqueue()
    assert db.worker().drain() == 2
    assert seen == ["timeout"]
    assert h.result(timeout=LONG) == "second"


def test_a_long_handler_keeps_its_lease(db: honker.Database) -> None:
    q = db.queue("q")
    stolen: list[object] = []

    @q.task
    def long() -> str:
        # Works for several lease lengths; nobody can take the job meanwhile.
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            stolen.append(q.claim_one("thief"))
            honker.current_task().wait_cancelled(0.1)
        return "done"

    h = long.enqueue()
    assert db.worker(lease_s=0.3).drain() == 1
    assert h.result(timeout=LONG) == "done"
    assert stolen and all(s is None for s in stolen)


def test_async_handlers_and_run_async(db: honker.Database) -> None:
    q = db.queue("q")

    @q.task
    async def double(n: int) -> int:
        await asyncio.sleep(0)
        return n * 2

    @q.task
    def triple(n: int) -> int:
        return n * 3

    @q.task(timeout_s=0.1, retry=honker.Retry.fixed(3600))
    async def hang() -> None:
        await asyncio.Event().wait()

    async def main() -> None:
        handles = [await double.enqueue_async(i) for i in range(10)]
        t = await triple.enqueue_async(5)
        hung = await hang.enqueue_async()
        stop = asyncio.Event()
        w = db.worker(concurrency=4)
        runner = asyncio.ensure_future(w.run_async(stop=stop))
        assert [await h.result_async(timeout=LONG) for h in handles] == [2 * i for i in range(10)]
        assert await t.result_async(timeout=LONG) == 15
        deadline = time.monotonic() + LONG
        while (info := q.get_job(hung.id)) is not None and info.state != "scheduled":
            assert time.monotonic() < deadline, "the hung task was never timed out"
            await asyncio.sleep(0.02)
        assert info is not None and info.last_error is not None and "timed out" in info.last_error
        stop.set()
        await asyncio.wait_for(runner, LONG)

    asyncio.run(main())


def test_run_in_a_thread_until_stopped(db: honker.Database) -> None:
    q = db.queue("q")

    @q.task
    def upper(s: str) -> str:
        return s.upper()

    stop = threading.Event()
    w = db.worker(concurrency=3)
    t = threading.Thread(target=w.run, kwargs={"stop": stop})
    t.start()
    try:
        handles = [upper.enqueue(f"x{i}") for i in range(30)]
        assert [h.result(timeout=LONG) for h in handles] == [f"X{i}" for i in range(30)]
    finally:
        stop.set()
        t.join(LONG)
    assert not t.is_alive()
    assert q.stats().processing == 0


def test_a_pause_from_another_handle_stops_the_worker_and_a_resume_wakes_it(tmp_path: Path) -> None:
    path = str(tmp_path / "app.db")
    db = honker.open(path)
    operator = honker.open(path).queue("q")  # another connection, like another process
    q = db.queue("q")
    other = db.queue("other")

    @q.task
    def echo(s: str) -> str:
        return s

    @other.task
    def other_echo(s: str) -> str:
        return s

    stop = threading.Event()
    w = db.worker(queues=["q", "other"], concurrency=2)
    t = threading.Thread(target=w.run, kwargs={"stop": stop})
    t.start()
    try:
        assert echo.enqueue("a").result(timeout=LONG) == "a"
        assert operator.pause() is True
        assert operator.pause() is False, "already paused"
        assert q.controls() == honker.QueueControls(True, None, None, honker.QueueRetention(None, None), False)
        b = echo.enqueue("b")
        # Enqueued after b on the other queue: once it has run, the worker
        # has looked at both queues since b was enqueued.
        assert other_echo.enqueue("c").result(timeout=LONG) == "c"
        info = q.get_job(b.id)
        assert info is not None and info.state == "ready"
        assert operator.resume() is True
        assert b.result(timeout=LONG) == "b"
    finally:
        stop.set()
        t.join(LONG)
    assert not t.is_alive()


def test_max_in_flight_and_rate_limit_are_stored_and_checked(db: honker.Database) -> None:
    q = db.queue("q")
    for i in range(3):
        q.enqueue({"i": i})
    q.set_max_in_flight(2)
    assert q.controls() == honker.QueueControls(
        paused=False, max_in_flight=2, rate_limit=None, retention=honker.QueueRetention(None, None), events=False
    )
    assert len(q.claim_batch("w", 10)) == 2
    assert q.claim_batch("w2", 10) == []
    q.set_max_in_flight(None)
    q.set_rate_limit(5, 60)
    assert q.controls().rate_limit == honker.QueueRateLimit(limit=5, per_s=60.0)
    with pytest.raises(honker.InvalidArgument, match="per_s"):
        q.set_rate_limit(5)
    q.set_rate_limit(None)
    assert len(q.claim_batch("w2", 10)) == 1
    for bad in (0, -1, 2**32):
        with pytest.raises(honker.InvalidArgument, match="max_in_flight"):
            q.set_max_in_flight(bad)
    with pytest.raises(honker.InvalidArgument, match="queue"):
        db.queue("").pause()


def test_a_queue_that_keeps_history_shows_what_its_worker_did(db: honker.Database) -> None:
    q = db.queue("history")

    @q.task
    def double(n: int) -> int:
        if n < 0:
            raise ValueError(f"negative: {n}")
        return 2 * n

    keep = honker.Retention(max_count=10)
    q.set_retention(completed=keep, dead=honker.Retention(max_age_s=86400))
    assert q.controls().retention == honker.QueueRetention(keep, honker.Retention(86400, None))
    ok = [double.enqueue(n) for n in range(3)]
    bad = double.options(max_attempts=1).enqueue(-1)
    before = time.time() * 1000
    assert db.worker().drain() == 4
    assert [h.result(timeout=LONG) for h in ok] == [0, 2, 4], "a kept job's handle sees it finished"
    done = q.get_job(ok[1].id)
    assert done is not None and done.state == "completed" and done.result == 2
    assert done.attempts == 1 and done.started_at_ms is not None and done.completed_at_ms is not None
    assert done.created_at_ms <= done.started_at_ms <= done.completed_at_ms
    assert done.completed_at_ms >= before - 1000
    assert [j.id for j in db.jobs(queue="history", state="completed")] == [h.id for h in reversed(ok)]
    dead = q.get_job(bad.id)
    assert dead is not None and dead.state == "dead" and "negative: -1" in (dead.last_error or "")
    assert q.stats().completed == 3
    summary = {s.name: s for s in db.queues()}["history"]
    assert summary.stats.completed == 3 and summary.controls.retention.completed == keep

    # At most 10 (+ 10 // 64) kept; prune() trims exactly.
    for n in range(20):
        double.enqueue(n)
    db.worker().drain()
    assert q.stats().completed == 10
    assert q.prune() == 0
    q.set_retention(completed=honker.Retention(max_count=4))
    assert q.prune() == 6 and q.stats().completed == 4
    assert q.controls().retention.dead is None, "set_retention replaces both"

    for bad_keep in (honker.Retention(), honker.Retention(max_count=0), honker.Retention(max_count=-1)):
        with pytest.raises(honker.InvalidArgument, match="max_count|completed"):
            q.set_retention(completed=bad_keep)
    with pytest.raises(honker.InvalidArgument, match="max_age_s"):
        q.set_retention(dead=honker.Retention(max_age_s=-1))


def test_lifecycle_events_follow_a_workers_jobs_and_a_consumer_resumes(tmp_path: Path) -> None:
    path = str(tmp_path / "app.db")
    db = honker.open(path)
    q = db.queue("mail")

    @q.task
    def send(to: str) -> str:
        if to == "nobody":
            raise ValueError("no such address")
        return f"sent to {to}"

    q.set_events(True)
    assert q.controls().events
    events = db.stream(honker.EVENTS_STREAM)
    ok = send.enqueue("ada")
    bad = send.options(max_attempts=1).enqueue("nobody")
    with db.transaction() as tx:
        send.options(tx=tx).enqueue("grace")
        tx.rollback()
    assert db.worker(["mail"]).drain() == 2
    seen = [(e.payload["type"], e.payload["job_id"]) for e in events.read_since(0, 100)]
    # Each job's changes in order (the worker may claim both before running
    # either); the rolled-back enqueue published nothing.
    assert [k for k, i in seen if i == ok.id] == ["enqueued", "started", "completed"]
    assert [k for k, i in seen if i == bad.id] == ["enqueued", "started", "failed", "dead"]
    assert len(seen) == 7, seen
    first = events.read_since(0, 100)
    assert all(e.key == "mail" and e.payload["task"] == "send" for e in first)
    failed = next(e.payload for e in first if e.payload["type"] == "failed")
    assert "no such address" in failed["error"] and failed["attempt"] == 1

    # A consumer saves its offset; another handle (a restarted process)
    # resumes after it and sees only what came later.
    assert events.save_offset("audit", first[-1].offset)
    db.close()
    db = honker.open(path)
    later = db.queue("mail")
    later.cancel(later.enqueue({"task": "send", "args": ["x"]}))
    events = db.stream(honker.EVENTS_STREAM)
    rest = events.read_since(events.get_offset("audit"), 100)
    assert [e.payload["type"] for e in rest] == ["enqueued", "cancelled"]
    with pytest.raises(honker.InvalidArgument, match="queue"):
        db.queue("").set_events(True)


def test_bad_task_options_are_named(db: honker.Database) -> None:
    q = db.queue("q")

    @q.task(name="dup")
    def one() -> None: ...

    with pytest.raises(honker.InvalidArgument, match="already registered"):

        @q.task(name="dup")
        def two() -> None: ...

    with pytest.raises(TypeError):
        q.task(retry=5)(lambda: None)  # type: ignore[arg-type]

    with pytest.raises(honker.InvalidArgument, match="queues"):
        db.worker(queues=[]).drain()

    for batch in (0, 1001):
        with pytest.raises(honker.InvalidArgument, match="batch"):
            db.worker(batch=batch).drain()

    @q.task(timeout_s=-1)
    def negative() -> None: ...

    with pytest.raises(honker.InvalidArgument, match="timeout_s"):
        db.worker().drain()


APP = """
import os, honker
db = honker.open({path!r})
q = db.queue("jobs")

@q.task
def finisher() -> str:
    os.write(1, b"started finisher\\n")  # one write: handler threads cannot interleave it
    honker.current_task().wait_cancelled(0.5)
    return "finished"

@q.task
def stuck() -> None:
    os.write(1, b"started stuck\\n")  # one write: handler threads cannot interleave it
    while honker.current_task().wait_cancelled(60) is None:
        pass

@q.task
def hang() -> None:
    os.write(1, b"started hang\\n")  # one write: handler threads cannot interleave it
    honker.current_task().wait_cancelled(600)
"""


def _worker_process(tmp_path: Path, db_path: str, *args: str) -> subprocess.Popen[str]:
    (tmp_path / "workerapp.py").write_text(textwrap.dedent(APP.format(path=db_path)))
    env = dict(os.environ, PYTHONPATH=f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    return subprocess.Popen(
        [sys.executable, "-m", "honker", "worker", "workerapp:db", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _wait_lines(p: subprocess.Popen[str], want: set[str]) -> None:
    """Waits until the worker has printed every line of `want`, reading
    its stdout's pipe directly so that the deadline holds even while it
    prints nothing."""
    assert p.stdout is not None
    fd = p.stdout.fileno()
    out = b""
    deadline = time.monotonic() + LONG
    while not want <= set(out.decode().splitlines()):
        left = deadline - time.monotonic()
        assert left > 0, f"worker never printed {want - set(out.decode().splitlines())}; it printed {out!r}"
        if select.select([fd], [], [], left)[0]:
            chunk = os.read(fd, 4096)
            assert chunk, f"worker exited ({p.wait()}) after printing {out!r}"
            out += chunk


def test_sigterm_drains_finishing_jobs_and_releases_the_rest(tmp_path: Path) -> None:
    path = str(tmp_path / "app.db")
    db = honker.open(path)
    q = db.queue("jobs")
    fin = q.enqueue({"task": "finisher"})
    stuck = q.enqueue({"task": "stuck"})
    p = _worker_process(tmp_path, path, "--concurrency", "2", "--grace-s", "2")
    try:
        _wait_lines(p, {"started finisher", "started stuck"})
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=LONG)
    finally:
        p.kill()
    assert p.returncode == 0, err
    assert db.get_result(fin) == "finished"
    info = q.get_job(stuck)
    assert info is not None and (info.state, info.attempts) == ("ready", 0), "released, attempt not counted"


def test_a_killed_workers_job_is_reclaimed_after_its_lease(tmp_path: Path) -> None:
    path = str(tmp_path / "app.db")
    db = honker.open(path)
    q = db.queue("jobs")
    id = q.enqueue({"task": "hang"})
    p = _worker_process(tmp_path, path, "--lease-s", "1")
    try:
        _wait_lines(p, {"started hang"})
        p.send_signal(signal.SIGKILL)
        p.wait(LONG)
    finally:
        p.kill()
    # Claimable again once the lease lapses: the wait is woken by it.
    job = next(iter(q.claim("rescuer", timeout_s=LONG)))
    assert (job.id, job.attempts) == (id, 2)
    assert job.ack()
