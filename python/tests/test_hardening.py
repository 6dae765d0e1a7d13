"""Regression tests for the defects a hostile test pass found (issue #12):
each failed on the main branch before its fix."""

import gc
import logging
import sqlite3
import threading
import time

import pytest

import honker


def wait_until(cond, what, timeout=20.0):
    """Waits for ``cond()`` with a deadline, re-checking on the database's own
    clock of events (a short timed wait), never assuming it happened."""
    deadline = time.monotonic() + timeout
    done = threading.Event()
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        done.wait(0.01)


# 1. Absurd instants and panics


def test_absurd_instants_are_invalid_arguments_not_panics(db):
    q = db.queue("q")
    for kwargs, name in [
        ({"run_at": 1e19}, "run_at"),
        ({"run_at": -5}, "run_at"),
        ({"delay_s": 1e17}, "delay"),
        ({"expires_s": 1e17}, "expires"),
    ]:
        with pytest.raises(honker.InvalidArgument, match=f"`{name}`"):
            q.enqueue({}, **kwargs)
    with pytest.raises(honker.InvalidArgument, match="`ttl"):
        db.try_lock("l", "o", 1e17)
    with pytest.raises(honker.InvalidArgument, match="`ttl"):
        db.save_result(1, {}, 1e17)
    with pytest.raises(honker.InvalidArgument, match="`after`"):
        honker.cron_next("* * * * *", 9223372036854775)
    with pytest.raises(honker.InvalidArgument, match="visibility_timeout"):
        db.queue("q", visibility_timeout_s=1e17).claim_one("w")
    assert q.stats().ready == 0, "nothing half-applied"


def test_a_panic_reaches_python_as_an_internal_error(db):
    with pytest.raises(honker.InternalError, match="deliberate panic") as e:
        db._native._panic_for_test()
    assert isinstance(e.value, Exception), "an Exception, not pyo3's PanicException"
    db.queue("q").enqueue(1)  # the database is fine afterwards


# 2. Cron overflow


def test_cron_steps_and_instants_out_of_range():
    with pytest.raises(honker.InvalidCron, match="step"):
        honker.cron_next("1/4294967295 * * * *", 0)
    with pytest.raises(honker.InvalidCron):
        honker.cron_next("*/60 * * * *", 0)
    assert honker.cron_next("*/59 * * * *", 0) == 59 * 60


# 3. One schedule that cannot fire


def test_add_refuses_a_name_tick_could_not_fire(db):
    with pytest.raises(honker.InvalidArgument, match="at most 480 bytes"):
        db.scheduler().add("n" * 500, queue="q", schedule="@every 1s")


def test_a_schedule_that_cannot_fire_does_not_stop_the_others_and_is_logged(db, caplog):
    sched = db.scheduler()
    sched.add("good", queue="q", schedule="@every 1s")
    sched.add("bad", queue="q", schedule="@every 1s")
    # As an older version could have stored it: a name too long for its key.
    with db.transaction() as tx:
        tx.execute("UPDATE _honker_schedules SET name = ? WHERE name = 'bad'", ["b" * 500])
        tx.execute("UPDATE _honker_schedules SET next_fire_at = 0")
    stop = threading.Event()
    caplog.set_level(logging.WARNING, logger="honker.scheduler")
    runner = threading.Thread(target=sched.run, args=("me", stop))
    runner.start()
    try:
        wait_until(lambda: db.queue("q").stats().ready >= 1, "the good schedule's fire")
        wait_until(lambda: any("could not fire" in r.getMessage() for r in caplog.records), "the log line")
    finally:
        stop.set()
        runner.join(30)
    assert not runner.is_alive()
    bad = next(s for s in sched.list() if s.name.startswith("b"))
    assert bad.last_error is not None and "`key`" in bad.last_error
    assert bad.next_fire_at_ms > 0, "moved on to its next boundary"


# 4. Batch ack fenced by the whole lease


def test_a_stale_batch_ack_leaves_the_current_claim_alone(db):
    q = db.queue("q")
    q.enqueue({"n": 1})
    stale = q.claim_one("w")
    assert stale is not None and stale.retry(0, "again")
    current = q.claim_one("w")  # the same worker name, the next attempt
    assert current is not None and current.id == stale.id
    assert q.ack_batch([stale]) == 0
    info = q.get_job(stale.id)
    assert info is not None and info.state == "processing"
    assert current.ack() is True
    with pytest.raises(honker.InvalidArgument, match="claimed Job objects"):
        q.ack_batch([stale.id])  # type: ignore[list-item]


# 7. A database file is input


def hostile(path, sql):
    c = sqlite3.connect(path)
    c.executescript(sql)
    c.close()


def test_opening_a_crafted_file_runs_no_honker_function(tmp_path):
    path = str(tmp_path / "hostile.db")
    hostile(
        path,
        """
        CREATE TABLE _honker_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
        CREATE TABLE loot (x);
        CREATE TRIGGER grab AFTER INSERT ON _honker_meta BEGIN
            SELECT honker_enqueue('victim', '{}');
            INSERT INTO loot VALUES (1);
        END;
        """,
    )
    with pytest.raises(honker.SqliteError, match="unsafe use of honker_enqueue"):
        honker.open(path)
    c = sqlite3.connect(path)
    assert c.execute("SELECT COUNT(*) FROM loot").fetchone() == (0,)
    c.close()


