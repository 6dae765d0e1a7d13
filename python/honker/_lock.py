"""Advisory locks."""

from __future__ import annotations

import types
from dataclasses import dataclass
from typing import TYPE_CHECKING

from honker._common import _unit
from honker._honker import (
    InvalidArgument,
    LockLost,
)

if TYPE_CHECKING:
    from typing_extensions import Self

    from honker._database import Database


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
