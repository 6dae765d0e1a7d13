"""Locks, rate limits, results and the scheduler from Python."""

import threading

import pytest

import honker


def test_open_options(tmp_path):
    path = str(tmp_path / "opts.db")
    # honker's WAL policy: a restarted WAL is cut back to 4x the threshold (pages of 4 KiB).
    with honker.open(path) as d, d.transaction() as tx:
        assert tx.query("PRAGMA journal_size_limit") == [{"journal_size_limit": 4 * 1000 * 4096}]
    with honker.open(path, busy_timeout_s=0.5, wal_autocheckpoint=0) as d, d.transaction() as tx:
        assert tx.query("PRAGMA wal_autocheckpoint") == [{"wal_autocheckpoint": 0}]
        assert tx.query("PRAGMA journal_size_limit") == [{"journal_size_limit": -1}]
    with pytest.raises(honker.InvalidArgument, match="wal_autocheckpoint"):
        honker.open(path, wal_autocheckpoint=-1)
    with pytest.raises(honker.InvalidArgument, match="busy_timeout_s"):
        honker.open(path, busy_timeout_s=-1)


def test_locks(db):
    with db.lock("migrations", owner="a") as lock:
        assert lock.fencing_token > 0
        with pytest.raises(honker.LockHeld):
            db.lock("migrations", owner="b")
        assert db.try_lock("migrations", "a") is None, "no second guard for the same owner"
        assert lock.heartbeat(60) is True
    again = db.try_lock("migrations", "b", 60)
    assert again is not None and again.fencing_token > lock.fencing_token
    assert again.release() is True
    with pytest.raises(honker.InvalidArgument, match="positive"):
        db.try_lock("x", "o", -1)


def test_rate_limits_and_results(db):
    allowed = [db.try_rate_limit("api:user:1", 3, 3600) for _ in range(5)]
    assert allowed.count(True) in (3, 6)  # 6 only if an hour boundary fell inside the loop
    db.save_result(7, {"sent_at": 1234}, 60)
    assert db.get_result(7) == {"sent_at": 1234}
    assert db.get_result(8) is None
    with pytest.raises(honker.InvalidArgument):
        db.try_rate_limit("k", 0, 1)


def test_scheduler_fires_and_stops(db):
    sched = db.scheduler()
    sched.add("nightly", queue="backups", schedule="0 3 * * *", payload={"t": "s3"}, tz="Europe/Paris")
    sched.add("tick", queue="ticks", schedule="@every 1s")
    assert [s.name for s in sched.list()] == ["nightly", "tick"]
    with pytest.raises(honker.InvalidCron):
        sched.add("bad", queue="q", schedule="61 * * * *")
    with pytest.raises(honker.NotFound):
        sched.pause("missing")
    stop = threading.Event()
    runner = threading.Thread(target=sched.run, args=("host-a", stop), kwargs={"lock_ttl_s": 2})
    runner.start()
    job = next(db.queue("ticks").claim("w", timeout_s=20))
    assert job.key.startswith("schedule:tick:")
    job.ack()
    stop.set()
    runner.join(timeout=20)
    assert not runner.is_alive()
    assert sched.remove("tick") is True
