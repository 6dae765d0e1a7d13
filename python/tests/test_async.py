"""asyncio: the same iterators with ``async for``, off the event loop."""

import asyncio
import threading
import time

import pytest

import honker


@pytest.fixture
def db(tmp_path):
    with honker.open(str(tmp_path / "app.db")) as d:
        yield d


def test_the_issue_example_with_async_for(db):
    emails = db.queue("emails")
    with db.transaction() as tx:
        tx.execute("CREATE TABLE orders (user_id INTEGER)")
    with db.transaction() as tx:
        tx.execute("INSERT INTO orders (user_id) VALUES (?)", [42])
        emails.enqueue({"to": "alice@example.com"}, tx=tx)
    emails.enqueue({"to": "later@example.com"}, run_at=int(time.time()) + 10)
    sent = []

    async def main():
        async for job in emails.claim("worker-1", timeout=0.5):
            sent.append(job.payload)
            job.ack()

    asyncio.run(main())
    assert sent == [{"to": "alice@example.com"}]


def test_waiting_does_not_block_the_event_loop(db):
    q = db.queue("q")
    other = honker.open(db.path)

    async def main():
        ticks = 0
        claimer = q.claim("w")

        async def ticker():
            nonlocal ticks
            while True:
                await asyncio.sleep(0.001)
                ticks += 1

        t = asyncio.create_task(ticker())
        waiting = asyncio.ensure_future(claimer.__anext__())
        await asyncio.sleep(0.1)  # the claim is blocked meanwhile; the ticker must keep running
        other.queue("q").enqueue({"n": 1})
        job = await asyncio.wait_for(waiting, 20)
        t.cancel()
        return ticks, job.payload

    ticks, payload = asyncio.run(main())
    assert payload == {"n": 1}
    assert ticks > 20, f"event loop stalled: {ticks} ticks in 100 ms"


def test_cancelling_a_claim_loses_no_job(db):
    q = db.queue("q")

    async def main():
        claimer = q.claim("w")
        task = asyncio.ensure_future(claimer.__anext__())
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    jid = q.enqueue({"after": "cancel"})
    job = q.claim_one("w2")
    assert job is not None and job.id == jid, "the job is claimable: nothing holds it"


def test_async_listen_subscribe_and_scheduler(db):
    other = honker.open(db.path)
    s = db.stream("orders")

    async def main():
        sub = db.listen("c")
        other.notify("c", {"x": 1})
        n = await asyncio.wait_for(sub.__anext__(), 20)
        other.stream("orders").publish({"id": 1})
        ev = await asyncio.wait_for(s.subscribe("consumer").__anext__(), 20)
        sched = db.scheduler()
        sched.add("tick", queue="ticks", schedule="@every 1s")
        stop = asyncio.Event()
        runner = asyncio.ensure_future(sched.run_async("host-a", stop, lock_ttl_s=2))
        job = await asyncio.wait_for(db.queue("ticks").claim("w", timeout=20).__anext__(), 25)
        stop.set()
        await asyncio.wait_for(runner, 20)
        return n.payload, ev.payload, job.key

    note, event, key = asyncio.run(main())
    assert note == {"x": 1}
    assert event == {"id": 1}
    assert key.startswith("schedule:tick:")


def test_cancelled_waits_leave_no_thread_behind(db):
    q = db.queue("q")
    stream = db.stream("s")

    async def main():
        before = threading.active_count()
        waits = [
            q.claim("w").__anext__(),
            stream.subscribe("c").__anext__(),
            db.listen("ch").__anext__(),
        ]
        tasks = [asyncio.ensure_future(w) for w in waits]
        # Each wait runs on an executor thread; wait until all three started.
        deadline = time.monotonic() + 10
        while threading.active_count() < before + len(tasks):
            assert time.monotonic() < deadline, "the waits never started"
            await asyncio.sleep(0.005)
        for t in tasks:
            t.cancel()
        for t in tasks:
            with pytest.raises(asyncio.CancelledError):
                await t
        # Joining the executor hangs if any thread is still blocked in a wait.
        await asyncio.wait_for(asyncio.get_running_loop().shutdown_default_executor(), timeout=10)
        assert threading.active_count() == before

    asyncio.run(main())
