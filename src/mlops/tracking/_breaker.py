"""The tracker's circuit breaker: every MLflow call runs on the writer thread, is awaited with a
deadline, and the first operational failure opens the breaker (later writes are skipped at once and
counted). Errors tied to one request (an invalid value) drop that write only."""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import logging
import threading
from collections.abc import Callable
from typing import Any

from ..redaction import redact_secrets
from ._writer import BackgroundWriter, WriterClosed

__all__ = ["Breaker", "Dropped"]

_log = logging.getLogger("src.mlops.tracking")

#: MLflow error codes about one request's content (drop that write) rather than the backend (trip).
_REQUEST_SPECIFIC = {"INVALID_PARAMETER_VALUE", "RESOURCE_ALREADY_EXISTS", "RESOURCE_DOES_NOT_EXIST", "BAD_REQUEST",
                     "INVALID_STATE"}


class Dropped(Exception):
    """A write skipped because the breaker is open, or failed (already counted)."""


def _consume_exception(fut: concurrent.futures.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()  # mark as retrieved; failures are already counted by _guarded


class Breaker:
    """Deadlines, failure counting and the open/closed state shared by the tracker's calls.

    Subclasses set ``enabled``, ``tracking_uri``, ``call_timeout_s`` and ``max_pending``, then call
    :meth:`_start_writer` with the job that imports mlflow and creates the client.
    """

    enabled: bool
    tracking_uri: str
    call_timeout_s: float
    max_pending: int

    def _init_breaker(self) -> None:
        self._counter_lock = threading.Lock()
        self._dropped = 0
        self._last_error: str | None = None
        self._broken = threading.Event()
        self._pending: collections.deque[concurrent.futures.Future[Any]] = collections.deque()
        self._worker: BackgroundWriter | None = None
        self._ready: concurrent.futures.Future[Any] | None = None

    def _start_writer(self, init: Callable[[], None]) -> None:
        self._worker = BackgroundWriter(name=f"mlflow-tracker-{id(self):x}")
        self._ready = self._worker.submit(self._init_guarded, init)

    @property
    def state(self) -> str:
        """``"disabled"`` (enabled=False), ``"broken"`` (circuit breaker open) or ``"active"``."""
        if not self.enabled:
            return "disabled"
        return "broken" if self._broken.is_set() else "active"

    @property
    def dropped_writes(self) -> int:
        """Writes skipped or lost because MLflow failed or did not answer in time."""
        with self._counter_lock:
            return self._dropped

    @property
    def last_error(self) -> str | None:
        """The last MLflow error (credentials redacted), or ``None``."""
        with self._counter_lock:
            return self._last_error

    # ---------------------------------------------------------------- failure handling (the breaker)

    def _drop(self, n: int = 1) -> None:
        with self._counter_lock:
            self._dropped += n

    def _set_error(self, message: str) -> None:
        text = redact_secrets(message)
        with self._counter_lock:
            self._last_error = text if len(text) <= 1000 else text[:997] + "..."

    def _trip(self, message: str) -> None:
        if not self._broken.is_set():
            _log.warning("MLflow tracking disabled for the rest of this study (%s): %s",
                         redact_secrets(self.tracking_uri), redact_secrets(message))
        self._set_error(message)
        self._broken.set()

    @staticmethod
    def _request_specific(error: BaseException) -> bool:
        """An error about one request's content (drop that write) rather than the backend (trip)."""
        try:
            from mlflow.exceptions import MlflowException
        except Exception:  # pragma: no cover
            return False
        return isinstance(error, MlflowException) and error.error_code in _REQUEST_SPECIFIC

    def _guarded(self, job: Callable[..., Any], *args: Any) -> Any:
        """Run ``job`` on the writer thread: skip when broken, classify failures."""
        if self._broken.is_set():
            self._drop()
            raise Dropped()
        try:
            return job(*args)
        except Dropped:
            raise
        except Exception as e:
            message = f"{getattr(job, '__name__', 'call').strip('_')}: {type(e).__name__}: {e}"
            self._drop()
            if self._request_specific(e):
                self._set_error(message)
                _log.warning("MLflow write dropped: %s", redact_secrets(message))
            else:
                self._trip(message)
            raise Dropped() from e

    def _init_guarded(self, init: Callable[[], None]) -> None:
        """Run ``init`` (import mlflow, create the client: seconds, off the event loop). A failure opens
        the breaker (it is not a write, so not counted)."""
        try:
            init()
        except Exception as e:
            self._trip(f"init: {type(e).__name__}: {e}")
            raise Dropped() from e

    async def ready(self, timeout_s: float = 120.0) -> bool:
        """Wait (off the loop) until mlflow is imported and the client exists; ``False`` when that
        failed or took longer than ``timeout_s`` (the breaker is then open)."""
        if not self.enabled or self._ready is None:
            return False
        if not self._ready.done():
            await asyncio.to_thread(concurrent.futures.wait, [self._ready], timeout_s)
        if not self._ready.done():
            self._trip(f"importing mlflow / creating the client took more than {timeout_s:.0f}s")
            return False
        return self._ready.exception() is None

    async def _call(self, job: Callable[..., Any], *args: Any, timeout: float | None = None, what: str) -> Any:
        """Run ``job`` on the writer and await it with a deadline; ``None`` on any failure."""
        if not self.enabled or self._worker is None:
            return None
        if self._broken.is_set():
            self._drop()
            return None
        if not await self.ready():
            self._drop()
            return None
        fut = self._worker.submit(self._guarded, job, *args)
        deadline = self.call_timeout_s if timeout is None else timeout
        try:
            return await asyncio.wait_for(asyncio.wrap_future(fut), timeout=deadline)
        except Dropped:
            return None
        except (asyncio.TimeoutError, TimeoutError):
            # Not counted here: the call is still running and counts itself if it fails.
            self._trip(f"{what}: no answer from {self.tracking_uri} within {deadline:.1f}s")
            return None
        except WriterClosed as e:
            self._drop()
            self._set_error(f"{what}: {e}")
            return None

    def _submit_background(self, job: Callable[..., Any], *args: Any) -> concurrent.futures.Future[Any] | None:
        """Queue ``job`` on the writer without waiting; its future (``None`` when dropped: queue full)."""
        assert self._worker is not None
        while self._pending and self._pending[0].done():
            self._pending.popleft()
        if len(self._pending) >= self.max_pending:
            self._drop()
            self._set_error(f"more than {self.max_pending} MLflow writes queued; write dropped")
            return None
        fut = self._worker.submit(self._guarded, job, *args)
        fut.add_done_callback(_consume_exception)
        self._pending.append(fut)
        return fut

    async def _wait_pending(self, timeout: float) -> bool:
        """Wait for the writes queued with :meth:`_submit_background`; ``False`` (breaker opens) on timeout."""
        pending = [f for f in self._pending if not f.done()]
        if not pending:
            self._pending.clear()
            return True
        _, not_done = await asyncio.to_thread(concurrent.futures.wait, pending, timeout)
        if not_done:
            self._trip(f"{len(not_done)} queued MLflow writes not done after {timeout:.1f}s")
            return False
        self._pending.clear()
        return True

