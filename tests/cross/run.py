"""The cross-language suite: services in different languages on one file,
at the same time, as real processes.

    python tests/cross/run.py --rust BIN --ext LIBHONKER_EXT [--node DIR]

(`make cross-test` builds everything and runs it.) Each scenario prints one
line; any failure exits non-zero. Waits have deadlines; nothing sleeps
hoping for an outcome.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Callable

import honker

HERE = os.path.dirname(os.path.abspath(__file__))
PY = [sys.executable, os.path.join(HERE, "roles.py")]
DEADLINE_S = 120
ORDERS = 150


# With --postgres URL every scenario runs on PostgreSQL: each in a schema of
# its own that holds honker's tables and the scenario's (search_path), and
# the SQL roles are psql calling honker's PL/pgSQL functions.
PG: str | None = None


def fresh_db(tmp: str, name: str) -> str:
    if PG:
        schema = "x_" + re.sub(r"[^a-z0-9_]", "_", name.lower())
        path = f"{PG}{'&' if '?' in PG else '?'}schema={schema}&options=-csearch_path%3D{schema}"
        run(
            ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", PG],
            "fresh schema",
            f"DROP SCHEMA IF EXISTS {schema} CASCADE;",
        )
        ddl = [
            "CREATE TABLE orders (id bigserial PRIMARY KEY, ref TEXT NOT NULL UNIQUE)",
            "CREATE TABLE processed (job_id bigint, order_ref TEXT, worker TEXT, lang TEXT)",
        ]
    else:
        path = os.path.join(tmp, f"{name}.db")
        ddl = [
            "CREATE TABLE orders (id INTEGER PRIMARY KEY, ref TEXT NOT NULL UNIQUE)",
            "CREATE TABLE processed (job_id INTEGER, order_ref TEXT, worker TEXT, lang TEXT)",
        ]
    with honker.open(path) as db, db.transaction() as tx:
        for statement in ddl:
            tx.execute(statement, [])
    return path


def schema_of(path: str) -> str:
    """honker's schema in a PostgreSQL target."""
    found = re.search(r"[?&]schema=([a-z0-9_]+)", path)
    return found.group(1) if found else "honker"


def sql_role(path: str, args: argparse.Namespace, what: str, script: str) -> str:
    """Runs SQL as a client of its own: the sqlite3 shell with the extension,
    or psql (honker's schema first on its search path)."""
    if PG:
        schema = schema_of(path)
        url = re.sub(r"[?&]schema=[a-z0-9_]+", "", path).replace("&options", "?options", 1)
        if "?options" not in url and "options=" not in url:
            url += f"?options=-csearch_path%3D{schema}"
        return run(["psql", "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", url], what, script)
    return run(["sqlite3", path], what, f".load {args.ext}\n.timeout 10000\n{script}\n")


def q(sqlite: str, postgres: str) -> str:
    """A statement in the dialect of the database the suite runs on (on
    PostgreSQL honker's functions are in the schema: `enqueue`, not
    `honker_enqueue`)."""
    return postgres if PG else sqlite


STARTED: list[subprocess.Popen[str]] = []


def start(cmd: list[str], **kw: Any) -> subprocess.Popen[str]:
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, **kw)
    STARTED.append(p)
    return p


@atexit.register
def _kill_leftovers() -> None:
    """A failed scenario must not leave its processes waiting."""
    for p in STARTED:
        if p.poll() is None:
            p.kill()


def wait_ready(procs: list[subprocess.Popen[str]]) -> None:
    for p in procs:
        assert p.stdout is not None
        line = p.stdout.readline().strip()
        if line != "ready":
            raise SystemExit(f"{p.args!r}: expected 'ready', got {line!r} (exit {p.poll()})")


def finish(procs: list[subprocess.Popen[str]], what: str) -> None:
    for p in procs:
        try:
            code = p.wait(timeout=DEADLINE_S)
        except subprocess.TimeoutExpired:
            p.kill()
            raise SystemExit(f"{what}: {p.args!r} did not finish in {DEADLINE_S} s") from None
        if code != 0:
            raise SystemExit(f"{what}: {p.args!r} exited {code}")


