"""honker: durable queues, streams, pub/sub and cron on SQLite. One file, zero servers.

A thin layer over the native module ``honker._honker`` (the shared Rust
engine): it encodes payloads as JSON, turns options into keyword arguments,
and provides context managers and iterators. Every rule lives in the engine.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import os
import socket
import threading
import time
import types
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, TypeVar, cast

if TYPE_CHECKING:
    from collections.abc import Coroutine

    from typing_extensions import Concatenate, ParamSpec, Self

    P = ParamSpec("P")

T = TypeVar("T")


async def _off_loop(call: Callable[[], T], on_cancel: Callable[[], None], release: Callable[[T], None]) -> T:
    """Runs a blocking native call (which releases the GIL) on a worker thread.
    If the awaiting task is cancelled, ``on_cancel`` wakes the call, and
    whatever it returned anyway is handed to ``release`` (so a job claimed in
    that instant is given back, not lost)."""
    fut = asyncio.get_running_loop().run_in_executor(None, call)
    try:
        return await asyncio.shield(fut)
    except asyncio.CancelledError:
        on_cancel()
        try:
            late = await fut
        except HonkerError:
            raise asyncio.CancelledError from None
        if late is not None:
            release(late)
        raise


S = TypeVar("S")


def _current_task() -> object | None:
    """The asyncio task running on this thread, if any."""
    try:
        return asyncio.current_task()
    except RuntimeError:  # no running event loop
        return None


def _awaitable(method: Callable[Concatenate[S, P], T]) -> Callable[Concatenate[S, P], Coroutine[Any, Any, T]]:
    """The ``_async`` twin of a short operation: the same call, run on a worker
    thread (the default executor) so the event loop never waits for the
    write lock. From inside a transaction's ``with`` block it needs
    ``tx=tx``, like the sync call: otherwise the worker would wait for the
    commit while the task waits for the worker. Another task's call is
    fine: it waits on the worker thread until the holder commits."""
    params = list(inspect.signature(method).parameters)
    tx_at = params.index("tx") - 1 if "tx" in params else None  # position in *args (self excluded)

    async def twin(self: S, /, *args: P.args, **kwargs: P.kwargs) -> T:
        tx = kwargs.get("tx", args[tx_at] if tx_at is not None and tx_at < len(args) else None)
        db = cast("Database", getattr(self, "_db", self))
        # Refused only for the task (or plain code) that opened the
        # transaction: another task on this loop may wait on a worker
        # thread, since the holder goes on running and commits.
        if tx is None and db._native.holds_transaction() and db._tx_task in (None, _current_task()):
            raise TransactionOpen(
                f"{method.__qualname__}_async inside this thread's open transaction: "
                "pass tx=tx to make it part of it, or await it after the transaction ends"
            )
        call = functools.partial(method, self, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(None, call)

    twin.__name__ = f"{method.__name__}_async"
    twin.__qualname__ = f"{method.__qualname__}_async"
    twin.__doc__ = f"``{method.__name__}``, awaited: runs on a worker thread so the event loop keeps running."
    return twin


import builtins

from honker import _honker
from honker._honker import (
    Busy,
    CannotOpen,
    Closed,
    DecodeError,
    Forked,
    HonkerError,
    InternalError,
    InvalidArgument,
    InvalidCron,
    InvalidJson,
    InvalidTimezone,
    LockHeld,
    LockLost,
    NotFound,
    SchemaTooNew,
    SqliteError,
    TransactionInactive,
    TransactionOpen,
    WatcherError,
)

__version__: str = _honker.VERSION

__all__ = [
    "AsyncTransaction",
    "Busy",
    "CannotOpen",
    "Closed",
    "Database",
    "DecodeError",
    "Event",
    "Forked",
    "HonkerError",
    "InternalError",
    "InvalidArgument",
    "InvalidCron",
    "InvalidJson",
    "InvalidTimezone",
    "Job",
    "JobInfo",
    "Listener",
    "Lock",
    "LockHeld",
    "LockInfo",
    "LockLost",
    "NotFound",
    "Notification",
    "Queue",
    "QueueStats",
    "Retention",
    "Schedule",
    "Scheduler",
    "SchemaTooNew",
    "SqliteError",
    "Stream",
    "Transaction",
    "TransactionInactive",
    "TransactionOpen",
    "WatcherError",
    "cron_next",
    "extension_path",
    "load_extension",
    "open",
]


def _unit(new: str, value: T | None, old: str, old_value: T | None) -> T | None:
    """A duration argument renamed to carry its unit (``ttl`` became ``ttl_s``):
    the old keyword still works for one release, with a DeprecationWarning.
    The rule: durations are seconds, and their names end in ``_s``."""
    if old_value is None:
        return value
    if value is not None:
        raise InvalidArgument(f"invalid argument `{new}`: give `{new}` or its deprecated name `{old}`, not both")
    warnings.warn(
        f"`{old}=` is deprecated: use `{new}=` (honker's durations are seconds, named with an `_s` suffix)",
        DeprecationWarning,
        stacklevel=3,
    )
    return old_value


def _dumps(value: Any, what: str = "payload") -> str:
    try:
        return json.dumps(value, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as e:
        raise InvalidJson(f"invalid JSON in `{what}`: {e}") from None


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as e:
        raise DecodeError(f"cannot decode payload: {e}") from None


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


def _epoch_s(ms: int | None) -> float | None:
    return None if ms is None else ms / 1000


def cron_next(expr: str, after: float | None = None, *, tz: str | None = None) -> float:
    """The first fire of ``expr`` strictly after ``after`` (epoch seconds,
    floored to the millisecond; now when None), in epoch seconds. ``expr`` is what ``Scheduler.add`` takes
    (cron with 5 or 6 fields, ``@daily``, ``@every 1m30s``, an optional
    ``CRON_TZ=Zone`` prefix); the zone is ``tz``, else UTC. Across DST
    changes a skipped local time fires at the first instant after the gap,
    a repeated one once. Raises ``InvalidCron`` or ``InvalidTimezone``."""
    return _honker.cron_next(expr, time.time() if after is None else after, tz) / 1000


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


class Transaction:
    """A write transaction; use as ``with db.transaction() as tx:``. Commits on
    exit, rolls back on an exception. ``*_tx`` variants join it via ``tx=tx``."""

    def __init__(self, db: Database, native: Any = None) -> None:
        self._db = db
        self._native = db._native.begin() if native is None else native
        db._tx_task = _current_task()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Runs one statement in the transaction; returns rows changed."""
        return self._db._native.execute(sql, list(params), self._native)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Runs a query in the transaction; returns a list of dicts."""
        return self._db._native.query(sql, list(params), self._native)

    def commit(self) -> None:
        self._db._native.commit(self._native)

    def rollback(self) -> None:
        self._db._native.rollback(self._native)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        try:
            if exc_type is None:
                self.commit()
            else:
                self.rollback()
        except TransactionInactive:
            pass  # already committed or rolled back by hand


class AsyncTransaction:
    """``async with db.transaction_async() as tx:``: a :class:`Transaction`
    whose ``BEGIN`` (the wait for the write lock) and ``COMMIT`` run on a
    worker thread, so the event loop goes on meanwhile. In between, the
    transaction belongs to this task: pass ``tx=tx`` (the ``_async`` twins
    included); a plain call from it raises ``TransactionOpen``."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._tx: Transaction | None = None

    async def __aenter__(self) -> Transaction:
        db = self._db
        # Nested in this task's own transaction: refused. Another task's
        # transaction: this one waits its turn on the worker thread.
        if db._native.holds_transaction() and db._tx_task in (None, _current_task()):
            raise TransactionOpen("transaction_async inside this task's open transaction: finish that one first")
        # A BEGIN that completes after this task was cancelled is rolled back.
        native = await _off_loop(db._native.begin, lambda: None, db._native.rollback)
        db._native.adopt(native)
        self._tx = Transaction(db, native)
        return self._tx

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        tx = self._tx
        if tx is None:
            return
        finish = tx.commit if exc_type is None else tx.rollback
        try:
            await asyncio.get_running_loop().run_in_executor(None, finish)
        except TransactionInactive:
            pass  # already committed or rolled back by hand


