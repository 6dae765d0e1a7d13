"""``python -m honker worker module:attr [--queue Q ...] [--concurrency N]``

Imports ``module`` (which registers its tasks with ``@queue.task``), takes
``attr`` from it (a ``honker.Database`` or a ``honker.Worker``), and runs a
worker until SIGTERM or SIGINT, then drains: nothing more is claimed,
running jobs get the grace period to finish, the rest are released without
using an attempt. Exit status 0 after a clean drain, 1 on an error, 2 on a
bad command line.

``python -m honker <command> ...`` for any other command is the operator's
command, ``honker`` (``queues``, ``jobs``, ``job``, ``dead``, ``requeue``,
``purge``, ``cancel``, ``pause``, ``resume``, ``schedules``, ``streams``,
``tail``, ``events``, ``stats``): the same code as the ``honker`` binary,
run in this process by the native module.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys

from honker import _honker
from honker._database import Database
from honker._worker import Worker


def _target(spec: str) -> object:
    module, sep, attr = spec.partition(":")
    if not sep or not module or not attr:
        raise SystemExit(f"honker worker: expected module:attr (for example app.tasks:db), not {spec!r}")
    sys.path.insert(0, "")
    obj: object = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["worker"]:
        return _worker(argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print("python -m honker worker module:attr [...]: run a worker (python -m honker worker --help)")
        print("python -m honker <command> [...]: the operator's command, below\n")
    # A following command (tail, events, stats --watch) runs in native code
    # until interrupted: let Ctrl-C end the process at once, as it ends the
    # `honker` binary.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    sys.stdout.flush()
    return _honker.run_cli(["python -m honker", *argv])


def _worker(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m honker")
    sub = parser.add_subparsers(dest="command", required=True)
    w = sub.add_parser("worker", help="run the tasks of module:attr until SIGTERM/SIGINT, then drain")
    w.add_argument("target", help="module:attr, attr a honker.Database (its tasks) or a honker.Worker")
    w.add_argument(
        "--queue",
        "-q",
        action="append",
        dest="queues",
        help="a queue to serve (repeatable; default: every queue with a task)",
    )
    w.add_argument("--concurrency", "-c", type=int, default=1, help="jobs run at once (default 1)")
    w.add_argument("--grace-s", type=float, default=10.0, help="seconds running jobs get after a stop (default 10)")
    w.add_argument(
        "--lease-s", type=float, default=30.0, help="lease of a running job, renewed while it runs (default 30)"
    )
    w.add_argument("--worker-id", default=None, help="the name leases are taken under")
    args = parser.parse_args(argv)

    target = _target(args.target)
    if isinstance(target, Worker):
        worker = target
    elif isinstance(target, Database):
        if not target.tasks:
            print(f"honker worker: {args.target} has no tasks registered (@queue.task)", file=sys.stderr)
            return 2
        worker = target.worker(
            args.queues,
            concurrency=args.concurrency,
            grace_s=args.grace_s,
            lease_s=args.lease_s,
            worker_id=args.worker_id,
        )
    else:
        print(
            f"honker worker: {args.target} is a {type(target).__name__}, not a honker.Database or Worker",
            file=sys.stderr,
        )
        return 2
    try:
        worker.run()
    except Exception as e:  # noqa: BLE001 - reported as the exit status
        print(f"honker worker: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