def run(cmd: list[str], what: str, stdin: str | None = None) -> str:
    r = subprocess.run(cmd, check=False, input=stdin, capture_output=True, text=True, timeout=DEADLINE_S)
    if r.returncode != 0:
        raise SystemExit(f"{what}: {cmd} exited {r.returncode}\n{r.stdout}\n{r.stderr}")
    return r.stdout.strip()


def workers_cmds(lang: str, path: str, args: argparse.Namespace, n: int = 2) -> list[list[str]]:
    if lang == "rust":
        return [[args.rust, "worker", path, "cross", f"rust-{i}"] for i in range(n)]
    if lang == "python":
        return [[*PY, "worker", path, "cross", f"py-{i}"] for i in range(n)]
    if lang == "node":
        return [["node", os.path.join(HERE, "roles.mjs"), "worker", path, "cross", f"node-{i}"] for i in range(n)]
    raise ValueError(lang)


def producer_cmd(lang: str, path: str, args: argparse.Namespace, workers: int) -> tuple[list[str], str | None]:
    if lang == "python":
        return [*PY, "producer", path, "cross", str(ORDERS), str(workers), "py"], None
    if lang == "sql":
        # Debian's sqlite3 shell with the extension (or psql calling
        # honker's functions): business transactions in plain SQL.
        lines = [] if PG else [".bail on", "SELECT honker_bootstrap();"]
        for i in range(ORDERS):
            ref = f"sql-{i}"
            end = "ROLLBACK;" if i % 5 == 4 else "COMMIT;"
            lines.append(
                q("BEGIN IMMEDIATE;", "BEGIN;")
                + f" INSERT INTO orders (ref) VALUES ('{ref}');"
                + q(
                    f" SELECT honker_enqueue('cross', json_object('order_ref', '{ref}')); {end}",
                    f" SELECT enqueue('cross', json_build_object('order_ref', '{ref}')::text); {end}",
                )
            )
        for _ in range(workers):
            lines.append(
                q(
                    """SELECT honker_enqueue('cross', '{"stop": true}', '{"priority": -1}');""",
                    """SELECT enqueue('cross', '{"stop": true}', '{"priority": -1}');""",
                )
            )
        return ["sql", path], "\n".join(lines) + "\n"
    if lang == "node":
        return [
            "node",
            os.path.join(HERE, "roles.mjs"),
            "producer",
            path,
            "cross",
            str(ORDERS),
            str(workers),
            "node",
        ], None
    if lang == "rust":
        return [args.rust, "producer", path, "cross", str(ORDERS), str(workers), "rust"], None
    raise ValueError(lang)


def queue_scenario(tmp: str, producer: str, consumer: str, args: argparse.Namespace) -> None:
    what = f"{producer} enqueues in business transactions, {consumer} workers claim, rust verifies"
    path = fresh_db(tmp, f"{producer}-{consumer}")
    workers = [start(c) for c in workers_cmds(consumer, path, args)]
    wait_ready(workers)  # already waiting before the first commit
    t = time.monotonic()
    cmd, stdin = producer_cmd(producer, path, args, len(workers))
    if cmd[0] == "sql":
        sql_role(path, args, what, stdin or "")
    else:
        run(cmd, what, stdin)
    finish(workers, what)
    summary = run([args.rust, "verify", path, "cross"], what)
    print(f"ok  {what} ({time.monotonic() - t:.1f} s): {summary}")


def task_scenario(tmp: str, producer: str, consumer: str, args: argparse.Namespace) -> None:
    """Tasks across languages: the producer enqueues the ``ship_order`` task
    (the shared envelope) in business transactions, workers of another
    language run its handler (the worker runtime), and the producer reads
    every result back; rust verifies each committed order ran exactly once."""
    what = f"{producer} enqueues tasks in business transactions, {consumer} task workers run them"
    path = fresh_db(tmp, f"task-{producer}-{consumer}")
    roles_mjs = os.path.join(HERE, "roles.mjs")
    worker_cmds = {
        "node": [["node", roles_mjs, "task-worker", path, "cross", f"node-{i}"] for i in range(2)],
        "rust": [[args.rust, "task-worker", path, "cross", f"rust-{i}"] for i in range(2)],
    }[consumer]
    producer_cmd = {
        "python": [*PY, "task-producer", path, "cross", str(ORDERS), "py"],
        "node": ["node", roles_mjs, "task-producer", path, "cross", str(ORDERS), "node"],
    }[producer]
    workers = [start(c, stdin=subprocess.PIPE) for c in worker_cmds]
    wait_ready(workers)
    t = time.monotonic()
    read_back = run(producer_cmd, what)
    for w in workers:
        assert w.stdin is not None
        w.stdin.close()  # stop: each drains and exits
    finish(workers, what)
    summary = run([args.rust, "verify", path, "cross"], what)
    seen = operator_view(path, "cross", args, what)
    print(f"ok  {what} ({time.monotonic() - t:.1f} s): {producer} read {read_back}; {summary}{seen}")