def _tx(tx: Transaction | None) -> Any:
    return None if tx is None else tx._native


class Job:
    """A claimed job. ``ack``, ``retry``, ``fail`` and ``heartbeat`` return False
    (and change nothing) once the lease has expired or been taken over."""

    __slots__ = (
        "_data",
        "_db",
        "attempts",
        "id",
        "key",
        "last_error",
        "max_attempts",
        "payload",
        "priority",
        "queue",
        "run_at_ms",
    )

    def __init__(self, db: Database, data: Any) -> None:
        self._db = db
        self._data = data
        self.id: int = data.id
        self.queue: str = data.queue
        self.attempts: int = data.attempts
        self.max_attempts: int = data.max_attempts
        self.priority: int = data.priority
        self.run_at_ms: int = data.run_at_ms
        self.key: str | None = data.key
        self.last_error: str | None = data.last_error
        self.payload: Any = _loads(data.payload)

    def _lease(self) -> tuple[int, str, int]:
        return (self.id, self._data.worker_id, self.attempts)

    def ack(self, tx: Transaction | None = None) -> bool:
        return self._db._native.ack(self.id, self._data.worker_id, self.attempts, _tx(tx))

    ack_async = _awaitable(ack)

    def retry(self, delay_s: float | None = None, error: str = "") -> bool:
        return self._db._native.retry(self.id, self._data.worker_id, self.attempts, delay_s, error)

    retry_async = _awaitable(retry)

    def release(self) -> bool:
        """Gives the job back untouched: ready again at once, in its old place,
        and this claim's attempt is not counted (for a worker that will not start it)."""
        return self._db._native.release(self.id, self._data.worker_id, self.attempts)

    release_async = _awaitable(release)

    def fail(self, error: str = "") -> bool:
        return self._db._native.fail(self.id, self._data.worker_id, self.attempts, error)

    fail_async = _awaitable(fail)

    def heartbeat(self, extend_s: float) -> bool:
        return self._db._native.heartbeat(self.id, self._data.worker_id, self.attempts, extend_s)

    heartbeat_async = _awaitable(heartbeat)

    def __repr__(self) -> str:
        return f"Job(id={self.id}, queue={self.queue!r}, attempts={self.attempts})"


