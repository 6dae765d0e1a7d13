"""Real processes: exactly-once claiming, cross-process wake, and fork."""

import multiprocessing
import os
import pickle
import subprocess
import sys
import textwrap

import pytest

import honker

WORKER = textwrap.dedent(
    """
    import sys, honker
    db = honker.open(sys.argv[1])
    print("ready", flush=True)
    for job in db.queue("work").claim(sys.argv[2], timeout_s=60):
        job.ack()
        if job.payload.get("stop"):
            break
        print(job.id, flush=True)
    """
)

LISTENER = textwrap.dedent(
    """
    import sys, honker
    db = honker.open(sys.argv[1])
    sub = db.listen("orders")
    print("ready", flush=True)
    for i in range(int(sys.argv[2])):
        n = sub.recv(timeout_s=60)
        assert n is not None and n.payload == {"i": i}, (i, n)
    print("ok", flush=True)
    """
)


def _spawned_worker(path, worker, out):
    """Runs in a process started with multiprocessing's "spawn": it opens the
    database itself (handles are not shared across processes)."""
    db = honker.open(path)
    q = db.queue("work")
    ids = []
    while (job := q.claim_one(worker)) is not None:
        assert job.ack()
        ids.append(job.id)
    out.put(ids)
    db.close()


def test_spawned_worker_processes_claim_each_job_exactly_once(tmp_path):
    path = str(tmp_path / "app.db")
    with honker.open(path) as db:
        ids = db.queue("work").enqueue_many([{"n": i} for i in range(300)])
        ctx = multiprocessing.get_context("spawn")
        out = ctx.Queue()
        procs = [ctx.Process(target=_spawned_worker, args=(path, f"w{i}", out)) for i in range(3)]
        for p in procs:
            p.start()
        got = [out.get(timeout=60) for _ in procs]
        for p in procs:
            p.join(timeout=60)
            assert p.exitcode == 0
        claimed = [i for ids_ in got for i in ids_]
        assert sorted(claimed) == sorted(ids), "every job claimed exactly once"
        # A handle cannot be sent to another process: it must open its own.
        with pytest.raises(TypeError, match="pickle"):
            pickle.dumps(db)


def spawn(script, *args):
    return subprocess.Popen([sys.executable, "-c", script, *args], stdout=subprocess.PIPE, text=True)


def test_worker_processes_claim_each_job_exactly_once(tmp_path):
    path = str(tmp_path / "app.db")
    db = honker.open(path)
    workers = [spawn(WORKER, path, f"p{i}") for i in range(3)]
    for w in workers:
        assert w.stdout.readline().strip() == "ready"
    q = db.queue("work")
    ids = []
    for burst in range(20):
        ids += q.enqueue_many([{"n": burst * 30 + i} for i in range(30)])
    for _ in workers:
        q.enqueue({"stop": True}, priority=-1)
    seen = []
    for w in workers:
        out, _ = w.communicate(timeout=120)
        assert w.returncode == 0
        seen += [int(line) for line in out.split()]
    assert sorted(seen) == sorted(ids), "every job once, none twice"


def test_a_notification_wakes_a_listener_in_another_process(tmp_path):
    path = str(tmp_path / "app.db")
    db = honker.open(path)
    child = spawn(LISTENER, path, "50")
    assert child.stdout.readline().strip() == "ready"
    for i in range(50):
        db.notify("orders", {"i": i})
    out, _ = child.communicate(timeout=120)
    assert child.returncode == 0 and out.strip() == "ok"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_handle_inherited_through_fork_fails_clearly(tmp_path):
    path = str(tmp_path / "app.db")
    db = honker.open(path)
    q = db.queue("q")
    q.enqueue(1)
    sub = db.listen("c")
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: the inherited handle refuses; a fresh one works
        code = 0
        try:
            q.enqueue(2)
            code = 1
        except honker.Forked:
            pass
        try:
            sub.recv(timeout_s=0.1)
            code = 2
        except honker.Forked:
            pass
        fresh = honker.open(path)
        if fresh.queue("q").claim_one("child") is None:
            code = 3
        try:  # the fresh handle's wake path works too (the parent's watcher is not inherited)
            listener = fresh.listen("c")
            fresh.notify("c", {"from": "child"})
            n = listener.recv(timeout_s=10)
            if n is None or n.payload != {"from": "child"}:
                code = 4
        except honker.HonkerError:
            code = 5
        os.write(w, bytes([code]))
        os._exit(0)
    os.close(w)
    result = os.read(r, 1)
    os.waitpid(pid, 0)
    assert result == bytes([0]), f"child check {result[0]} failed"
    assert q.enqueue(3) > 0, "the parent's handle still works"


WRITER = textwrap.dedent(
    """
    import sys, honker
    db = honker.open(sys.argv[1], busy_timeout_s=0.2)
    try:
        with db.transaction() as tx:
            tx.execute("INSERT INTO orders (user_id) VALUES (2)")
        print("wrote", flush=True)
    except honker.Busy:
        print("busy", flush=True)
    """
)


def test_the_documented_safe_way_keeps_other_writers_out(tmp_path):
    path = str(tmp_path / "app.db")
    db = honker.open(path)
    with db.transaction() as tx:
        tx.execute("CREATE TABLE orders (user_id INTEGER)")
    with db.transaction() as tx:
        tx.execute("INSERT INTO orders (user_id) VALUES (1)")
        db.queue("emails").enqueue({"order": 1}, tx=tx)
        # While this business transaction is open, another process cannot write.
        out = subprocess.run(
            [sys.executable, "-c", WRITER, path], check=True, capture_output=True, text=True, timeout=60
        )
        assert out.stdout.strip() == "busy", out.stderr
    out = subprocess.run([sys.executable, "-c", WRITER, path], check=True, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "wrote", out.stderr
    with db.transaction() as tx:
        assert tx.query("SELECT user_id FROM orders ORDER BY user_id") == [{"user_id": 1}, {"user_id": 2}]


BLOCKED = textwrap.dedent(
    """
    import sys, honker
    db = honker.open(sys.argv[1])
    kind = sys.argv[2]
    listener = db.listen("c")
    try:
        print("waiting", flush=True)
        if kind == "claim":
            for job in db.queue("q").claim("w"):
                pass
        elif kind == "listen":
            listener.recv()
        elif kind == "subscribe":
            for event in db.stream("s").subscribe("c"):
                pass
        elif kind == "scheduler":
            db.scheduler().run("owner")
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        sys.exit(3)
    """
)


@pytest.mark.parametrize("kind", ["claim", "listen", "subscribe", "scheduler"])
def test_ctrl_c_interrupts_a_blocking_wait(tmp_path, kind):
    import signal

    path = str(tmp_path / "app.db")
    honker.open(path).close()
    child = spawn(BLOCKED, path, kind)
    assert child.stdout.readline().strip() == "waiting"
    child.send_signal(signal.SIGINT)
    out, _ = child.communicate(timeout=30)
    assert (child.returncode, out.strip()) == (3, "interrupted")
