"""The database handle and opening it."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from honker import _honker
from honker._aio import _awaitable
from honker._common import _dumps, _loads, _tx, _unit
from honker._honker import (
    HonkerError,
    InvalidArgument,
    LockHeld,
)
from honker._listener import Listener
from honker._lock import Lock, LockInfo
from honker._queue import JobInfo, Queue, QueueSummary
from honker._scheduler import Scheduler
from honker._stream import Stream, StreamConsumer, StreamSummary
from honker._transaction import AsyncTransaction, Transaction
from honker._worker import Retry, Task, Worker

if TYPE_CHECKING:
    from typing_extensions import Self


def extension_path() -> str:
    """Where the SQLite loadable extension is: ``$HONKER_EXT`` if set, else
    the ``libhonker_ext`` library shipped inside this package."""
    env = os.environ.get("HONKER_EXT")
    if env:
        return env
    here = os.path.dirname(os.path.abspath(__file__))
    for name in ("libhonker_ext.so", "libhonker_ext.dylib", "honker_ext.dll"):
        candidate = os.path.join(here, name)
        if os.path.exists(candidate):
            return candidate
    return os.path.join(here, "libhonker_ext.so")


def load_extension(conn: Any) -> None:
    """Loads honker's SQL functions (``honker_*``, ``notify``) into a stdlib
    ``sqlite3`` connection, then bootstraps the schema. Use it *instead of*
    ``honker.open`` on the same file in one process (see the README)."""
    path = extension_path()
    if not os.path.exists(path):
        raise HonkerError(
            f"the honker SQLite extension is not at {path}: build it with `make ext` "
            "(or set HONKER_EXT to libhonker_ext.so)"
        )
    if not hasattr(conn, "enable_load_extension"):
        raise HonkerError(
            "this Python's sqlite3 module cannot load extensions (it was built without "
            "SQLITE_ENABLE_LOAD_EXTENSION); use a Python whose sqlite3 supports it, e.g. Debian's /usr/bin/python3"
        )
    conn.enable_load_extension(True)
    try:
        conn.load_extension(path)
    finally:
        conn.enable_load_extension(False)
    conn.execute("SELECT honker_bootstrap()").fetchone()


def open(
    path: str, *, busy_timeout_s: float = 10.0, wal_autocheckpoint: int = 1000, trusted_schema: bool = False
) -> Database:
    """Opens (creating if needed) the database at ``path``: WAL mode, honker's tables.

    ``busy_timeout_s``: how long a write waits for other writers before
    raising ``honker.Busy``. ``wal_autocheckpoint``: WAL size in pages past
    which a commit checkpoints (SQLite's default, 1000; past four times that
    a commit waits briefly for readers so the WAL can start over, and an
    idle file's WAL is truncated; 0: no automatic checkpoints at all).
    ``trusted_schema``: let the file's own triggers and views call honker's
    SQL functions (off: a database file is input, and a crafted file's
    trigger could otherwise enqueue jobs or release your locks when merely
    opened; turn it on only for files whose schema you wrote)."""
    return Database(
        path, busy_timeout_s=busy_timeout_s, wal_autocheckpoint=wal_autocheckpoint, trusted_schema=trusted_schema
    )


class Database:
    """One SQLite file holding your tables and honker's. Thread-safe; blocking
    calls release the GIL, and the iterators also work with ``async for``."""

    def __init__(
        self, path: str, *, busy_timeout_s: float = 10.0, wal_autocheckpoint: int = 1000, trusted_schema: bool = False
    ) -> None:
        self.path = path
        self._native = _honker.NativeDatabase(path, busy_timeout_s, wal_autocheckpoint, trusted_schema)
        self._tasks: dict[str, Task] = {}

    def queue(self, name: str, *, visibility_timeout_s: float = 300.0, max_attempts: int = 3) -> Queue:
        return Queue(self, name, visibility_timeout_s, max_attempts)

    def _register_task(self, task: Task) -> None:
        old = self._tasks.get(task.name)
        if old is not None and old.fn is not task.fn:
            raise InvalidArgument(
                f"invalid argument `name`: task {task.name!r} is already registered (by {old.fn.__qualname__}); "
                "give one of them another name="
            )
        self._tasks[task.name] = task

    @property
    def tasks(self) -> dict[str, Task]:
        """The tasks registered on this database (``@queue.task``), by name."""
        return dict(self._tasks)

    def worker(
        self,
        queues: Sequence[str] | None = None,
        *,
        concurrency: int = 1,
        worker_id: str | None = None,
        lease_s: float = 30.0,
        grace_s: float = 10.0,
        retry: Retry | None = None,
        unknown_tasks: str = "dead_letter",
        leave_unknown_s: float = 5.0,
        batch: int = 32,
    ) -> Worker:
        """A worker for the tasks registered on this database, over ``queues``
        (default: every queue that has a task). ``concurrency`` jobs run at
        once; leases last ``lease_s`` and are renewed while handlers run; a
        stop gives running jobs ``grace_s``; ``retry`` is the policy of tasks
        without their own; a job naming a task nobody here has is
        dead-lettered (``unknown_tasks="dead_letter"``) or left for another
        worker for ``leave_unknown_s`` (``"leave"``). When handlers are quick
        the worker claims ahead and acks together, up to ``batch`` jobs per
        commit (a result is visible at most 5 ms after its handler returned);
        ``batch=1`` makes one commit per job."""
        if queues is None:
            queues = sorted({t.queue.name for t in self._tasks.values()})
        elif isinstance(queues, str):
            queues = [queues]
        return Worker(
            self,
            queues,
            concurrency=concurrency,
            worker_id=worker_id,
            lease_s=lease_s,
            grace_s=grace_s,
            retry=retry,
            unknown_tasks=unknown_tasks,
            leave_unknown_s=leave_unknown_s,
            batch=batch,
        )

    def stream(self, name: str) -> Stream:
        return Stream(self, name)

    def transaction(self) -> Transaction:
        return Transaction(self)

    def transaction_async(self) -> AsyncTransaction:
        """For ``async with``: see :class:`AsyncTransaction`."""
        return AsyncTransaction(self)

    def notify(self, channel: str, payload: Any, tx: Transaction | None = None) -> int:
        return self._native.notify(channel, _dumps(payload), _tx(tx))

    notify_async = _awaitable(notify)

    def listen(self, channel: str) -> Listener:
        return Listener(self, channel)

    def try_lock(self, name: str, owner: str, ttl_s: float | None = None, *, ttl: float | None = None) -> Lock | None:
        """Takes the advisory lock for ``ttl_s`` seconds (default 60) if nobody
        (``owner`` included) holds it; the ``Lock`` keeps it alive until released."""
        ttl_s = _unit("ttl_s", ttl_s, "ttl", ttl)
        ttl_s = 60.0 if ttl_s is None else ttl_s
        token = self._native.try_lock(name, owner, ttl_s)
        return None if token is None else Lock(self, name, owner, token, ttl_s)

    def lock(
        self, name: str, *, owner: str | None = None, ttl_s: float | None = None, ttl: float | None = None
    ) -> Lock:
        """``with db.lock("name"):`` or raises ``honker.LockHeld``. Kept alive
        while the block runs; ``LockLost`` at the end if it was lost anyway."""
        owner = owner or f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"
        held = self.try_lock(name, owner, _unit("ttl_s", ttl_s, "ttl", ttl))
        if held is None:
            raise LockHeld(f"lock {name!r} is held by someone else")
        return held

    def lock_holder(self, name: str) -> LockInfo | None:
        """Who holds lock ``name`` now, or None if nobody does (an expired lock is free)."""
        held = self._native.lock_holder(name)
        return None if held is None else LockInfo(held[0], held[1], held[2], held[3] / 1000)

    def queues(self) -> list[QueueSummary]:
        """Every queue the file knows (with jobs, live or dead, or controls), by
        name, with its job counts and controls: what an operator looks at."""
        return [QueueSummary._of(t) for t in self._native.queues()]

    def streams(self) -> list[StreamSummary]:
        """Every stream the file knows (with events, saved offsets or
        retention), by name, with its last offset and each consumer's saved
        offset and lag (the stream's events after it)."""
        return [
            StreamSummary(name, last, [StreamConsumer(*c) for c in consumers])
            for name, last, consumers in self._native.streams()
        ]

    def jobs(
        self,
        *,
        queue: str | None = None,
        state: str | None = None,
        task: str | None = None,
        key: str | None = None,
        created_from_ms: int | None = None,
        created_to_ms: int | None = None,
        before_id: int | None = None,
        limit: int = 100,
    ) -> list[JobInfo]:
        """The jobs matching every filter given (``state`` one of ``"ready"``,
        ``"scheduled"``, ``"processing"``, ``"dead"``, ``"completed"``; ``task``
        the task name of an envelope; creation time from inclusive, to
        exclusive, in ms since the epoch), live, dead and completed (those a
        queue's retention keeps), newest first. Page with ``before_id`` set to
        the last id of the previous page."""
        found = self._native.list_jobs(queue, state, task, key, created_from_ms, created_to_ms, before_id, limit)
        return [JobInfo._of(d) for d in found]

    def try_rate_limit(self, key: str, limit: int, per_s: float | None = None, *, per: float | None = None) -> bool:
        """True for the first ``limit`` calls in each fixed window of ``per_s`` seconds."""
        per_s = _unit("per_s", per_s, "per", per)
        if per_s is None:
            raise InvalidArgument("invalid argument `per_s`: the window, a number of seconds, is required")
        return self._native.try_rate_limit(key, limit, per_s)

    def save_result(self, job_id: int, value: Any, ttl_s: float) -> None:
        self._native.save_result(job_id, _dumps(value, "value"), ttl_s)

    def get_result(self, job_id: int) -> Any:
        """The saved (JSON-decoded) result, or None."""
        text = self._native.get_result(job_id)
        return None if text is None else _loads(text)

    def sweep_results(self) -> int:
        """Removes every expired result now; returns how many (saving a result also removes a few)."""
        return self._native.sweep_results()

    def scheduler(self) -> Scheduler:
        return Scheduler(self)

    def close(self) -> None:
        self._native.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