def _until_closed(call: Callable[[], T | None]) -> T | None:
    """A blocking iterator's next item, or None (the end) once the database is
    closed: closing it is how a process ends its workers, as in Node."""
    try:
        return call()
    except Closed:
        return None


class _Claimer:
    """``for job in q.claim(worker)``: blocks for the next job; ``stop()`` (from
    any thread) or closing the database ends the iteration."""

    def __init__(self, queue: Queue, worker: str, timeout: float | None) -> None:
        self._q = queue
        self._worker = worker
        self._timeout = timeout
        self._stop = queue._db._native.stop_flag()

    def __iter__(self) -> _Claimer:
        return self

    def __next__(self) -> Job:
        q = self._q
        data = _until_closed(
            lambda: q._db._native.claim_next(
                q.name, self._worker, self._stop, q.visibility_timeout_s, q.max_attempts, self._timeout
            )
        )
        if data is None:
            raise StopIteration
        return Job(q._db, data)

    def __aiter__(self) -> _Claimer:
        return self

    async def __anext__(self) -> Job:
        q = self._q

        def call() -> Any:
            return _until_closed(
                lambda: q._db._native.claim_next(
                    q.name, self._worker, self._stop, q.visibility_timeout_s, q.max_attempts, self._timeout
                )
            )

        def give_back(data: Any) -> None:
            q._db._native.release(data.id, data.worker_id, data.attempts)

        data = await _off_loop(call, self._stop.stop, give_back)
        if data is None:
            raise StopAsyncIteration
        return Job(q._db, data)

    def stop(self) -> None:
        self._stop.stop()


