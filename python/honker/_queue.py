"""Queues and claimed jobs."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, overload

from honker._aio import _awaitable, _off_loop, _WaitThread
from honker._common import _dumps, _epoch_s, _loads, _tx, _unit, _until_closed
from honker._honker import (
    InvalidArgument,
)
from honker._stream import Retention
from honker._worker import RetryArg, Task

if TYPE_CHECKING:
    from honker._database import Database
    from honker._transaction import Transaction


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


class _Claimer:
    """``for job in q.claim(worker)``: blocks for the next job; ``stop()`` (from
    any thread) or closing the database ends the iteration."""

    def __init__(self, queue: Queue, worker: str, timeout: float | None) -> None:
        self._q = queue
        self._worker = worker
        self._timeout = timeout
        self._stop = queue._db._native.stop_flag()
        self._waits = _WaitThread()

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

        data = await _off_loop(call, self._stop.stop, give_back, self._waits)
        if data is None:
            self._waits.close()
            raise StopAsyncIteration
        return Job(q._db, data)

    def stop(self) -> None:
        self._stop.stop()
        self._waits.close()


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

    @overload
    def task(self, fn: Callable[..., Any], /) -> Task: ...

    @overload
    def task(
        self,
        fn: None = None,
        /,
        *,
        name: str | None = None,
        max_attempts: int | None = None,
        timeout_s: float | None = None,
        retry: RetryArg = None,
        store_result: bool = True,
        result_ttl_s: float = 86400.0,
    ) -> Callable[[Callable[..., Any]], Task]: ...

    def task(
        self,
        fn: Callable[..., Any] | None = None,
        /,
        *,
        name: str | None = None,
        max_attempts: int | None = None,
        timeout_s: float | None = None,
        retry: RetryArg = None,
        store_result: bool = True,
        result_ttl_s: float = 86400.0,
    ) -> Task | Callable[[Callable[..., Any]], Task]:
        """Registers a function as a task of this queue, as ``@queue.task`` or
        ``@queue.task(name=..., ...)``. The function stays callable;
        ``fn.enqueue(*args, **kwargs)`` runs it on a worker and returns a
        handle whose ``result(timeout=...)`` waits for its return value.

        ``name`` defaults to the function's ``__name__`` (use the same name
        in every language that handles or enqueues it); ``max_attempts``
        overrides the queue's for its jobs; ``timeout_s`` tells a run to
        stop (see ``honker.current_task()``) and retries it; ``retry`` is
        ``honker.Retry.exponential(...)`` (the default), ``Retry.fixed(s)``
        or a callable ``attempt -> seconds``; ``store_result=False`` saves
        no result; results are kept ``result_ttl_s`` (one day)."""

        def register(f: Callable[..., Any]) -> Task:
            t = Task(
                self,
                f,
                name=name or f.__name__,
                max_attempts=max_attempts,
                timeout_s=timeout_s,
                retry=retry,
                store_result=store_result,
                result_ttl_s=result_ttl_s,
            )
            self._db._register_task(t)
            return t

        return register(fn) if fn is not None else register

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

    def purge(self) -> int:
        """Deletes every ready job of this queue (claimable now, delayed jobs
        whose time has come included) and returns how many: for clearing a
        backlog. Jobs scheduled for later, jobs a worker holds and dead jobs
        stay; purged jobs are gone, not dead-lettered."""
        return self._db._native.purge(self.name)

    purge_async = _awaitable(purge)

    def dead_jobs(self, limit: int = 100) -> list[JobInfo]:
        """The most recently dead jobs of this queue, newest first."""
        return [JobInfo._of(d) for d in self._db._native.dead_jobs(self.name, limit)]

    def requeue_dead(self, id: int) -> None:
        self._db._native.requeue_dead(id)

    def requeue_dead_all(self, reason: str | None = None) -> int:
        """Moves every dead job of this queue back, ready now with a fresh
        attempt budget (only those dead for ``reason``, such as ``"failed"`` or
        ``"lease_expired"``, if given), in one transaction. A job whose
        idempotency key a live job holds stays dead. Returns how many moved."""
        return self._db._native.requeue_dead_all(self.name, reason)

    def cancel_many(self, ids: Iterable[int]) -> int:
        """Removes each live job of ``ids`` whatever its state (as :meth:`cancel`
        removes one), in one transaction; returns how many."""
        return self._db._native.cancel_many(list(ids))

    def sweep_expired(self) -> int:
        """Dead-letters this queue's jobs whose ``expires`` passed before a worker
        started them; returns how many. (Claims do this on their way; this is
        for queues nobody claims from.)"""
        return self._db._native.sweep_expired(self.name)

    def stats(self) -> QueueStats:
        """This queue's job counts by state."""
        return QueueStats(*self._db._native.queue_stats(self.name))

    def pause(self) -> bool:
        """Pauses this queue in every process sharing the file: claims take
        nothing until :meth:`resume` (enqueues, acks and the jobs already
        running go on). Returns whether it was running."""
        return self._db._native.pause(self.name)

    pause_async = _awaitable(pause)

    def resume(self) -> bool:
        """Resumes a paused queue; waiting workers in every process wake at
        once. Returns whether it was paused."""
        return self._db._native.resume(self.name)

    resume_async = _awaitable(resume)

    def set_max_in_flight(self, max_in_flight: int | None) -> None:
        """Limits how many of this queue's jobs are leased at once, across
        every process (None: no limit, the default). Claims take at most the
        room left; at least 1 (pause the queue to claim nothing)."""
        self._db._native.set_max_in_flight(self.name, max_in_flight)

    def set_rate_limit(self, limit: int | None, per_s: float | None = None) -> None:
        """Limits how many of this queue's jobs are claimed per fixed window of
        ``per_s`` seconds (windows start at every multiple of it since the
        epoch), across every process; ``None`` lifts it (the default). Claims
        take at most what is left of the current window."""
        self._db._native.set_rate_limit(self.name, limit, per_s)

    def set_retention(self, *, completed: Retention | None = None, dead: Retention | None = None) -> None:
        """Sets what of this queue's history is kept, for every process sharing
        the file (both limits, replacing the old ones). By default an acked job
        is deleted and a dead job stays until it is requeued. With
        ``completed``, acked jobs are kept (state ``"completed"``, with their
        result, attempts, timings and last error) within its limits; with
        ``dead``, dead jobs past its limits are pruned, oldest first. A
        :class:`Retention` must set ``max_age_s``, ``max_count`` or both.

        Pruning is automatic and amortized: it runs in the transactions that
        add to a table, once the table is 1/64 past a limit, so a table holds
        at most about ``max_count * 65 / 64`` jobs and a job is kept at least
        ``max_age_s``. :meth:`prune` applies the limits exactly."""

        def limits(r: Retention | None) -> tuple[float | None, int | None] | None:
            return None if r is None else (r.max_age_s, r.max_count)

        self._db._native.set_queue_retention(self.name, limits(completed), limits(dead))

    def set_events(self, on: bool) -> None:
        """Turns this queue's lifecycle events on or off, for every process
        sharing the file. While on, each change of its jobs' states
        (``enqueued``, ``started``, ``completed``, ``failed``, ``retried``,
        ``dead``, ``released``, ``cancelled``) is published to the stream
        :data:`honker.EVENTS_STREAM` (``"honker:events"``), keyed by the
        queue's name, in the transaction that makes the change: read it with
        a saved offset (``db.stream(honker.EVENTS_STREAM).subscribe(...)``)
        and no event is missed. Turning them on gives that stream a retention
        of 7 days if it has none."""
        self._db._native.set_events(self.name, on)

    def prune(self) -> int:
        """Applies this queue's retention now, exactly; returns how many
        completed and dead jobs were removed."""
        return self._db._native.prune_queue(self.name)

    def controls(self) -> QueueControls:
        """This queue's controls, as stored in the file."""
        return QueueControls._of(self._db._native.queue_controls(self.name))

    def next_deadline(self) -> float | None:
        """The earliest ``run_at`` of a scheduled job or lease end of a claimed
        one, in epoch seconds (like ``run_at``); None if neither exists. It may
        be in the past: something is claimable already."""
        return _epoch_s(self._db._native.next_deadline_ms(self.name))