def operator_view(path: str, queue: str, args: argparse.Namespace, what: str) -> str:
    """The operator's command (`honker`) on a file the worker runtime wrote:
    every job of `queue` ran, none is left or dead."""
    if not args.cli:
        return ""
    found = [q for q in json.loads(run([args.cli, "queues", path, "--json"], what)) if q["name"] == queue]
    counts = [(q["ready"], q["scheduled"], q["processing"], q["dead"]) for q in found]
    if counts not in ([], [(0, 0, 0, 0)]):
        raise SystemExit(f"{what}: the CLI sees {queue} with jobs left: {found}")
    left = json.loads(run([args.cli, "jobs", path, "--queue", queue, "--json"], what))
    if left:
        raise SystemExit(f"{what}: the CLI lists jobs left: {left[:3]}")
    return f"; the CLI sees {queue} empty"


def read_line(p: subprocess.Popen[str], want: str, what: str) -> None:
    """Reads `p`'s next line, which must be `want`; a process that says
    nothing for DEADLINE_S is killed (its pipe then ends the read)."""
    assert p.stdout is not None
    timer = threading.Timer(DEADLINE_S, p.kill)
    timer.start()
    try:
        line = p.stdout.readline().strip()
    finally:
        timer.cancel()
    if line != want:
        raise SystemExit(f"{what}: {p.args!r}: expected {want!r}, got {line!r} (exit {p.poll()})")


def pause_scenario(tmp: str, args: argparse.Namespace, n: int = 40) -> None:
    """SQL pauses a queue: Python and Node task workers claim none of it
    (each proves it looked, by running a probe task of its own queue
    enqueued after the jobs) until SQL resumes it; then every job runs
    exactly once."""
    what = "sql pauses a queue: python and node task workers stop claiming it until sql resumes it"
    path = fresh_db(tmp, "pause")
    roles_mjs = os.path.join(HERE, "roles.mjs")
    workers = [
        start([*PY, "task-worker", path, "cross", "py-0", "probe-py"], stdin=subprocess.PIPE),
        start(["node", roles_mjs, "task-worker", path, "cross", "node-0", "probe-node"], stdin=subprocess.PIPE),
    ]
    wait_ready(workers)

    def sql(statement: str) -> str:
        return sql_role(path, args, what, statement)

    yes = q("1", "t")
    t = time.monotonic()
    if sql(q("SELECT honker_pause('cross');", "SELECT set_paused('cross', true);")) != yes:
        raise SystemExit(f"{what}: the pause did not take")
    orders = "".join(
        f"INSERT INTO orders (ref) VALUES ('p-{i}');"
        + q(
            f"SELECT honker_enqueue('cross', json_object('task', 'ship_order', 'args', json_array('p-{i}')));",
            f"SELECT enqueue('cross', json_build_object('task', 'ship_order', 'args', json_build_array('p-{i}'))::text);",
        )
        for i in range(n)
    )
    ids = [int(line) for line in sql(f"BEGIN; {orders} COMMIT;").split()]
    sql(
        q(
            "SELECT honker_enqueue('probe-py', json_object('task', 'probe'))"
            " + honker_enqueue('probe-node', json_object('task', 'probe')) > 0;",
            "SELECT enqueue('probe-py', '{\"task\": \"probe\"}') + enqueue('probe-node', '{\"task\": \"probe\"}') > 0;",
        )
    )
    for w in workers:
        read_line(w, "probed", what)
    stats = json.loads(
        sql(q("SELECT honker_queue_stats('cross');", "SELECT row_to_json(s) FROM queue_stats('cross') s;"))
    )
    if (stats["ready"], stats["processing"]) != (n, 0):
        raise SystemExit(f"{what}: while paused the queue was {stats}")
    if sql(q("SELECT honker_resume('cross');", "SELECT set_paused('cross', false);")) != yes:
        raise SystemExit(f"{what}: the resume did not take")
    with honker.open(path) as db:  # each job's result, woken by its commit
        langs = {honker.TaskHandle(db, id).result(timeout=DEADLINE_S)["lang"] for id in ids}
    for w in workers:
        assert w.stdin is not None
        w.stdin.close()
    finish(workers, what)
    summary = run([args.rust, "verify", path, "cross"], what)
    print(f"ok  {what} ({time.monotonic() - t:.1f} s): {n} jobs run by {sorted(langs)} after the resume; {summary}")