class Queue:
    """A named queue. Defaults: 300 s lease, 3 attempts."""

    def __init__(self, db: Database, name: str, visibility_timeout_s: float, max_attempts: int) -> None:
        self._db = db
        self.name = name
        self.visibility_timeout_s = visibility_timeout_s
        self.max_attempts = max_attempts

    def enqueue(
        self,
        payload: Any,
        *,
        tx: Transaction | None = None,
        delay_s: float | None = None,
        run_at: float | None = None,
        priority: int = 0,
        expires_s: float | None = None,
        max_attempts: int | None = None,
        key: str | None = None,
        delay: float | None = None,
        expires: float | None = None,
    ) -> int:
        """Adds a job (inside ``tx`` when given) and returns its id. ``delay_s`` and
        ``expires_s`` are seconds, ``run_at`` a Unix time in seconds. (``delay``
        and ``expires`` are deprecated names of ``delay_s`` and ``expires_s``.)"""
        return self._db._native.enqueue(
            self.name,
            _dumps(payload),
            tx=_tx(tx),
            delay_s=_unit("delay_s", delay_s, "delay", delay),
            run_at_s=run_at,
            priority=priority,
            max_attempts=max_attempts,
            expires_s=_unit("expires_s", expires_s, "expires", expires),
            key=key,
            default_max_attempts=self.max_attempts,
        )

    enqueue_async = _awaitable(enqueue)

    def enqueue_many(
        self,
        payloads: Sequence[Any],
        *,
        tx: Transaction | None = None,
        delay_s: float | None = None,
        run_at: float | None = None,
        priority: int = 0,
        expires_s: float | None = None,
        max_attempts: int | None = None,
        delay: float | None = None,
        expires: float | None = None,
    ) -> list[int]:
        """Adds many jobs with the same options, all or none; returns their ids."""
        return self._db._native.enqueue_many(
            self.name,
            [_dumps(p) for p in payloads],
            tx=_tx(tx),
            delay_s=_unit("delay_s", delay_s, "delay", delay),
            run_at_s=run_at,
            priority=priority,
            max_attempts=max_attempts,
            expires_s=_unit("expires_s", expires_s, "expires", expires),
            default_max_attempts=self.max_attempts,
        )

    enqueue_many_async = _awaitable(enqueue_many)

    def claim_one(self, worker: str) -> Job | None:
        got = self._db._native.claim_batch(self.name, worker, 1, self.visibility_timeout_s)
        return Job(self._db, got[0]) if got else None

    claim_one_async = _awaitable(claim_one)

    def claim_batch(self, worker: str, n: int) -> list[Job]:
        return [Job(self._db, d) for d in self._db._native.claim_batch(self.name, worker, n, self.visibility_timeout_s)]

    claim_batch_async = _awaitable(claim_batch)

    def claim(self, worker: str, *, timeout_s: float | None = None, timeout: float | None = None) -> _Claimer:
        """A blocking iterator of jobs, woken by commits in any process; it ends
        after ``timeout_s`` seconds without a job (never when None)."""
        return _Claimer(self, worker, _unit("timeout_s", timeout_s, "timeout", timeout))

    def ack_batch(self, jobs: Sequence[Job], tx: Transaction | None = None) -> int:
        """Acks, in one transaction, each of ``jobs`` (claimed ``Job`` objects)
        whose claim is still current, fenced exactly like ``Job.ack``: a job
        whose lease lapsed and was claimed again, even under the same worker
        name, is not acked. Returns how many were acked."""
        leases = []
        for job in jobs:
            if not isinstance(job, Job):
                raise InvalidArgument(
                    "invalid argument `jobs`: ack_batch takes the claimed Job objects (their leases), "
                    f"not {type(job).__name__}: a bare id cannot tell a lapsed claim from the current one"
                )
            leases.append(job._lease())
        return self._db._native.ack_batch(leases, _tx(tx))

    ack_batch_async = _awaitable(ack_batch)

    def get_job(self, id: int) -> JobInfo | None:
        """Everything stored about a live or dead job, or None."""
        data = self._db._native.get_job(id)
        return None if data is None else JobInfo._of(data)

    def cancel(self, id: int) -> bool:
        return self._db._native.cancel(id)

    def dead_jobs(self, limit: int = 100) -> list[JobInfo]:
        """The most recently dead jobs of this queue, newest first."""
        return [JobInfo._of(d) for d in self._db._native.dead_jobs(self.name, limit)]

    def requeue_dead(self, id: int) -> None:
        self._db._native.requeue_dead(id)

    def sweep_expired(self) -> int:
        """Dead-letters this queue's jobs whose ``expires`` passed before a worker
        started them; returns how many. (Claims do this on their way; this is
        for queues nobody claims from.)"""
        return self._db._native.sweep_expired(self.name)

    def stats(self) -> QueueStats:
        """This queue's job counts by state."""
        return QueueStats(*self._db._native.queue_stats(self.name))

    def next_deadline(self) -> float | None:
        """The earliest ``run_at`` of a scheduled job or lease end of a claimed
        one, in epoch seconds (like ``run_at``); None if neither exists. It may
        be in the past: something is claimable already."""
        return _epoch_s(self._db._native.next_deadline_ms(self.name))


