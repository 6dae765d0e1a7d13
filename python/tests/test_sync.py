"""The sync Python API over the engine. Waits are bounded by timeouts and
signalled by the engine; nothing sleeps hoping for an outcome."""

import threading
import time

import pytest

import honker


def test_a_plain_call_while_this_thread_holds_a_transaction_is_refused(db):
    with db.transaction() as tx:
        with pytest.raises(honker.TransactionOpen, match="_tx"):
            db.notify("c", 1)  # would deadlock; fails clearly instead
        db.notify("c", 1, tx=tx)


def test_enqueue_in_a_business_transaction_then_claim(tmp_path):
    db = honker.open(str(tmp_path / "app.db"))
    with db.transaction() as tx:
        tx.execute("CREATE TABLE orders (user_id INTEGER)")
    emails = db.queue("emails")
    with db.transaction() as tx:
        tx.execute("INSERT INTO orders (user_id) VALUES (?)", [42])
        emails.enqueue({"to": "alice@example.com"}, tx=tx)
    with pytest.raises(RuntimeError), db.transaction() as tx:
        tx.execute("INSERT INTO orders (user_id) VALUES (?)", [43])
        emails.enqueue({"to": "rolled@back"}, tx=tx)
        raise RuntimeError("payment declined")
    later = emails.enqueue({"to": "later@example.com"}, run_at=int(time.time()) + 10)
    with db.transaction() as tx:
        assert tx.query("SELECT user_id FROM orders") == [{"user_id": 42}]
    claimer = emails.claim("worker-1", timeout_s=5)
    job = next(claimer)
    assert job.payload == {"to": "alice@example.com"}
    assert job.ack() is True
    assert emails.claim_one("worker-1") is None, "the delayed job is not due; the rolled-back one never existed"
    assert emails.get_job(later).state == "scheduled"
    db.close()
    with pytest.raises(honker.Closed):
        emails.enqueue(1)


def test_claim_blocks_until_another_thread_enqueues(db):
    q = db.queue("q")
    got = []
    claimer = q.claim("w")

    def work():
        for job in claimer:
            got.append(job.payload)
            job.ack()
            claimer.stop()

    t = threading.Thread(target=work)
    t.start()
    other = honker.open(db.path)
    other.queue("q").enqueue({"n": 1})
    t.join(timeout=20)
    assert not t.is_alive()
    assert got == [{"n": 1}]


def test_leases_retry_fail_dead_letters(db):
    q = db.queue("q", max_attempts=2, visibility_timeout_s=30)
    jid = q.enqueue({"x": 1})
    job = q.claim_one("w")
    assert job.heartbeat(60) is True
    assert job.retry(delay_s=0, error="boom") is True
    job2 = q.claim_one("w")
    assert (job2.id, job2.attempts, job2.last_error) == (jid, 2, "boom")
    assert job.ack() is False, "the old lease is refused"
    assert job2.fail("bad input") is True
    dead = q.dead_jobs()
    assert [(d.id, d.dead_reason, d.last_error) for d in dead] == [(jid, "failed", "bad input")]
    q.requeue_dead(jid)
    with pytest.raises(honker.NotFound):
        q.requeue_dead(jid)
    ids = q.enqueue_many([{"n": i} for i in range(3)])
    assert len(ids) == 3
    claimed = q.claim_batch("w", 10)
    assert q.ack_batch(claimed) == 4
    k1 = q.enqueue(1, key="once")
    assert q.enqueue(2, key="once") == k1
    assert q.cancel(k1) is True


def test_release_gives_a_job_back_without_using_an_attempt(db):
    q = db.queue("q", max_attempts=1)
    first = q.enqueue({"n": 1})
    second = q.enqueue({"n": 2})
    job = q.claim_one("w")
    assert (job.id, job.attempts) == (first, 1)
    assert job.release() is True
    assert job.release() is False, "the lease is gone"
    again = q.claim_one("w2")
    assert (again.id, again.attempts) == (first, 1), "first in line again, its one attempt unused"
    assert again.ack() is True
    assert q.claim_one("w").id == second