@dataclass(frozen=True)
class JobInfo:
    """Everything stored about a job (``get_job``, ``dead_jobs``,
    :meth:`Database.jobs`): ``payload`` and ``result`` decoded from JSON;
    ``state`` is ``"ready"``, ``"scheduled"``, ``"processing"``, ``"dead"`` or
    ``"completed"`` (acked and kept by its queue's retention); times are ms
    since the epoch (``started_at_ms``: when its last claim started it)."""

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
    started_at_ms: int | None
    completed_at_ms: int | None
    result: Any

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
            d.started_at_ms,
            d.completed_at_ms,
            None if d.result is None else _loads(d.result),
        )


@dataclass(frozen=True)
class QueueRateLimit:
    """At most ``limit`` claims of a queue per fixed window of ``per_s`` seconds."""

    limit: int
    per_s: float


@dataclass(frozen=True)
class QueueControls:
    """A queue's controls, stored in the file: ``paused`` (claims take
    nothing), ``max_in_flight`` (the most of its jobs leased at once across
    every process; None for no limit), ``rate_limit`` (a
    :class:`QueueRateLimit`, or None), ``retention`` (a
    :class:`QueueRetention`) and ``events`` (whether it publishes lifecycle
    events, :meth:`Queue.set_events`)."""

    paused: bool
    max_in_flight: int | None
    rate_limit: QueueRateLimit | None
    retention: QueueRetention
    events: bool

    @classmethod
    def _of(cls, t: Any) -> QueueControls:
        paused, max_in_flight, rate, (completed, dead), events = t
        return cls(
            paused,
            max_in_flight,
            None if rate is None else QueueRateLimit(*rate),
            QueueRetention(
                None if completed is None else Retention(*completed),
                None if dead is None else Retention(*dead),
            ),
            events,
        )


@dataclass(frozen=True)
class QueueRetention:
    """What of a queue's history is kept (:meth:`Queue.set_retention`):
    ``completed``, the limits of its kept finished jobs (None: an acked job
    is deleted), and ``dead``, the limits of its dead jobs (None: kept until
    requeued)."""

    completed: Retention | None
    dead: Retention | None


@dataclass(frozen=True)
class QueueSummary:
    """A queue as an operator sees it (:meth:`Database.queues`): its
    ``name``, ``stats`` (a :class:`QueueStats`) and ``controls`` (a
    :class:`QueueControls`)."""

    name: str
    stats: QueueStats
    controls: QueueControls

    @classmethod
    def _of(cls, t: Any) -> QueueSummary:
        name, stats, controls = t
        return cls(name, QueueStats(*stats), QueueControls._of(controls))


@dataclass(frozen=True)
class QueueStats:
    """A queue's job counts: ``ready`` (claimable, as of the last claim's
    promotion of due jobs), ``scheduled`` (waiting for ``run_at``),
    ``processing`` (leased to a worker), ``dead`` and ``completed`` (kept by
    the queue's retention)."""

    ready: int
    scheduled: int
    processing: int
    dead: int
    completed: int