@dataclass(frozen=True)
class JobInfo:
    """Everything stored about a job (``get_job``, ``dead_jobs``): ``payload``
    decoded from JSON; ``state`` is ``"ready"``, ``"scheduled"``,
    ``"processing"`` or ``"dead"``; times are ms since the epoch."""

    id: int
    queue: str
    payload: Any
    state: str
    priority: int
    run_at_ms: int
    attempts: int
    max_attempts: int
    worker_id: str | None
    lease_until_ms: int | None
    expires_at_ms: int | None
    key: str | None
    last_error: str | None
    created_at_ms: int
    dead_reason: str | None
    died_at_ms: int | None

    @classmethod
    def _of(cls, d: Any) -> JobInfo:
        return cls(
            d.id,
            d.queue,
            _loads(d.payload),
            d.state,
            d.priority,
            d.run_at_ms,
            d.attempts,
            d.max_attempts,
            d.worker_id,
            d.lease_until_ms,
            d.expires_at_ms,
            d.key,
            d.last_error,
            d.created_at_ms,
            d.dead_reason,
            d.died_at_ms,
        )


@dataclass(frozen=True)
class QueueStats:
    """A queue's job counts: ``ready`` (claimable, as of the last claim's
    promotion of due jobs), ``scheduled`` (waiting for ``run_at``),
    ``processing`` (leased to a worker) and ``dead``."""

    ready: int
    scheduled: int
    processing: int
    dead: int


@dataclass(frozen=True)
class Event:
    offset: int
    key: str | None
    payload: Any


