"""honker: durable queues, streams, pub/sub and cron on SQLite. One file, zero servers.

A thin layer over the native module ``honker._honker`` (the shared Rust
engine): it encodes payloads as JSON, turns options into keyword arguments,
and provides context managers and iterators. Every rule lives in the engine.
One module per concern: ``_database`` (opening, the handle), ``_transaction``,
``_queue``, ``_stream``, ``_listener``, ``_lock``, ``_scheduler``, ``_aio``
(how the async methods run off the event loop), ``_common`` (JSON,
durations); the exception classes come from the engine's list of error codes.
"""

from __future__ import annotations

from honker import _honker
from honker._database import Database, extension_path, load_extension, open
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
    JobFailed,
    LockHeld,
    LockLost,
    NotFound,
    PostgresError,
    SchemaTooNew,
    SqliteError,
    TransactionInactive,
    TransactionOpen,
    WatcherError,
)
from honker._listener import Listener, Notification
from honker._lock import Lock, LockInfo
from honker._queue import (
    Job,
    JobInfo,
    Queue,
    QueueControls,
    QueueRateLimit,
    QueueRetention,
    QueueStats,
    QueueSummary,
)
from honker._scheduler import Schedule, Scheduler, cron_next
from honker._stream import Event, Retention, Stream, StreamConsumer, StreamSummary
from honker._transaction import AsyncTransaction, Transaction
from honker._worker import Retry, Task, TaskContext, TaskHandle, Worker, current_task

#: The stream every queue's lifecycle events are published to (when the queue
#: asks for them, :meth:`Queue.set_events`), each keyed by its queue's name.
EVENTS_STREAM: str = _honker.EVENTS_STREAM

__version__: str = _honker.VERSION

__all__ = [
    "EVENTS_STREAM",
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
    "JobFailed",
    "JobInfo",
    "Listener",
    "Lock",
    "LockHeld",
    "LockInfo",
    "LockLost",
    "NotFound",
    "Notification",
    "PostgresError",
    "Queue",
    "QueueControls",
    "QueueRateLimit",
    "QueueRetention",
    "QueueStats",
    "QueueSummary",
    "Retention",
    "Retry",
    "Schedule",
    "Scheduler",
    "SchemaTooNew",
    "SqliteError",
    "Stream",
    "StreamConsumer",
    "StreamSummary",
    "Task",
    "TaskContext",
    "TaskHandle",
    "Transaction",
    "TransactionInactive",
    "TransactionOpen",
    "WatcherError",
    "Worker",
    "cron_next",
    "current_task",
    "extension_path",
    "load_extension",
    "open",
]
