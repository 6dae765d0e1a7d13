"""Queue stats and deadlines, stream retention, lock holders, result sweeps,
the scheduler's soonest fire and honker.cron_next. Expiries use TTLs of a
millisecond and a short sleep: time passing is the outcome, not a guess."""

import sqlite3
import time

import pytest

import honker


def test_queue_stats_follow_enqueue_claim_and_fail(db):
    q = db.queue("emails")
    assert q.stats() == honker.QueueStats(ready=0, scheduled=0, processing=0, dead=0, completed=0)
    q.enqueue({"n": 1}, run_at=1000)
    q.enqueue({"n": 2}, run_at=2000)
    q.enqueue({"n": 3}, delay_s=3600)
    db.queue("other").enqueue({"n": 4})
    before = q.stats()
    assert before.scheduled >= 1 and before.ready + before.scheduled == 3 and before.processing == 0
    job = q.claim_one("w1")
    assert job is not None and job.payload == {"n": 1}
    assert q.stats() == honker.QueueStats(ready=1, scheduled=1, processing=1, dead=0, completed=0)
    assert job.fail("boom") is True
    assert q.stats() == honker.QueueStats(ready=1, scheduled=1, processing=0, dead=1, completed=0)
    with pytest.raises(honker.InvalidArgument):
        db.queue("").stats()


def test_sweep_expired_moves_a_job_past_its_start_deadline_to_dead(db):
    q = db.queue("reports")
    stale = q.enqueue({"r": 1}, expires_s=0.001)
    fresh = q.enqueue({"r": 2}, expires_s=3600)
    db.queue("elsewhere").enqueue({"r": 3}, expires_s=0.001)
    time.sleep(0.02)
    assert q.sweep_expired() == 1, "only this queue's expired job"
    assert [j.id for j in q.dead_jobs()] == [stale]
    assert q.get_job(stale).dead_reason == "expired"
    assert q.get_job(fresh).state == "ready"
    assert q.stats().dead == 1
    assert q.sweep_expired() == 0
    assert db.queue("elsewhere").sweep_expired() == 1


def test_next_deadline_is_the_earliest_run_at_or_lease_end_in_epoch_seconds(db):
    q = db.queue("later", visibility_timeout_s=600)
    assert q.next_deadline() is None
    run_at = int(time.time()) + 3600
    q.enqueue({"n": 1}, run_at=run_at)
    assert q.next_deadline() == run_at
    q.enqueue({"n": 2})
    job = q.claim_one("w")
    assert job is not None and job.payload == {"n": 2}
    deadline = q.next_deadline()
    assert deadline is not None and time.time() + 590 < deadline <= time.time() + 600, "the lease ends first"
    assert job.ack() is True
    assert q.next_deadline() == run_at


def test_last_offset(db):
    s = db.stream("orders")
    assert s.last_offset() == 0
    s.publish({"n": 1})
    last = s.publish({"n": 2})
    db.stream("other").publish({"n": 3})
    assert s.last_offset() == last


def test_retention_and_prune_remove_old_events(db):
    s = db.stream("audit")
    assert s.retention() == honker.Retention(max_age_s=None, max_count=None)
    offsets = [s.publish({"n": i}) for i in range(5)]
    assert s.prune() == 0, "no retention: keep everything"
    s.set_retention(max_count=2)
    assert s.retention() == honker.Retention(max_age_s=None, max_count=2)
    assert s.prune() == 3
    assert [e.offset for e in s.read_since(0)] == offsets[3:]
    assert s.last_offset() == offsets[-1]
    s.set_retention(max_age_s=0.001, max_count=2)
    assert s.retention() == honker.Retention(max_age_s=0.001, max_count=2)
    time.sleep(0.02)
    assert s.prune() == 2
    assert s.read_since(0) == []
    s.set_retention()
    assert s.retention() == honker.Retention(max_age_s=None, max_count=None)
    for bad in ({"max_count": 0}, {"max_count": -1}, {"max_age_s": 0}, {"max_age_s": -1.0}):
        with pytest.raises(honker.InvalidArgument):
            s.set_retention(**bad)
    with pytest.raises(TypeError):
        s.set_retention(60)


def test_lock_holder_shows_owner_and_token(db):
    assert db.lock_holder("migrations") is None
    with db.lock("migrations", owner="host:1", ttl_s=60) as lock:
        held = db.lock_holder("migrations")
        assert held is not None
        assert (held.name, held.owner, held.fencing_token) == ("migrations", "host:1", lock.fencing_token)
        assert time.time() + 50 < held.expires_at <= time.time() + 60
    assert db.lock_holder("migrations") is None
    short = db.try_lock("brief", "o", 0.001)
    assert short is not None
    time.sleep(0.02)
    assert db.lock_holder("brief") is None, "an expired lock has no holder"