class _Subscription:
    """``for event in stream.subscribe(consumer)``: replays from the saved offset,
    then blocks. At-least-once: an offset is saved once you move past it
    (asked for the next event, or called ``commit()``); saves are batched, at
    least every 100 events and every second. Leaving the loop any way (a
    ``break``, an exception, the subscription collected, ``close()``, the
    ``with`` block, the database closed) saves what you moved past: only the
    event in hand is delivered again. ``stop()`` or closing the database ends
    the iteration."""

    def __init__(self, stream: Stream, consumer: str, timeout: float | None) -> None:
        self._cursor = stream._db._native.cursor(stream.name, consumer)
        self._stop = stream._db._native.stop_flag()
        self._timeout = timeout

    def __iter__(self) -> _Subscription:
        return self

    def __next__(self) -> Event:
        ev = _until_closed(lambda: self._cursor.next(self._stop, self._timeout))
        if ev is None:
            raise StopIteration
        return Event(ev[0], ev[1], _loads(ev[2]))

    def __aiter__(self) -> _Subscription:
        return self

    async def __anext__(self) -> Event:
        # One already fetched is handed over here, without a worker thread.
        ev = None if self._stop.is_stopped() else self._cursor.next_buffered()
        if ev is None:
            ev = await _off_loop(
                lambda: _until_closed(lambda: self._cursor.next(self._stop, self._timeout)),
                self._stop.stop,
                lambda _late: None,  # not moved past: redelivered, at-least-once
            )
        if ev is None:
            raise StopAsyncIteration
        return Event(ev[0], ev[1], _loads(ev[2]))

    def commit(self) -> None:
        """Marks the event in hand as handled too, and saves the offset now."""
        self._cursor.commit()

    def stop(self) -> None:
        self._stop.stop()

    def close(self) -> None:
        """Saves what you moved past and ends the iteration."""
        self._stop.stop()
        try:
            self._cursor.flush()
        except Closed:
            pass  # the database saved it as it closed

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Stream:
    def __init__(self, db: Database, name: str) -> None:
        self._db = db
        self.name = name

    def publish(self, payload: Any, *, key: str | None = None, tx: Transaction | None = None) -> int:
        return self._db._native.publish(self.name, _dumps(payload), key, _tx(tx))

    publish_async = _awaitable(publish)

    def read_since(self, offset: int, limit: int = 100) -> list[Event]:
        return [Event(o, k, _loads(p)) for (o, k, p) in self._db._native.read_since(self.name, offset, limit)]

    read_since_async = _awaitable(read_since)

    def save_offset(self, consumer: str, offset: int, tx: Transaction | None = None) -> bool:
        return self._db._native.save_offset(self.name, consumer, offset, _tx(tx))

    save_offset_async = _awaitable(save_offset)

    def get_offset(self, consumer: str) -> int:
        return self._db._native.get_offset(self.name, consumer)

    def subscribe(
        self, consumer: str, *, timeout_s: float | None = None, timeout: float | None = None
    ) -> _Subscription:
        """Follows the stream as ``consumer`` from its saved offset (a context
        manager too); the iteration ends after ``timeout_s`` seconds without an
        event (never when None)."""
        return _Subscription(self, consumer, _unit("timeout_s", timeout_s, "timeout", timeout))

    def last_offset(self) -> int:
        """The newest event's offset (0 if the stream is empty)."""
        return self._db._native.last_offset(self.name)

    def set_retention(self, *, max_age_s: float | None = None, max_count: int | None = None) -> None:
        """Stores (in the file, for every process) how much of the stream to keep:
        events younger than ``max_age_s`` seconds and at most the ``max_count``
        newest; both apply when both are given, neither keeps everything.
        Publishing applies it every 128 offsets; ``prune()`` applies it now."""
        self._db._native.set_retention(self.name, max_age_s=max_age_s, max_count=max_count)

    def retention(self) -> Retention:
        """The stored retention."""
        return Retention(*self._db._native.retention(self.name))

    def prune(self) -> int:
        """Applies the retention now; returns how many events were removed."""
        return self._db._native.prune(self.name)


@dataclass(frozen=True)
class Retention:
    """How much of a stream is kept (None: no such limit)."""

    max_age_s: float | None
    max_count: int | None


@dataclass(frozen=True)
class Notification:
    id: int
    channel: str
    payload: Any


