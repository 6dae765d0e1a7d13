"""Tasks and workers: ``@queue.task`` registers a function under a name; a
worker (``db.worker(...)``) runs them. The worker runtime itself (claims,
lease renewal, timeouts, retries, shutdown) is the engine's; this module
only calls the functions and reports how they ended.

A task's job payload is the envelope ``{"task": name, "args": [...],
"kwargs": {...}}``, the same in every language: a job enqueued here can be
run by a Node or Rust handler registered under the same name, and the
other way round.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import json
import signal
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Callable, Union

from honker import _otel
from honker._common import _dumps, _loads, _tx

if TYPE_CHECKING:
    from honker._database import Database
    from honker._queue import Queue
    from honker._transaction import Transaction


class Retry:
    """A retry policy (how long a failed task waits before its next attempt;
    how many attempts it gets is ``max_attempts``). Build one with
    :meth:`exponential` or :meth:`fixed`, or pass any callable
    ``(attempt: int) -> seconds`` as a task's ``retry=``."""

    __slots__ = ("_spec_",)

    def __init__(self, kind: str, a: float, b: float = 0.0, jitter: bool = False) -> None:
        self._spec_ = (kind, float(a), float(b), bool(jitter))

    @staticmethod
    def exponential(base_s: float = 1.0, max_s: float = 3600.0, jitter: bool = True) -> Retry:
        """``base_s`` doubling each attempt, at most ``max_s``; with ``jitter``
        a random point in the upper half of each step. The default policy."""
        return Retry("exponential", base_s, max_s, jitter)

    @staticmethod
    def fixed(delay_s: float) -> Retry:
        """The same delay every time."""
        return Retry("fixed", delay_s)

    def _spec(self) -> tuple[str, float, float, bool]:
        return self._spec_

    def __repr__(self) -> str:
        kind, a, b, jitter = self._spec_
        if kind == "fixed":
            return f"Retry.fixed({a})"
        return f"Retry.exponential(base_s={a}, max_s={b}, jitter={jitter})"


RetryArg = Union[Retry, Callable[[int], float], None]

_current: contextvars.ContextVar[TaskContext] = contextvars.ContextVar("honker_task")


class TaskContext:
    """The run of a task in progress, from :func:`current_task` inside a
    handler: its job id, attempt, and the signal to stop (a timeout, a lost
    lease, a shutdown)."""

    __slots__ = ("_cancel", "attempt", "id", "task")

    def __init__(self, id: int, task: str, attempt: int, cancel: Any) -> None:
        self.id = id
        self.task = task
        self.attempt = attempt
        self._cancel = cancel

    @property
    def cancelled(self) -> bool:
        """True once the handler has been told to stop."""
        return self._cancel.reason() is not None

    @property
    def cancel_reason(self) -> str | None:
        """``timeout``, ``lease_lost``, ``shutdown``, or None."""
        reason: str | None = self._cancel.reason()
        return reason

    def wait_cancelled(self, timeout_s: float) -> str | None:
        """Sleeps up to ``timeout_s``, waking early when told to stop; the
        reason, or None if the time passed."""
        reason: str | None = self._cancel.wait(timeout_s)
        return reason


def current_task() -> TaskContext:
    """The task run the calling code is part of (inside a handler)."""
    try:
        return _current.get()
    except LookupError:
        raise RuntimeError("current_task() is only available inside a task handler run by a worker") from None