def notify_scenario(tmp: str, listeners: list[str], args: argparse.Namespace, n: int = 20) -> None:
    what = f"rust notifies, {' and '.join(listeners)} listen"
    path = fresh_db(tmp, "notify")
    cmds = {"python": [*PY, "listener", path, "events", str(n)]}
    if "node" in listeners:
        cmds["node"] = ["node", os.path.join(HERE, "roles.mjs"), "listener", path, "events", str(n)]
    procs = {lang: start(cmds[lang]) for lang in listeners}
    wait_ready(list(procs.values()))
    notifier = start([args.rust, "notify", path, "events", str(n)], stdin=subprocess.PIPE)
    assert notifier.stdin is not None and notifier.stdout is not None
    latencies: dict[str, list[float]] = {lang: [] for lang in listeners}
    for _ in range(n):
        notifier.stdin.write("\n")
        notifier.stdin.flush()
        sent = int(notifier.stdout.readline())
        for lang, p in procs.items():
            assert p.stdout is not None
            got = p.stdout.readline().strip()
            if not got:
                raise SystemExit(f"{what}: the {lang} listener ended early (exit {p.poll()})")
            latencies[lang].append((int(got) - sent) / 1e6)
    notifier.stdin.close()
    finish([notifier, *procs.values()], what)
    figures = ", ".join(
        f"{lang} p50 {statistics.median(v):.2f} ms max {max(v):.2f} ms" for lang, v in latencies.items()
    )
    print(f"ok  {what}, {n} notifications: {figures}")


def consumer_cmd(lang: str, path: str, name: str, last: int, args: argparse.Namespace) -> list[str]:
    if lang == "python":
        return [*PY, "consumer", path, "orders", name, str(last)]
    if lang == "rust":
        return [args.rust, "consume", path, "orders", name, str(last)]
    return ["node", os.path.join(HERE, "roles.mjs"), "consumer", path, "orders", name, str(last)]


def stream_scenario(tmp: str, publisher: str, consumers: list[str], args: argparse.Namespace, n: int = 200) -> None:
    what = f"{publisher} publishes, {' and '.join(consumers)} consume, each killed halfway and resumed"
    path = fresh_db(tmp, "stream")
    last, half = n - 1, n // 2

    def publish(first: int, end: int) -> None:
        if publisher == "node":
            run(["node", os.path.join(HERE, "roles.mjs"), "publisher", path, "orders", str(first), str(end)], what)
        else:
            run([*PY, "publisher", path, "orders", str(first), str(end)], what)

    procs = {lang: start(consumer_cmd(lang, path, f"c-{lang}", last, args)) for lang in consumers}
    wait_ready(list(procs.values()))
    publish(0, half + 20)
    handled: dict[str, list[int]] = {}
    for lang, p in procs.items():
        assert p.stdout is not None
        before: list[int] = []
        while not before or before[-1] < half:
            line = p.stdout.readline()
            if not line:
                raise SystemExit(f"{what}: the {lang} consumer ended early (exit {p.poll()})")
            before.append(int(line))
        p.kill()  # SIGKILL: no chance to save anything on the way out
        p.wait(timeout=DEADLINE_S)
        before += [int(line) for line in p.stdout]  # what it handled before it died
        if before != list(range(len(before))):
            raise SystemExit(f"{what}: {lang} saw {before[:10]}... before the kill, not 0, 1, 2, ...")
        handled[lang] = before
    again = {lang: start(consumer_cmd(lang, path, f"c-{lang}", last, args)) for lang in consumers}
    wait_ready(list(again.values()))
    publish(half + 20, n)
    report = []
    for lang, p in again.items():
        assert p.stdout is not None
        after = [int(line) for line in p.stdout]
        finish([p], what)
        killed_after = handled[lang][-1]
        resumed = after[0] if after else None
        if resumed is None or not 0 < resumed <= killed_after + 1:
            raise SystemExit(f"{what}: {lang} resumed at {resumed}, killed after {killed_after}")
        if after != list(range(resumed, n)):
            raise SystemExit(f"{what}: {lang} after the restart saw a gap or disorder: {after[:10]}...")
        report.append(f"{lang} killed after {killed_after}, resumed at {resumed}")
    print(f"ok  {what}: {'; '.join(report)}")


