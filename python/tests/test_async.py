"""asyncio: the same iterators with ``async for``, off the event loop."""

import asyncio
import gc
import os
import threading
import time

import pytest
from conftest import WriteLockHolder

import honker


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
        async for job in emails.claim("worker-1", timeout_s=0.5):
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
        job = await asyncio.wait_for(db.queue("ticks").claim("w", timeout_s=20).__anext__(), 25)
        stop.set()
        await asyncio.wait_for(runner, 20)
        return n.payload, ev.payload, job.key

    note, event, key = asyncio.run(main())
    assert note == {"x": 1}
    assert event == {"id": 1}
    assert key.startswith("schedule:tick:")


def _wait_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "honker-wait"]


def test_cancelled_waits_leave_no_thread_behind(db):
    q = db.queue("q")
    stream = db.stream("s")

    async def main():
        assert _wait_threads() == []
        iters = [q.claim("w"), stream.subscribe("c"), db.listen("ch"), q.claim("dropped")]
        tasks = [asyncio.ensure_future(it.__anext__()) for it in iters]
        # Each iterator waits on a thread of its own; wait until all started.
        deadline = time.monotonic() + 10
        while len(_wait_threads()) < len(tasks):
            assert time.monotonic() < deadline, "the waits never started"
            await asyncio.sleep(0.005)
        for t in tasks:
            t.cancel()
        for task in tasks:
            with pytest.raises(asyncio.CancelledError):
                await task
        # Cancelling woke each wait; ending the iterators (closed, or one
        # simply dropped) ends their threads. A thread still blocked in a
        # wait would never end.
        threads = _wait_threads()
        iters[0].stop()
        iters[1].close()
        iters[2].close()
        # A cancelled task's CancelledError has a traceback holding the
        # frame of `__anext__` and so the iterator: drop every task (the
        # loop variable too), and let the loop run the step it scheduled
        # with that error, before the iterators can be collected.
        del tasks, task, iters
        await asyncio.sleep(0)
        gc.collect()
        for t in threads:
            t.join(timeout=10)
            assert not t.is_alive(), "a wait thread outlived its iterator"

    asyncio.run(main())


def test_waiting_loops_do_not_starve_short_async_calls(db):
    # Waits run on threads of their own, not the default executor: with more
    # claim loops waiting than the executor has threads, enqueue_async still
    # runs at once, and every loop gets a job.
    q = db.queue("q")
    loops = (os.cpu_count() or 1) + 8

    async def main():
        got: list[int] = []

        async def worker(i: int) -> None:
            async for job in q.claim(f"w{i}"):
                got.append(job.payload)
                await job.ack_async()
                return

        workers = [asyncio.ensure_future(worker(i)) for i in range(loops)]
        deadline = time.monotonic() + 10
        while len(_wait_threads()) < loops:
            assert time.monotonic() < deadline, "the claim loops never started waiting"
            await asyncio.sleep(0.005)
        for i in range(loops):
            await asyncio.wait_for(q.enqueue_async(i), 5)
        await asyncio.wait_for(asyncio.gather(*workers), 10)
        return sorted(got)

    assert asyncio.run(main()) == list(range(loops))


def test_async_twins_do_what_their_sync_calls_do(db):
    q = db.queue("q", max_attempts=5)
    s = db.stream("s")

    async def main():
        listener = db.listen("c")
        first = await q.enqueue_async({"n": 1}, priority=5)
        rest = await q.enqueue_many_async([{"n": 2}, {"n": 3}, {"n": 4}])
        job = await q.claim_one_async("w")
        assert (job.id, job.payload) == (first, {"n": 1})
        assert await job.heartbeat_async(60) is True
        assert await job.retry_async(0, "again") is True
        assert await job.ack_async() is False, "the retried claim's lease is gone"
        jobs = await q.claim_batch_async("w", 10)
        assert sorted(j.id for j in jobs) == sorted([first, *rest])
        by_id = {j.id: j for j in jobs}
        assert await by_id[first].release_async() is True
        assert await by_id[rest[0]].fail_async("bad") is True
        assert await q.ack_batch_async([by_id[rest[1]], by_id[rest[2]]]) == 2
        again = await q.claim_one_async("w")
        assert (again.id, again.attempts) == (first, 2), "release did not count the attempt"
        assert await again.ack_async() is True
        assert [j.id for j in q.dead_jobs()] == [rest[0]]
        off = await s.publish_async({"e": 1}, key="k")
        assert [(e.offset, e.key, e.payload) for e in await s.read_since_async(0)] == [(off, "k", {"e": 1})]
        assert await s.save_offset_async("c", off) is True
        assert s.get_offset("c") == off
        await db.notify_async("c", {"hi": 1})
        got = listener.recv(timeout_s=5)
        assert got is not None and got.payload == {"hi": 1}

    asyncio.run(main())
    assert q.stats().ready == 0


def test_an_async_twin_waits_for_the_write_lock_off_the_event_loop(db):
    q = db.queue("q")
    holder = WriteLockHolder(db.path)  # until release()

    async def main():
        pending = asyncio.ensure_future(q.enqueue_async(1))
        # The loop keeps turning while the enqueue waits on its worker thread.
        for _ in range(20):
            await asyncio.sleep(0.01)
        assert not pending.done(), "it cannot commit while the other writer holds the lock"
        holder.release()
        return await asyncio.wait_for(pending, 10)

    job_id = asyncio.run(main())
    assert holder.wait() == 0
    assert q.get_job(job_id) is not None