class Listener:
    """Notifications committed after it was created, on its channel, in order."""

    def __init__(self, db: Database, channel: str) -> None:
        self._native = db._native.listen(channel)

    def recv(self, timeout_s: float | None = None, *, timeout: float | None = None) -> Notification | None:
        """The next notification, waiting up to ``timeout_s`` seconds (forever
        when None); None on timeout or once closed."""
        n = self._native.recv(_unit("timeout_s", timeout_s, "timeout", timeout))
        return None if n is None else Notification(n[0], n[1], _loads(n[2]))

    def __iter__(self) -> Iterator[Notification]:
        while True:
            n = self.recv()
            if n is None:
                return
            yield n

    def __aiter__(self) -> Listener:
        return self

    async def __anext__(self) -> Notification:
        # One that has arrived is handed over here, without a worker thread.
        # Cancelling a wait closes the listener (nothing else can wake it).
        n = self._native.try_recv()
        if n is None:
            n = await _off_loop(lambda: self._native.recv(None), self._native.close, lambda _late: None)
        if n is None:
            raise StopAsyncIteration
        return Notification(n[0], n[1], _loads(n[2]))

    def close(self) -> None:
        self._native.close()


class Lock:
    """A held advisory lock: a context manager that releases on exit.
    ``fencing_token`` increases on every acquisition of any lock.

    While held, a background thread renews it every third of its TTL, so
    work longer than the TTL keeps it. If a renewal finds it gone anyway
    (the process stalled past the TTL and another owner took it), ``lost``
    turns True, ``check()`` raises ``LockLost``, and leaving the ``with``
    block raises ``LockLost`` (unless the block already raised)."""

    def __init__(self, db: Database, name: str, owner: str, token: int, ttl_s: float) -> None:
        self._db = db
        self.name = name
        self.owner = owner
        self.fencing_token = token
        self._held = True
        self._keeper = db._native.keep_lock(name, token, ttl_s)

    @property
    def lost(self) -> bool:
        """True once a renewal (or ``heartbeat``) found the lock gone."""
        return self._keeper.is_lost()

    def check(self) -> None:
        """Raises ``LockLost`` if the lock was found gone. Reads no file."""
        if self.lost:
            raise LockLost(f"lock {self.name!r} was lost (fencing token {self.fencing_token} no longer holds it)")

    def heartbeat(self, ttl_s: float | None = None, *, ttl: float | None = None) -> bool:
        """Extends the lock to ``ttl_s`` seconds from now (and renews with that
        TTL from then on); False if it was lost."""
        ttl_s = _unit("ttl_s", ttl_s, "ttl", ttl)
        if ttl_s is None:
            raise InvalidArgument("invalid argument `ttl_s`: a number of seconds is required")
        held = self._db._native.renew_lock(self.name, self.fencing_token, ttl_s)
        if held:
            self._keeper.set_ttl(ttl_s)
        else:
            self._keeper.mark_lost()
        return held

    def release(self) -> bool:
        """Releases now; False if it had already lapsed or been lost."""
        if not self._held:
            return False
        self._held = False
        self._keeper.stop()
        return self._db._native.release_lock(self.name, self.fencing_token)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        if not self._held:
            return  # released by hand inside the block
        lost = self.lost
        released = self.release()
        if exc_type is None and (lost or not released):
            raise LockLost(
                f"lock {self.name!r} was lost while the block ran (fencing token {self.fencing_token} "
                "no longer held it): another owner may have run at the same time"
            )


@dataclass(frozen=True)
class LockInfo:
    """Who holds a lock: ``expires_at`` is when it lapses unless renewed, in
    epoch seconds."""

    name: str
    owner: str
    fencing_token: int
    expires_at: float


@dataclass(frozen=True)
class Schedule:
    """A registered schedule. ``last_error``: why its last fire failed, if it
    did (it then moved on to its next boundary; the others fired)."""

    name: str
    queue: str
    schedule: str
    payload: Any
    priority: int
    paused: bool
    next_fire_at_ms: int
    last_error: str | None


