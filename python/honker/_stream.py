"""Durable streams and their subscriptions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from honker._aio import _awaitable, _off_loop, _WaitThread
from honker._common import _dumps, _loads, _tx, _unit, _until_closed
from honker._honker import (
    Closed,
)

if TYPE_CHECKING:
    from typing_extensions import Self

    from honker._database import Database
    from honker._transaction import Transaction


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
        self._waits = _WaitThread()

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
                self._waits,
            )
        if ev is None:
            self._waits.close()
            raise StopAsyncIteration
        return Event(ev[0], ev[1], _loads(ev[2]))

    def commit(self) -> None:
        """Marks the event in hand as handled too, and saves the offset now."""
        self._cursor.commit()

    def stop(self) -> None:
        self._stop.stop()
        self._waits.close()

    def close(self) -> None:
        """Saves what you moved past and ends the iteration."""
        self._stop.stop()
        self._waits.close()
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
    """How much is kept, of a stream (:meth:`Stream.set_retention`) or of a
    queue's completed or dead jobs (:meth:`Queue.set_retention`): what is
    younger than ``max_age_s`` seconds, and at most the ``max_count`` newest
    (None: no such limit)."""

    max_age_s: float | None = None
    max_count: int | None = None


@dataclass(frozen=True)
class StreamConsumer:
    """A stream consumer's place: its ``name``, the ``offset`` it saved and its
    ``lag``, the stream's events after that offset."""

    name: str
    offset: int
    lag: int


@dataclass(frozen=True)
class StreamSummary:
    """A stream as an operator sees it (:meth:`Database.streams`): its
    ``name``, ``last_offset`` (0 if it has no events) and ``consumers`` (a
    :class:`StreamConsumer` each, by name)."""

    name: str
    last_offset: int
    consumers: list[StreamConsumer]