def test_an_async_twin_inside_this_threads_transaction_needs_tx(db):
    q = db.queue("q")
    q.enqueue("old")

    async def main():
        job = await q.claim_one_async("w")
        with db.transaction() as tx:
            # Without tx, its worker would wait for this commit: refused at once.
            with pytest.raises(honker.TransactionOpen, match="pass that transaction to the call"):
                await q.enqueue_async("x")
            with pytest.raises(honker.TransactionOpen):
                await job.ack_async()
            new = await q.enqueue_async("in tx", tx=tx)
            assert await job.ack_async(tx) is True  # tx given positionally
        return new

    new = asyncio.run(main())
    assert [j.id for j in q.claim_batch("w", 10)] == [new]


def test_async_bursts_every_event_once_in_order_offsets_saved_as_moved_past(db):
    s = db.stream("burst")
    listener = db.listen("n")
    with db.transaction() as tx:
        offsets = [s.publish(i, tx=tx) for i in range(250)]
        for i in range(300):
            db.notify("n", i, tx=tx)

    async def main():
        seen = []
        sub = s.subscribe("c", timeout_s=5)
        async for ev in sub:
            seen.append(ev.offset)
            if len(seen) == 120:
                break
        sub.close()
        assert seen == offsets[:120]
        # Moved past the first 119; the 120th was in hand.
        assert s.get_offset("c") == offsets[118]
        rest = [ev.offset async for ev in s.subscribe("c", timeout_s=0.2)]
        assert rest == offsets[119:], "resumed at the one in hand, then the rest, once each"
        got = []
        async for n in listener:
            got.append(n.payload)
            if len(got) == 300:
                break
        assert got == list(range(300))

    asyncio.run(main())


def test_another_task_may_await_a_twin_while_one_task_holds_a_transaction(db):
    q = db.queue("q")

    async def main():
        entered, release = asyncio.Event(), asyncio.Event()

        async def holder():
            with db.transaction() as tx:
                q.enqueue("in tx", tx=tx)
                entered.set()
                await release.wait()  # holds the write lock across an await

        held = asyncio.ensure_future(holder())
        await entered.wait()
        # Not the holder: its call waits on a worker thread for the commit.
        pending = asyncio.ensure_future(q.enqueue_async("other"))
        for _ in range(3):
            await asyncio.sleep(0)
        assert not pending.done(), "it cannot commit before the holder does"
        release.set()
        await asyncio.wait_for(held, 10)
        return await asyncio.wait_for(pending, 10)

    other = asyncio.run(main())
    jobs = q.claim_batch("w", 10)
    assert [(j.id, j.payload) for j in jobs][1] == (other, "other")
    assert [j.payload for j in jobs] == ["in tx", "other"]


def test_transaction_async_commits_with_the_business_write_and_rolls_back_on_error(db):
    q = db.queue("emails")
    with db.transaction() as tx:
        tx.execute("CREATE TABLE orders (user_id INTEGER)")

    async def main():
        async with db.transaction_async() as tx:
            tx.execute("INSERT INTO orders (user_id) VALUES (?)", [1])
            await q.enqueue_async({"order": 1}, tx=tx)
            # This task owns it: a plain call is refused, not deadlocked.
            with pytest.raises(honker.TransactionOpen):
                await q.enqueue_async({"order": "outside"})
            with pytest.raises(honker.TransactionOpen):
                q.enqueue({"order": "outside"})
        with pytest.raises(RuntimeError, match="boom"):
            async with db.transaction_async() as tx:
                tx.execute("INSERT INTO orders (user_id) VALUES (?)", [2])
                q.enqueue({"order": 2}, tx=tx)
                raise RuntimeError("boom")

    asyncio.run(main())
    with db.transaction() as tx:
        assert tx.query("SELECT user_id FROM orders") == [{"user_id": 1}]
    assert [j.payload for j in q.claim_batch("w", 10)] == [{"order": 1}]


def test_transaction_async_waits_for_the_write_lock_off_the_event_loop(db):
    holder = WriteLockHolder(db.path)
    q = db.queue("q")

    async def main():
        async def in_tx():
            async with db.transaction_async() as tx:
                return q.enqueue("x", tx=tx)

        doomed = asyncio.ensure_future(in_tx())
        pending = asyncio.ensure_future(in_tx())
        for _ in range(20):
            await asyncio.sleep(0.01)  # the loop turns while BEGIN waits
        assert not pending.done()
        doomed.cancel()  # its BEGIN completes later: it must be rolled back
        holder.release()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(doomed, 10)
        return await asyncio.wait_for(pending, 10)

    job_id = asyncio.run(main())
    assert holder.wait() == 0
    assert [j.id for j in q.claim_batch("w", 10)] == [job_id], "only the surviving task enqueued"
    # Nothing was left open: another handle writes at once.
    other = honker.open(db.path, busy_timeout_s=0.5)
    other.queue("probe").enqueue(1)
    other.close()


def test_transaction_async_in_two_tasks_takes_turns(db):
    q = db.queue("q")

    async def main():
        first_in, go_on = asyncio.Event(), asyncio.Event()

        async def first():
            async with db.transaction_async() as tx:
                q.enqueue("first", tx=tx)
                first_in.set()
                await go_on.wait()  # holds it across an await

        async def second():
            await first_in.wait()
            async with db.transaction_async() as tx:  # waits its turn
                return q.enqueue("second", tx=tx)

        a = asyncio.ensure_future(first())
        b = asyncio.ensure_future(second())
        await first_in.wait()
        for _ in range(3):
            await asyncio.sleep(0)
        assert not b.done(), "the second waits for the first's commit"
        go_on.set()
        await asyncio.wait_for(a, 10)
        await asyncio.wait_for(b, 10)
        with pytest.raises(honker.TransactionOpen, match="this caller holds an open honker transaction"):
            async with db.transaction_async(), db.transaction_async():
                pass

    asyncio.run(main())
    assert [j.payload for j in q.claim_batch("w", 10)] == ["first", "second"]