def scheduler_cmd(lang: str, path: str, args: argparse.Namespace) -> list[str]:
    if lang == "python":
        return [*PY, "scheduler", path, lang]
    if lang == "rust":
        return [args.rust, "scheduler", path, lang]
    return ["node", os.path.join(HERE, "roles.mjs"), "scheduler", path, lang]


def scheduler_scenario(tmp: str, langs: list[str], args: argparse.Namespace) -> None:
    what = f"schedulers in {' and '.join(langs)} on one file"
    path = fresh_db(tmp, "sched-" + "-".join(langs))
    db = honker.open(path)

    def state() -> tuple[list[int], str | None]:
        with db.transaction() as tx:
            live, locks = q("_honker_live", "live"), q("_honker_locks", "locks")
            keys = tx.query(f"SELECT idem_key FROM {live} WHERE queue = 'ticks' ORDER BY id", [])
            lock = tx.query(f"SELECT owner FROM {locks} WHERE name = 'honker:scheduler'", [])
        return [int(k["idem_key"].rsplit(":", 1)[1]) for k in keys], (lock[0]["owner"] if lock else None)

    def wait_for(cond: str, ok: Callable[[list[int], str | None], bool]) -> tuple[list[int], str | None]:
        deadline = time.monotonic() + 30
        while True:
            fires, leader = state()
            if ok(fires, leader):
                return fires, leader
            if time.monotonic() > deadline:
                raise SystemExit(f"{what}: timed out waiting for {cond}: {fires}, leader {leader}")
            time.sleep(0.05)  # polling the file, with a deadline

    procs = {lang: start(scheduler_cmd(lang, path, args), stdin=subprocess.PIPE) for lang in langs}
    wait_ready(list(procs.values()))
    fires, leader = wait_for("three fires", lambda f, who: len(f) >= 3 and who is not None)
    assert leader is not None
    procs[leader].kill()  # the leader dies without releasing its lock
    procs[leader].wait(timeout=DEADLINE_S)
    killed_at = len(fires)
    fires, new_leader = wait_for(
        "three fires after the handover", lambda f, who: len(f) >= killed_at + 3 and who not in (None, leader)
    )
    for lang, p in procs.items():
        if lang != leader:
            assert p.stdin is not None
            p.stdin.close()  # stop
            finish([p], what)
    db.close()
    if len(set(fires)) != len(fires):
        raise SystemExit(f"{what}: a boundary fired twice: {fires}")
    gaps = [b - a for a, b in zip(fires, fires[1:])]
    if any(g <= 0 for g in gaps):
        raise SystemExit(f"{what}: fires out of order: {fires}")
    if any(g > 3000 for g in gaps):  # the lock TTL is 1 s; one missed second at most
        raise SystemExit(f"{what}: a gap of {max(gaps)} ms in {fires}")
    print(
        f"ok  {what}: {len(fires)} boundaries fired once each; leader {leader} killed, {new_leader} took over, "
        f"largest gap {max(gaps)} ms"
    )