def test_an_attached_files_view_cannot_release_the_apps_lock(tmp_path, db):
    evil = str(tmp_path / "evil.db")
    hostile(evil, "CREATE VIEW v AS SELECT honker_lock_release('app', 1) AS r, honker_enqueue('q', '1') AS j;")
    with db.lock("app", owner="me") as lock:
        with db.transaction() as tx:
            tx.execute("ATTACH DATABASE ? AS evil", [evil])
            with pytest.raises(honker.SqliteError, match="unsafe use"):
                tx.query("SELECT * FROM evil.v")
        holder = db.lock_holder("app")
        assert holder is not None and holder.fencing_token == lock.fencing_token
    assert db.queue("q").stats().ready == 0


def test_an_application_may_vouch_for_its_own_triggers(tmp_path):
    path = str(tmp_path / "own.db")
    with honker.open(path, trusted_schema=True) as d:
        with d.transaction() as tx:
            tx.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY)")
            tx.execute(
                "CREATE TRIGGER mail AFTER INSERT ON orders BEGIN "
                "SELECT honker_enqueue('emails', json_object('order', NEW.id)); END"
            )
            tx.execute("INSERT INTO orders (id) VALUES (7)")
        job = d.queue("emails").claim_one("w")
        assert job is not None and job.payload == {"order": 7}


# 8. Streams keep their place however the loop is left


def publish(db, n):
    s = db.stream("s")
    return [s.publish({"i": i}) for i in range(n)]


def test_break_saves_what_the_consumer_moved_past(db):
    offs = publish(db, 10)
    s = db.stream("s")
    for ev in s.subscribe("c", timeout_s=5):
        if ev.offset == offs[4]:
            break
    gc.collect()
    assert s.get_offset("c") == offs[3], "all but the event in hand"
    first = next(iter(s.subscribe("c", timeout_s=5)))
    assert first.offset == offs[4], "only the event in hand comes again"


def test_a_subscription_is_a_context_manager_and_survives_an_exception(db):
    offs = publish(db, 5)
    s = db.stream("s")
    with pytest.raises(RuntimeError), s.subscribe("c", timeout_s=5) as sub:
        for ev in sub:
            if ev.offset == offs[2]:
                raise RuntimeError("handler failed")
    assert s.get_offset("c") == offs[1]


def test_closing_the_database_saves_the_offset(tmp_path):
    path = str(tmp_path / "c.db")
    d = honker.open(path)
    offs = publish(d, 5)
    it = iter(d.stream("s").subscribe("c", timeout_s=5))
    for _ in range(4):
        next(it)
    d.close()
    with honker.open(path) as again:
        assert again.stream("s").get_offset("c") == offs[2]
    del it


# 10. Units: one rule, old names deprecated


def test_old_duration_names_still_work_with_a_deprecation_warning(db):
    q = db.queue("q")
    with pytest.warns(DeprecationWarning, match="use `delay_s=`"):
        q.enqueue(1, delay=3600)
    assert q.stats().scheduled == 1
    with pytest.warns(DeprecationWarning, match="use `per_s=`"):
        assert db.try_rate_limit("k", 1, per=60)
    with pytest.warns(DeprecationWarning, match="use `ttl_s=`"):
        lock = db.try_lock("l", "o", ttl=60)
    assert lock is not None
    lock.release()
    with pytest.raises(honker.InvalidArgument, match="not both"):
        q.enqueue(1, delay=1, delay_s=1)


# 11. A lock held by a context manager keeps itself alive


def test_a_with_lock_outlives_its_ttl_and_reports_a_loss(db):
    with db.lock("m", owner="me", ttl_s=0.3) as lock:
        first = db.lock_holder("m")
        assert first is not None
        wait_until(
            lambda: (h := db.lock_holder("m")) is not None and h.expires_at > first.expires_at + 0.5,
            "renewals past the TTL",
        )
        assert not lock.lost
        lock.check()
    assert db.lock_holder("m") is None, "released at the end"

    with pytest.raises(honker.LockLost, match="'m'"), db.lock("m", owner="me", ttl_s=0.3) as lock:
        # Someone else holds it now (as after a stall past the TTL).
        with db.transaction() as tx:
            tx.execute("UPDATE _honker_locks SET token = token + 1000, owner = 'thief' WHERE name = 'm'")
        wait_until(lambda: lock.lost, "the keeper noticing")
        with pytest.raises(honker.LockLost):
            lock.check()


# 12. Errors that named the wrong thing


def test_errors_name_the_problem(tmp_path, db):
    q = db.queue("q")
    with pytest.raises(honker.InvalidArgument, match="NUL"):
        db.queue("a\0b").enqueue(1)
    with pytest.raises(honker.InvalidArgument, match="`priority`: must fit in 64 bits"):
        q.enqueue(1, priority=2**70)
    with pytest.raises(honker.InvalidArgument, match="`id`"):
        q.get_job(2**64)
    missing = tmp_path / "no-such-dir" / "app.db"
    with pytest.raises(honker.CannotOpen, match="no-such-dir"):
        honker.open(str(missing))
    with db.transaction(), pytest.raises(honker.TransactionOpen, match="tx="):
        q.enqueue(1)


def test_get_job_and_dead_jobs_return_typed_decoded_records(db):
    q = db.queue("q")
    jid = q.enqueue({"to": "a@b.c"}, priority=3, key="k1")
    info = q.get_job(jid)
    assert isinstance(info, honker.JobInfo)
    assert info.payload == {"to": "a@b.c"}
    assert (info.state, info.priority, info.key, info.attempts) == ("ready", 3, "k1", 0)
    job = q.claim_one("w")
    assert job is not None and job.fail("bad")
    (dead,) = q.dead_jobs()
    assert isinstance(dead, honker.JobInfo)
    assert (dead.id, dead.payload, dead.state, dead.dead_reason) == (jid, {"to": "a@b.c"}, "dead", "failed")
    assert dead.died_at_ms is not None and dead.created_at_ms <= dead.died_at_ms