def test_errors_are_typed_and_named(db):
    q = db.queue("q")
    with pytest.raises(honker.InvalidArgument, match="`queue`: must not be empty"):
        db.queue("").enqueue(1)
    with pytest.raises(honker.InvalidJson):
        q.enqueue({1, 2})  # a set is not JSON
    with pytest.raises(honker.InvalidJson, match="`payload`: Out of range float values"):
        q.enqueue({"x": float("inf")})  # Python would write Infinity, which no JSON reader takes
    with pytest.raises(honker.InvalidArgument, match="delay"):
        q.enqueue(1, delay_s=-1)
    with pytest.raises(honker.InvalidArgument, match="max_attempts"):
        q.enqueue(1, max_attempts=0)
    # Counts and attempt budgets are checked, not left to an int conversion.
    with pytest.raises(honker.InvalidArgument, match="`max_attempts`: must be a whole number from 1 to .*, got -1"):
        q.enqueue(1, max_attempts=-1)
    with pytest.raises(honker.InvalidArgument, match="`max_attempts`: .* got 4294967296"):
        db.queue("big", max_attempts=2**32).enqueue(1)
    with pytest.raises(honker.InvalidArgument, match="`n`: must not be negative, got -1"):
        q.claim_batch("w", -1)
    with pytest.raises(honker.InvalidArgument, match="`limit`: must not be negative, got -5"):
        db.stream("s").read_since(0, -5)
    with pytest.raises(honker.InvalidArgument, match="`limit`: must not be negative"):
        q.dead_jobs(-1)
    assert q.claim_batch("w", 10) == [], "nothing was enqueued by the refused calls"
    assert issubclass(honker.Busy, honker.HonkerError)
    with pytest.raises(TypeError, match="SQL parameters"), db.transaction() as tx:
        tx.execute("SELECT ?", [object()])


def test_streams_at_least_once(db):
    s = db.stream("orders")
    a = s.publish({"id": 1})
    b = s.publish({"id": 2}, key="k")
    assert [(e.offset, e.key, e.payload) for e in s.read_since(0)] == [(a, None, {"id": 1}), (b, "k", {"id": 2})]
    sub = s.subscribe("mailer", timeout_s=0.05)
    first = next(sub)
    second = next(sub)
    assert (first.payload, second.payload) == ({"id": 1}, {"id": 2})
    assert list(sub) == []  # times out: moved past both, offsets saved before waiting
    assert s.get_offset("mailer") == b
    assert s.save_offset("mailer", a) is False, "offsets only move forward"


def test_listen_gets_later_notifications_in_order(db):
    db.notify("orders", {"before": True})
    sub = db.listen("orders")
    other = honker.open(db.path)
    for i in range(20):
        other.notify("orders", {"i": i})
    with other.transaction() as tx:
        other.notify("orders", {"rolled": "back"}, tx=tx)
        tx.rollback()
    got = [sub.recv(timeout_s=20).payload["i"] for _ in range(20)]
    assert got == list(range(20))
    assert sub.recv(timeout_s=0.05) is None
    sub.close()
    assert list(sub) == []


def test_gil_is_released_while_waiting(db):
    """A thread blocked in claim() lets other Python threads run."""
    q = db.queue("idle")
    claimer = q.claim("w")
    t = threading.Thread(target=lambda: list(claimer))
    t.start()
    counted = 0
    deadline = time.monotonic() + 0.2
    while time.monotonic() < deadline:
        counted += 1
    claimer.stop()
    t.join(timeout=20)
    assert not t.is_alive()
    assert counted > 1000, "the main thread kept running while the other waited"


def test_closing_the_database_ends_blocked_iterators_quietly(tmp_path):
    db = honker.open(str(tmp_path / "app.db"))
    ended = {}
    started = threading.Barrier(4)

    def run(name, iterable):
        started.wait(timeout=10)
        try:
            for _ in iterable:
                pass
            ended[name] = "ended"
        except Exception as e:  # noqa: BLE001 - recorded for the assertion
            ended[name] = repr(e)

    threads = [
        threading.Thread(target=run, args=("claim", db.queue("q").claim("w"))),
        threading.Thread(target=run, args=("subscribe", db.stream("s").subscribe("c"))),
        threading.Thread(target=run, args=("listen", db.listen("c"))),
    ]
    for t in threads:
        t.start()
    started.wait(timeout=10)
    db.close()  # whether each thread is already waiting or about to: it ends
    for t in threads:
        t.join(timeout=10)
        assert not t.is_alive()
    assert ended == {"claim": "ended", "subscribe": "ended", "listen": "ended"}
