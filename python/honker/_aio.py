"""asyncio: how the ``_async`` methods and ``async for`` loops run the blocking
native calls off the event loop, on behalf of the task that awaits them.

Two rules, both enforced in the engine, not here:

- every call off the loop runs through ``_honker.run_as(task id, call)``,
  so the engine's transaction rule sees the asyncio task, not the worker
  thread: inside the task's own transaction a plain call is refused
  (``TransactionOpen``), another task's call waits its turn;
- waits (claims, subscriptions, listeners, the scheduler) run on a thread
  of their own per iterator (``_WaitThread``), never on the loop's default
  executor, which they would fill: eight ``async for job in q.claim()``
  loops on a two-core machine would otherwise leave ``enqueue_async``
  waiting for a free executor thread.
"""

from __future__ import annotations

import asyncio
import functools
import queue
import threading
from typing import TYPE_CHECKING, Any, Callable, TypeVar

from honker import _honker
from honker._honker import HonkerError

if TYPE_CHECKING:
    from collections.abc import Coroutine

    from typing_extensions import Concatenate, ParamSpec

    P = ParamSpec("P")

T = TypeVar("T")
S = TypeVar("S")


def _task_token() -> int:
    """The awaiting asyncio task's token for the engine's transaction rule."""
    return id(asyncio.current_task())


def _as_task(call: Callable[[], T]) -> Callable[[], T]:
    """``call``, to run on a worker thread on behalf of the current task."""
    return functools.partial(_honker.run_as, _task_token(), call)


class _WaitThread:
    """One daemon thread running one iterator's blocking waits, in order.
    Started on the first wait, ended by ``close()`` (or when the iterator is
    collected). A daemon, so a wait nobody stops never holds up exit."""

    def __init__(self) -> None:
        self._calls: queue.SimpleQueue[tuple[asyncio.AbstractEventLoop, asyncio.Future[Any], Callable[[], Any]] | None]
        self._calls = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def submit(self, call: Callable[[], T]) -> asyncio.Future[T]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        if self._thread is None:
            self._thread = threading.Thread(target=_serve, args=(self._calls,), name="honker-wait", daemon=True)
            self._thread.start()
        self._calls.put((loop, fut, call))
        return fut

    def close(self) -> None:
        if self._thread is not None:
            self._calls.put(None)
            self._thread = None

    def __del__(self) -> None:
        self.close()


def _serve(
    calls: queue.SimpleQueue[tuple[asyncio.AbstractEventLoop, asyncio.Future[Any], Callable[[], Any]] | None],
) -> None:
    while (item := calls.get()) is not None:
        loop, fut, call = item
        try:
            result, error = call(), None
        except BaseException as e:  # noqa: BLE001 (handed to the awaiting task, which raises it)
            result, error = None, e
        try:
            loop.call_soon_threadsafe(_settle, fut, result, error)
        except RuntimeError:
            pass  # the loop is closed: nobody is waiting any more
        del item, loop, fut, call, result, error


def _settle(fut: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if fut.done():
        return
    if error is not None:
        fut.set_exception(error)
    else:
        fut.set_result(result)


async def _off_loop(
    call: Callable[[], T],
    on_cancel: Callable[[], None],
    release: Callable[[T], None],
    waits: _WaitThread | None = None,
) -> T:
    """Runs a blocking native call (which releases the GIL) off the loop for
    the current task: on ``waits`` (a wait's own thread) when given, else on
    the default executor (short calls). If the awaiting task is cancelled,
    ``on_cancel`` wakes the call, and whatever it returned anyway is handed
    to ``release`` (so a job claimed in that instant is given back, not
    lost)."""
    call = _as_task(call)
    if waits is not None:
        fut: asyncio.Future[T] = waits.submit(call)
    else:
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


def _awaitable(method: Callable[Concatenate[S, P], T]) -> Callable[Concatenate[S, P], Coroutine[Any, Any, T]]:
    """The ``_async`` twin of a short operation: the same call, run on a
    worker thread for the awaiting task so the event loop never waits for
    the write lock. The engine applies the transaction rule to the task:
    from inside its own transaction the call needs ``tx=tx`` (like the sync
    call; otherwise ``TransactionOpen``), and another task's call waits on
    the worker thread until the holder commits."""

    async def twin(self: S, /, *args: P.args, **kwargs: P.kwargs) -> T:
        call = _as_task(functools.partial(method, self, *args, **kwargs))
        return await asyncio.get_running_loop().run_in_executor(None, call)

    twin.__name__ = f"{method.__name__}_async"
    twin.__qualname__ = f"{method.__qualname__}_async"
    twin.__doc__ = f"``{method.__name__}``, awaited: runs on a worker thread so the event loop keeps running."
    return twin