def test_sweep_results_removes_only_expired_results(db):
    # The long-lived one first: saving also sweeps a few expired results.
    db.save_result(2, {"ok": True}, 3600)
    db.save_result(1, {"ok": True}, 0.001)
    time.sleep(0.02)
    assert db.sweep_results() == 1
    assert db.get_result(1) is None
    assert db.get_result(2) == {"ok": True}
    assert db.sweep_results() == 0


def test_scheduler_soonest(db):
    sched = db.scheduler()
    assert sched.soonest() is None
    sched.add("nightly", queue="backups", schedule="0 3 * * *", tz="Europe/Paris")
    sched.add("hourly", queue="ticks", schedule="@hourly")
    nexts = {s.name: s.next_fire_at_ms / 1000 for s in sched.list()}
    assert sched.soonest() == min(nexts.values())
    assert sched.soonest() == honker.cron_next("@hourly", time.time())
    sched.pause("hourly")
    assert sched.soonest() == nexts["nightly"]
    sched.pause("nightly")
    assert sched.soonest() is None


# (expr, tz, after_ms, expected_ms): tests/vectors/cron_dst.json, America/New_York in 2026.
DST = [
    ("0 2 * * *", "America/New_York", 1772866800000, 1772953200000),  # 02:00 skipped: 03:00 EDT
    ("CRON_TZ=America/New_York 30 2 * * *", None, 1772884800000, 1772953200000),
    ("30 1 * * *", "America/New_York", 1793448000000, 1793511000000),  # repeated 01:30: the first
    ("30 1 * * *", "America/New_York", 1793511000000, 1793601000000),  # not again at 01:30 EST
    ("0 2 * * *", None, 1772884800000, 1772935200000),  # UTC
]


@pytest.mark.parametrize(("expr", "tz", "after_ms", "expected_ms"), DST)
def test_cron_next_across_dst_matches_sql(expr, tz, after_ms, expected_ms):
    got = honker.cron_next(expr, after_ms / 1000, tz=tz)
    assert got == expected_ms / 1000
    conn = sqlite3.connect(":memory:")  # no file: one SQLite copy per file still holds
    honker.load_extension(conn)
    (sql,) = conn.execute("SELECT honker_cron_next(?, ?, ?)", (expr, after_ms, tz)).fetchone()
    conn.close()
    assert sql == expected_ms


def test_cron_next_defaults_and_errors():
    now = time.time()
    nxt = honker.cron_next("* * * * * *")  # six fields: every second
    assert now < nxt <= time.time() + 1
    assert honker.cron_next("0 0 1 1 *", 0) == 31536000.0  # 1971-01-01, strictly after the epoch
    assert honker.cron_next("@every 90s", 1000.5) > 1000.5
    with pytest.raises(honker.InvalidCron):
        honker.cron_next("61 * * * *", 0)
    with pytest.raises(honker.InvalidTimezone):
        honker.cron_next("0 3 * * *", 0, tz="Mars/Olympus")
    with pytest.raises(honker.InvalidArgument):
        honker.cron_next("0 3 * * *", float("nan"))
    with pytest.raises(TypeError):
        honker.cron_next("0 3 * * *", 0, "UTC")


def test_queues_and_jobs_list_what_an_operator_looks_at(db):
    q = db.queue("emails")

    @q.task
    def send(to: str) -> None: ...

    first = send.enqueue("a@example.com").id
    second = q.enqueue({"raw": True}, key="k")
    other = db.queue("other")
    other.enqueue(1, max_attempts=1)
    job = other.claim_one("w")
    assert job is not None and job.fail("boom")
    db.queue("idle").pause()

    summary = {s.name: s for s in db.queues()}
    assert list(summary) == ["emails", "idle", "other"]
    assert summary["emails"].stats == honker.QueueStats(ready=2, scheduled=0, processing=0, dead=0, completed=0)
    assert summary["other"].stats.dead == 1
    assert summary["idle"].controls.paused

    assert [j.id for j in db.jobs(queue="emails")] == [second, first]
    assert [j.id for j in db.jobs(task="send")] == [first]
    assert [j.id for j in db.jobs(key="k")] == [second]
    assert [j.state for j in db.jobs(state="dead")] == ["dead"]
    page = db.jobs(limit=2)
    assert len(page) == 2
    rest = db.jobs(before_id=page[-1].id)
    assert [j.id for j in page + rest] == sorted((j.id for j in page + rest), reverse=True)
    assert len(page + rest) == 3
    with pytest.raises(honker.InvalidArgument, match="state"):
        db.jobs(state="finished")
    with pytest.raises(honker.InvalidArgument, match="limit"):
        db.jobs(limit=-1)


def test_streams_lists_each_consumers_offset(db):
    s = db.stream("orders")
    first = s.publish({"n": 1})
    last = s.publish({"n": 2})
    assert s.save_offset("billing", first)
    db.stream("other").publish(0)  # offsets are shared: the lag is counted
    assert db.streams()[0] == honker.StreamSummary("orders", last, [honker.StreamConsumer("billing", first, 1)])