def locks_scenario(tmp: str, args: argparse.Namespace) -> None:
    langs = ["python", "rust", "sql"] + (["node"] if args.node else [])
    what = f"locks and rate limits across {', '.join(langs)}"
    path = fresh_db(tmp, "locks")
    db = honker.open(path)

    def sql(statement: str) -> str:
        return sql_role(path, args, what, statement)

    def try_lock(lang: str) -> str:
        """A token (the lock taken and released at once) or "none"."""
        if lang == "rust":
            return run([args.rust, "lock", path, "report", "rust"], what)
        if lang == "node":
            return run(["node", os.path.join(HERE, "roles.mjs"), "lock", path, "report", "node"], what)
        raise ValueError(lang)

    def rate(lang: str) -> bool:
        if lang == "python":
            return db.try_rate_limit("api", 3, 86400)
        if lang == "rust":
            return run([args.rust, "rate", path, "api", "3", "86400"], what) == "1"
        if lang == "node":
            return run(["node", os.path.join(HERE, "roles.mjs"), "rate", path, "api", "3", "86400"], what) == "1"
        return sql(q("SELECT honker_rate_limit('api', 3, 86400);", "SELECT try_rate_limit('api', 3, 86400000);")) == q(
            "1", "t"
        )

    others = [lang for lang in langs if lang in ("rust", "node")]
    held = db.try_lock("report", "python", 30)
    if held is None:
        raise SystemExit(f"{what}: python could not take a free lock")
    for lang in others:
        if try_lock(lang) != "none":
            raise SystemExit(f"{what}: {lang} took a lock python holds")
    if (
        sql(
            q(
                "SELECT coalesce(honker_lock_acquire('report', 'sql', 30), 'none');",
                "SELECT coalesce(try_lock('report', 'sql', 30000)::text, 'none');",
            )
        )
        != "none"
    ):
        raise SystemExit(f"{what}: sql took a lock python holds")
    tokens = [("python", held.fencing_token)]
    held.release()
    for lang in others:  # each takes it and lets it go
        tokens.append((lang, int(try_lock(lang))))
    sql_token = int(
        sql(q("SELECT honker_lock_acquire('report', 'sql', 30);", "SELECT try_lock('report', 'sql', 30000);"))
    )
    tokens.append(("sql", sql_token))
    if [t for _, t in tokens] != sorted({t for _, t in tokens}):
        raise SystemExit(f"{what}: fencing tokens did not increase: {tokens}")
    if db.try_lock("report", "python", 30) is not None:
        raise SystemExit(f"{what}: python took a lock sql holds")
    for lang in others:
        if try_lock(lang) != "none":
            raise SystemExit(f"{what}: {lang} took a lock sql holds")

    # One window of 3 calls, shared by every language: the fourth and later are refused.
    order = langs + langs
    calls = [(lang, rate(lang)) for lang in order]
    if [allowed for _, allowed in calls] != [i < 3 for i in range(len(order))]:
        raise SystemExit(f"{what}: rate limit 3 per window gave {calls}")
    db.close()
    print(f"ok  {what}: fencing tokens {tokens}; rate limit {calls}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rust", required=True, help="the honker-cross binary")
    ap.add_argument("--ext", required=True, help="libhonker_ext.so")
    ap.add_argument("--node", action="store_true", help="include the Node roles")
    ap.add_argument("--cli", help="the honker command, to look at the files the workers wrote")
    ap.add_argument("--postgres", help="run every scenario on this PostgreSQL server instead of SQLite files")
    args = ap.parse_args()
    global PG
    PG = args.postgres
    with tempfile.TemporaryDirectory() as tmp:
        queue_scenario(tmp, "python", "rust", args)
        queue_scenario(tmp, "sql", "python", args)
        if args.node:
            queue_scenario(tmp, "python", "node", args)
            queue_scenario(tmp, "node", "python", args)
            queue_scenario(tmp, "sql", "node", args)
            queue_scenario(tmp, "rust", "node", args)
            task_scenario(tmp, "python", "node", args)
            task_scenario(tmp, "node", "rust", args)
            pause_scenario(tmp, args)
        notify_scenario(tmp, ["python", "node"] if args.node else ["python"], args)
        stream_scenario(tmp, "node" if args.node else "python", ["python", "rust"], args)
        scheduler_scenario(tmp, ["python", "rust"], args)
        if args.node:
            scheduler_scenario(tmp, ["node", "rust"], args)
        locks_scenario(tmp, args)


if __name__ == "__main__":
    main()