class Scheduler:
    """Periodic tasks: each fire enqueues one job. Cron (5 or 6 fields),
    ``@hourly`` ... ``@yearly``, ``@every 1m30s``; UTC unless ``tz`` is given."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def add(
        self,
        name: str,
        *,
        queue: str,
        schedule: str,
        payload: Any = None,
        priority: int = 0,
        expires_s: float | None = None,
        tz: str | None = None,
    ) -> None:
        """Registers or updates a task; re-adding an unchanged one keeps its next fire."""
        self._db._native.schedule_add(name, queue, schedule, _dumps(payload), priority, expires_s, tz)

    def remove(self, name: str) -> bool:
        return self._db._native.schedule_remove(name)

    def pause(self, name: str) -> None:
        self._db._native.schedule_pause(name)

    def resume(self, name: str) -> None:
        self._db._native.schedule_resume(name)

    def list(self) -> builtins.list[Schedule]:
        return [
            Schedule(n, q, c, _loads(p), pr, pa, nf, err)
            for (n, q, c, p, pr, pa, nf, err) in self._db._native.schedule_list()
        ]

    async def run_async(self, owner: str, stop: asyncio.Event | None = None, *, lock_ttl_s: float = 10.0) -> None:
        """``run`` for asyncio: returns once ``stop`` is set (or the task is cancelled)."""
        native_stop = self._db._native.stop_flag()
        runner = asyncio.get_running_loop().run_in_executor(
            None, self._db._native.run_scheduler, owner, native_stop, lock_ttl_s
        )
        waiter = asyncio.ensure_future(stop.wait()) if stop is not None else None
        try:
            if waiter is not None:
                either: set[asyncio.Future[Any]] = {runner, waiter}
                await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
            else:
                await asyncio.shield(runner)
        finally:
            native_stop.stop()
            if waiter is not None:
                waiter.cancel()
            await runner

    def soonest(self) -> float | None:
        """The next fire of any unpaused schedule, in epoch seconds; None if there is none."""
        return _epoch_s(self._db._native.schedule_soonest())

    def tick(self) -> builtins.list[Any]:
        """Fires what is due now (one catch-up fire after downtime)."""
        return self._db._native.schedule_tick()

    def run(self, owner: str, stop: threading.Event | None = None, *, lock_ttl_s: float = 10.0) -> None:
        """Runs until ``stop`` is set: only the leader (lock holder) fires; a
        standby takes over within ``lock_ttl_s`` when the leader dies. A
        schedule that cannot fire moves on to its next boundary (the others
        fire; ``Schedule.last_error`` says why); a failing step is retried.
        Both are logged (warning) on the ``honker.scheduler`` logger. After 10
        failures in a row (about 40 s) it raises the error."""
        native_stop = self._db._native.stop_flag()
        done = threading.Event()

        def relay() -> None:
            while not done.is_set():
                if stop is not None and stop.wait(0.05):
                    native_stop.stop()
                    return
                if stop is None:
                    done.wait(0.05)

        helper = threading.Thread(target=relay, daemon=True)
        helper.start()
        try:
            self._db._native.run_scheduler(owner, native_stop, lock_ttl_s)
        finally:
            done.set()
            helper.join()


class Database:
    """One SQLite file holding your tables and honker's. Thread-safe; blocking
    calls release the GIL, and the iterators also work with ``async for``."""

    def __init__(
        self, path: str, *, busy_timeout_s: float = 10.0, wal_autocheckpoint: int = 1000, trusted_schema: bool = False
    ) -> None:
        self.path = path
        self._native = _honker.NativeDatabase(path, busy_timeout_s, wal_autocheckpoint, trusted_schema)
        # The asyncio task that opened the transaction open now (None: plain
        # code); the `_async` twins look at it.
        self._tx_task: object | None = None

    def queue(self, name: str, *, visibility_timeout_s: float = 300.0, max_attempts: int = 3) -> Queue:
        return Queue(self, name, visibility_timeout_s, max_attempts)

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
