"""The cross-language suite: services in different languages on one file,
at the same time, as real processes.

    python tests/cross/run.py --rust BIN --ext LIBHONKER_EXT [--node DIR]

(`make cross-test` builds everything and runs it.) Each scenario prints one
line; any failure exits non-zero. Waits have deadlines; nothing sleeps
hoping for an outcome.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

import honker

HERE = os.path.dirname(os.path.abspath(__file__))
PY = [sys.executable, os.path.join(HERE, "roles.py")]
DEADLINE_S = 120
ORDERS = 150


def fresh_db(tmp: str, name: str) -> str:
    path = os.path.join(tmp, f"{name}.db")
    with honker.open(path) as db, db.transaction() as tx:
        tx.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, ref TEXT NOT NULL UNIQUE)", [])
        tx.execute("CREATE TABLE processed (job_id INTEGER, order_ref TEXT, worker TEXT, lang TEXT)", [])
    return path


def start(cmd: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)


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
        # Debian's sqlite3 shell with the extension: business transactions in plain SQL.
        lines = [f".load {args.ext}", ".bail on", ".timeout 10000", "SELECT honker_bootstrap();"]
        for i in range(ORDERS):
            ref = f"sql-{i}"
            end = "ROLLBACK;" if i % 5 == 4 else "COMMIT;"
            lines.append(
                f"BEGIN IMMEDIATE; INSERT INTO orders (ref) VALUES ('{ref}');"
                f" SELECT honker_enqueue('cross', json_object('order_ref', '{ref}')); {end}"
            )
        for _ in range(workers):
            lines.append("""SELECT honker_enqueue('cross', '{"stop": true}', '{"priority": -1}');""")
        return ["sqlite3", path], "\n".join(lines) + "\n"
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
    raise ValueError(lang)


def queue_scenario(tmp: str, producer: str, consumer: str, args: argparse.Namespace) -> None:
    what = f"{producer} enqueues in business transactions, {consumer} workers claim, rust verifies"
    path = fresh_db(tmp, f"{producer}-{consumer}")
    workers = [start(c) for c in workers_cmds(consumer, path, args)]
    wait_ready(workers)  # already waiting before the first commit
    t = time.monotonic()
    cmd, stdin = producer_cmd(producer, path, args, len(workers))
    run(cmd, what, stdin)
    finish(workers, what)
    summary = run([args.rust, "verify", path, "cross"], what)
    print(f"ok  {what} ({time.monotonic() - t:.1f} s): {summary}")


def notify_scenario(tmp: str, listeners: list[str], args: argparse.Namespace, n: int = 20) -> None:
    what = f"rust notifies, {' and '.join(listeners)} listen"
    path = fresh_db(tmp, "notify")
    cmds = {"python": [*PY, "listener", path, "events", str(n)]}
    if "node" in listeners:
        cmds["node"] = ["node", os.path.join(HERE, "roles.mjs"), "listener", path, "events", str(n)]
    procs = {lang: start(cmds[lang]) for lang in listeners}
    wait_ready(list(procs.values()))
    notifier = subprocess.Popen(
        [args.rust, "notify", path, "events", str(n)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rust", required=True, help="the honker-cross binary")
    ap.add_argument("--ext", required=True, help="libhonker_ext.so")
    ap.add_argument("--node", action="store_true", help="include the Node roles")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        queue_scenario(tmp, "python", "rust", args)
        queue_scenario(tmp, "sql", "python", args)
        if args.node:
            queue_scenario(tmp, "python", "node", args)
            queue_scenario(tmp, "node", "python", args)
            queue_scenario(tmp, "sql", "node", args)
        notify_scenario(tmp, ["python", "node"] if args.node else ["python"], args)


if __name__ == "__main__":
    main()