class TaskHandle:
    """An enqueued task run: its job ``id``, and its result once it ends."""

    __slots__ = ("_db", "id")

    def __init__(self, db: Database, id: int) -> None:
        self.id = id
        self._db = db

    def result(self, timeout: float | None = None) -> Any:
        """Waits (woken by the commit that ends the job) for the handler's
        return value. ``JobFailed`` if the job went to the dead table,
        ``TimeoutError`` if it has not ended within ``timeout`` seconds;
        ``None`` if the task returned nothing or stores no result."""
        done, value = self._db._native.wait_result(self.id, self._db._native.stop_flag(), timeout)
        if not done:
            raise TimeoutError(f"job {self.id} did not finish within {timeout} s")
        return None if value is None else _loads(value)

    async def result_async(self, timeout: float | None = None) -> Any:
        """``result``, awaited: the wait runs on a worker thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, functools.partial(self.result, timeout))

    def __repr__(self) -> str:
        return f"TaskHandle(id={self.id})"


class _Enqueuer:
    """A task with enqueue options bound (``task.options(...)``)."""

    __slots__ = ("_opts", "_task")

    def __init__(self, task: Task, opts: dict[str, Any]) -> None:
        self._task = task
        self._opts = opts

    def enqueue(self, *args: Any, **kwargs: Any) -> TaskHandle:
        return self._task._enqueue(args, kwargs, **self._opts)

    async def enqueue_async(self, *args: Any, **kwargs: Any) -> TaskHandle:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, functools.partial(self.enqueue, *args, **kwargs))


class Task:
    """A function registered as a task of a queue (``@queue.task``). Calling
    it calls the function; ``enqueue`` runs it on a worker."""

    def __init__(
        self,
        queue: Queue,
        fn: Callable[..., Any],
        *,
        name: str,
        max_attempts: int | None,
        timeout_s: float | None,
        retry: RetryArg,
        store_result: bool,
        result_ttl_s: float,
    ) -> None:
        if retry is not None and not isinstance(retry, Retry) and not callable(retry):
            raise TypeError("retry= must be honker.Retry.exponential(...), honker.Retry.fixed(...) or a callable")
        self.queue = queue
        self.fn = fn
        self.name = name
        self.max_attempts = max_attempts
        self.timeout_s = timeout_s
        self.retry = retry
        self.store_result = store_result
        self.result_ttl_s = result_ttl_s
        self.is_async = inspect.iscoroutinefunction(fn)
        functools.update_wrapper(self, fn)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def enqueue(self, *args: Any, **kwargs: Any) -> TaskHandle:
        """Enqueues a run with these arguments (JSON-encodable) and returns
        its handle. Enqueue options go through :meth:`options`."""
        return self._enqueue(args, kwargs)

    async def enqueue_async(self, *args: Any, **kwargs: Any) -> TaskHandle:
        """``enqueue``, awaited."""
        return await _Enqueuer(self, {}).enqueue_async(*args, **kwargs)

    def options(
        self,
        *,
        tx: Transaction | None = None,
        delay_s: float | None = None,
        run_at: float | None = None,
        priority: int = 0,
        key: str | None = None,
        max_attempts: int | None = None,
        expires_s: float | None = None,
    ) -> _Enqueuer:
        """Enqueue options, kept apart from the task's own arguments:
        ``fn.options(delay_s=60, tx=tx).enqueue(...)``."""
        opts = {
            "tx": tx,
            "delay_s": delay_s,
            "run_at": run_at,
            "priority": priority,
            "key": key,
            "max_attempts": max_attempts,
            "expires_s": expires_s,
        }
        return _Enqueuer(self, opts)

    def _enqueue(
        self,
        args: Sequence[Any],
        kwargs: dict[str, Any],
        *,
        tx: Transaction | None = None,
        delay_s: float | None = None,
        run_at: float | None = None,
        priority: int = 0,
        key: str | None = None,
        max_attempts: int | None = None,
        expires_s: float | None = None,
    ) -> TaskHandle:
        envelope: dict[str, Any] = {"task": self.name, "args": list(args)}
        if kwargs:
            envelope["kwargs"] = kwargs
        q = self.queue
        id = q._db._native.enqueue(
            q.name,
            _dumps(envelope, "args"),
            tx=_tx(tx),
            delay_s=delay_s,
            run_at_s=run_at,
            priority=priority,
            max_attempts=max_attempts if max_attempts is not None else self.max_attempts,
            expires_s=expires_s,
            key=key,
            default_max_attempts=q.max_attempts,
        )
        return TaskHandle(q._db, id)

    def _retry_in(self, attempt: int) -> float | None:
        if self.retry is None or isinstance(self.retry, Retry):
            return None
        return float(self.retry(attempt))

    def _spec(self) -> tuple[str, float | None, tuple[str, float, float, bool] | None, bool, float]:
        policy = self.retry._spec() if isinstance(self.retry, Retry) else None
        return (self.name, self.timeout_s, policy, self.store_result, self.result_ttl_s)

    def __repr__(self) -> str:
        return f"Task({self.name!r}, queue={self.queue.name!r})"


def _traced(span: Any, done: tuple[bool, str | None, float | None]) -> tuple[bool, str | None, float | None]:
    """``done`` (an attempt's end), told to its span."""
    if not done[0]:
        span.failed(done[1] or "")
    return done


def _returned(task: Task, out: Any, attempt: int) -> tuple[bool, str | None, float | None]:
    """How a handler that returned ``out`` ended: (ok, result JSON, None), or
    a failure when the result cannot be stored as JSON."""
    if out is None or not task.store_result:
        return (True, None, None)
    try:
        return (True, json.dumps(out, separators=(",", ":"), allow_nan=False), None)
    except (TypeError, ValueError) as e:
        return (False, f"the task's result is not JSON-encodable: {e}", task._retry_in(attempt))


def _error_text(e: BaseException) -> str:
    text = str(e)
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


class Worker:
    """Runs the tasks registered on a database (``@queue.task``), up to
    ``concurrency`` at once. :meth:`run` blocks (until ``stop`` is set, or
    SIGTERM/SIGINT when called on the main thread), :meth:`run_async` runs
    on an event loop, :meth:`drain` runs what is due and returns (tests).

    Sync handlers run on threads (the GIL is released while the engine
    works); ``async def`` handlers run on the event loop (``run_async``) or
    each in its own ``asyncio.run`` (``run`` and ``drain``)."""

    def __init__(
        self,
        db: Database,
        queues: Sequence[str],
        *,
        concurrency: int,
        worker_id: str | None,
        lease_s: float,
        grace_s: float,
        retry: Retry | None,
        unknown_tasks: str,
        leave_unknown_s: float,
        batch: int = 32,
    ) -> None:
        if unknown_tasks not in ("dead_letter", "leave"):
            raise ValueError("unknown_tasks must be 'dead_letter' or 'leave'")
        self._db = db
        self.queues = list(queues)
        self.concurrency = concurrency
        self.worker_id = worker_id
        self.lease_s = lease_s
        self.grace_s = grace_s
        self.retry = retry
        self.unknown_tasks = unknown_tasks
        self.leave_unknown_s = leave_unknown_s
        self.batch = batch
        self._stop_requested = threading.Event()
        self._running: Any = None

    def _native(self, concurrency: int, cancel_events: bool) -> Any:
        tasks = self._db._tasks
        return self._db._native.worker(
            self.queues,
            [t._spec() for t in tasks.values()],
            concurrency=concurrency,
            worker_id=self.worker_id,
            lease_s=self.lease_s,
            grace_s=self.grace_s,
            retry_policy=None if self.retry is None else self.retry._spec(),
            leave_unknown_s=self.leave_unknown_s if self.unknown_tasks == "leave" else None,
            cancel_events=cancel_events,
            batch=self.batch,
        )

    def _outcome(
        self, act: Any, run: Callable[[Task, list[Any], dict[str, Any]], Any]
    ) -> tuple[bool, str | None, float | None]:
        """Runs one job; (ok, result JSON or error text, retry delay)."""
        id, name, payload, attempt, cancel = act
        task = self._db._tasks[name]
        with _otel.job(task.queue.name, name, id, attempt) as span:
            token = _current.set(TaskContext(id, name, attempt, cancel))
            try:
                env = json.loads(payload)
                out = run(task, env.get("args") or [], env.get("kwargs") or {})
            except Exception as e:  # noqa: BLE001 - a handler's error is the job's failure
                return _traced(span, (False, _error_text(e), task._retry_in(attempt)))
            finally:
                _current.reset(token)
            return _traced(span, _returned(task, out, attempt))

    @staticmethod
    def _call_sync(task: Task, args: list[Any], kwargs: dict[str, Any]) -> Any:
        out = task.fn(*args, **kwargs)
        if inspect.isawaitable(out):
            return asyncio.run(_awaited(out))
        return out

    def _chain(self, native: Any, act: Any) -> int:
        ran = 0
        while act is not None:
            ran += 1
            ok, value, retry_in = self._outcome(act, self._call_sync)
            act = native.complete(act[0], ok, value, retry_in_s=retry_in)
        return ran

    def drain(self) -> int:
        """Runs every job that is due now, one at a time in the calling
        thread, and returns how many ran once none is due (delayed jobs and
        retries waiting out their backoff are left)."""
        native = self._native(1, False)
        ran = 0
        while True:
            act = native.drain_next()
            if act is None:
                return ran
            ran += self._chain(native, act)

    def stop(self) -> None:
        """Asks a running worker to stop: it claims nothing more, lets what
        runs finish for ``grace_s``, then releases the rest (their attempt
        not counted) and returns."""
        self._stop_requested.set()
        native = self._running
        if native is not None:
            native.shutdown()

    def run(self, stop: threading.Event | None = None) -> None:
        """Runs until ``stop`` is set or :meth:`stop` is called (and, on the
        main thread, until SIGTERM or SIGINT), then drains: nothing more is
        claimed, running jobs get ``grace_s`` to finish, the rest are
        released without using an attempt."""
        native = self._native(self.concurrency, False)
        self._running = native
        flag = self._db._native.stop_flag()
        errors: list[BaseException] = []

        def slot() -> None:
            try:
                while True:
                    got = native.poll(flag)
                    if got[0] == "done":
                        return
                    if got[0] == "run":
                        self._chain(native, got[1])
            except BaseException as e:  # noqa: BLE001 - reported by run()
                errors.append(e)
                native.shutdown()

        restore: list[tuple[signal.Signals, Any]] = []
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                restore.append((sig, signal.signal(sig, lambda *_: self.stop())))
        try:
            if self._stop_requested.is_set():
                native.shutdown()
            threads = [
                threading.Thread(target=slot, name=f"honker-worker-{i}", daemon=True) for i in range(self.concurrency)
            ]
            for t in threads:
                t.start()
            for t in threads:
                while t.is_alive():
                    t.join(0.1)
                    if stop is not None and stop.is_set():
                        native.shutdown()
        finally:
            for sig, old in restore:
                signal.signal(sig, old)
            self._running = None
            self._stop_requested.clear()
        if errors:
            raise errors[0]

    async def run_async(self, stop: asyncio.Event | None = None) -> None:
        """``run`` on the running event loop: ``async def`` handlers run as
        tasks on it (cancelled when told to stop), sync ones on threads; the
        waits and the SQL run off the loop. Returns after the drain once
        ``stop`` is set or :meth:`stop` is called."""
        loop = asyncio.get_running_loop()
        native = self._native(self.concurrency, True)
        self._running = native
        flag = self._db._native.stop_flag()
        running: dict[int, asyncio.Task[None]] = {}

        async def run_async_handler(task: Task, args: list[Any], kwargs: dict[str, Any]) -> Any:
            if task.is_async:
                return await task.fn(*args, **kwargs)
            ctx = contextvars.copy_context()
            return await loop.run_in_executor(None, functools.partial(ctx.run, self._call_sync, task, args, kwargs))

        async def one(act: Any) -> tuple[bool, str | None, float | None]:
            id, name, payload, attempt, cancel = act
            task = self._db._tasks[name]
            try:
                env = json.loads(payload)
                args, kwargs = env.get("args") or [], env.get("kwargs") or {}
            except Exception as e:  # noqa: BLE001
                return (False, _error_text(e), None)
            with _otel.job(task.queue.name, name, id, attempt) as span:
                token = _current.set(TaskContext(id, name, attempt, cancel))
                try:
                    out = await run_async_handler(task, args, kwargs)
                except asyncio.CancelledError:
                    return _traced(span, (False, f"cancelled ({cancel.reason() or 'shutdown'})", None))
                except Exception as e:  # noqa: BLE001
                    return _traced(span, (False, _error_text(e), task._retry_in(attempt)))
                finally:
                    _current.reset(token)
                return _traced(span, _returned(task, out, attempt))

        async def chain(act: Any) -> None:
            me = asyncio.current_task()
            while act is not None:
                id = act[0]
                if me is not None:
                    running[id] = me
                try:
                    ok, value, retry_in = await one(act)
                finally:
                    running.pop(id, None)
                act = await loop.run_in_executor(
                    None, functools.partial(native.complete, id, ok, value, retry_in_s=retry_in)
                )

        async def stopper() -> None:
            if stop is not None:
                await stop.wait()
                native.shutdown()

        watch = asyncio.ensure_future(stopper())
        chains: set[asyncio.Task[None]] = set()
        try:
            if self._stop_requested.is_set():
                native.shutdown()
            while True:
                got = await loop.run_in_executor(None, native.poll, flag)
                if got[0] == "done":
                    break
                if got[0] == "run":
                    t = asyncio.ensure_future(chain(got[1]))
                    chains.add(t)
                    t.add_done_callback(chains.discard)
                elif got[0] == "cancel":
                    victim = running.get(got[1])
                    if victim is not None:
                        victim.cancel()
        finally:
            watch.cancel()
            for t in list(chains):
                t.cancel()
            if chains:
                await asyncio.gather(*chains, return_exceptions=True)
            self._running = None
            self._stop_requested.clear()


async def _awaited(x: Any) -> Any:
    return await x
