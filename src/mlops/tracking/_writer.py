"""The tracker's background writer: one daemon thread running submitted MLflow calls in order.

Every MLflow call of :class:`~src.mlops.tracking.MLflowTracker` runs here (never on the event loop;
the ``mlflow`` import too). A daemon thread never blocks interpreter exit, so a call stuck on an
unreachable server cannot hang the program: the tracker's deadline gives up on it and opens its
circuit breaker.
"""

from __future__ import annotations

import concurrent.futures
import queue
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["BackgroundWriter", "WriterClosed"]


class WriterClosed(RuntimeError):
    """A call submitted after :meth:`BackgroundWriter.stop`."""


class BackgroundWriter:
    """One daemon thread running submitted calls in order."""

    def __init__(self, name: str) -> None:
        self._queue: queue.SimpleQueue[tuple[concurrent.futures.Future[Any], Callable[..., Any], tuple[Any, ...]] | None]
        self._queue = queue.SimpleQueue()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[..., Any], *args: Any) -> concurrent.futures.Future[Any]:
        """Queue ``fn(*args)``; its result or exception lands in the returned future."""
        fut: concurrent.futures.Future[Any] = concurrent.futures.Future()
        if self._stopped:
            fut.set_exception(WriterClosed("the MLflow tracker is closed"))
            return fut
        self._queue.put((fut, fn, args))
        return fut

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            fut, fn, args = item
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                fut.set_result(fn(*args))
            except BaseException as e:  # noqa: BLE001 - handed to the awaiting side
                fut.set_exception(e)

    def stop(self, timeout: float | None) -> bool:
        """Let queued calls finish, then end the thread; wait at most ``timeout`` seconds.
        ``True`` when the thread ended."""
        if not self._stopped:
            self._stopped = True
            self._queue.put(None)
        self._thread.join(timeout)
        return not self._thread.is_alive()
