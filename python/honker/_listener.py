"""Ephemeral pub/sub: notifications and listeners."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from honker._aio import _off_loop, _WaitThread
from honker._common import _loads, _unit

if TYPE_CHECKING:
    from honker._database import Database


@dataclass(frozen=True)
class Notification:
    id: int
    channel: str
    payload: Any


class Listener:
    """Notifications committed after it was created, on its channel, in order."""

    def __init__(self, db: Database, channel: str) -> None:
        self._native = db._native.listen(channel)
        self._waits = _WaitThread()

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
            n = await _off_loop(lambda: self._native.recv(None), self._native.close, lambda _late: None, self._waits)
        if n is None:
            self._waits.close()
            raise StopAsyncIteration
        return Notification(n[0], n[1], _loads(n[2]))

    def close(self) -> None:
        self._native.close()
        self._waits.close()
