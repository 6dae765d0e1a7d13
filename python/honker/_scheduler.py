"""Cron schedules and the scheduler."""

from __future__ import annotations

import asyncio
import builtins
import functools
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from honker import _honker
from honker._aio import _as_task, _WaitThread
from honker._common import _dumps, _epoch_s, _loads

if TYPE_CHECKING:
    from honker._database import Database


def cron_next(expr: str, after: float | None = None, *, tz: str | None = None) -> float:
    """The first fire of ``expr`` strictly after ``after`` (epoch seconds,
    floored to the millisecond; now when None), in epoch seconds. ``expr`` is what ``Scheduler.add`` takes
    (cron with 5 or 6 fields, ``@daily``, ``@every 1m30s``, an optional
    ``CRON_TZ=Zone`` prefix); the zone is ``tz``, else UTC. Across DST
    changes a skipped local time fires at the first instant after the gap,
    a repeated one once. Raises ``InvalidCron`` or ``InvalidTimezone``."""
    return _honker.cron_next(expr, time.time() if after is None else after, tz) / 1000


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
        waits = _WaitThread()
        runner = waits.submit(
            _as_task(functools.partial(self._db._native.run_scheduler, owner, native_stop, lock_ttl_s))
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
            try:
                await runner
            finally:
                waits.close()

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
