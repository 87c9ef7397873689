"""The child process writing nested trial runs for local stores (SQLite, file, a database URI), so
MLflow's ORM work never competes with the study for the parent's GIL. Niced: the study's fits get
the CPU first.

Started with the ``spawn`` method (a fresh interpreter that imports this module only, never the
caller's ``__main__``: :func:`src.mlops.executors.start_process`); it ignores SIGINT (a Ctrl-C in
the terminal is the parent's to handle, the parent stops it) and ends when its inbox closes.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import queue
import signal
import threading
import time
from typing import Any

from ._runs import TrialRecord, write_trial

__all__ = ["TrialWriterProcess"]


def _trial_writer_main(inbox: Any, outbox: Any, tracking_uri: str, setup: dict[str, Any]) -> None:  # pragma: no cover - child process
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(OSError):
        os.nice(10)
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # this process is single-threaded here
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    ok = failed = 0
    last_error: str | None = None
    while True:
        try:
            item = inbox.get()
        except (EOFError, OSError):
            return
        if item is None:
            outbox.put(("closed", ok, failed, last_error))
            return
        if item == "flush":
            outbox.put(("flushed", ok, failed, last_error))
            ok = failed = 0
            continue
        try:
            write_trial(client, item, **setup)
            ok += 1
        except Exception as e:  # noqa: BLE001 - counted and reported at the next flush
            failed += 1
            last_error = f"{type(e).__name__}: {e}"


class TrialWriterProcess:
    """Parent side of the trial writer: ``put`` records, ``flush`` to wait for them, ``stop``."""

    def __init__(self, tracking_uri: str, setup: dict[str, Any]) -> None:
        from ..executors import start_process

        ctx = multiprocessing.get_context("spawn")
        self._inbox, self._outbox = ctx.Queue(), ctx.Queue()
        self._proc = ctx.Process(target=_trial_writer_main, args=(self._inbox, self._outbox, tracking_uri, setup),
                                 daemon=True, name="mlflow-trial-writer")
        start_process(self._proc)
        self._lock = threading.Lock()

    def put(self, record: TrialRecord) -> None:
        self._inbox.put(record)

    def flush(self, timeout: float) -> tuple[int, int, str | None] | None:
        """Wait until every record put so far is written: (ok, failed, last_error), or None on timeout."""
        with self._lock:
            self._inbox.put("flush")
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                try:
                    _, ok, failed, err = self._outbox.get(timeout=min(0.5, max(0.01, deadline - time.monotonic())))
                    return ok, failed, err
                except queue.Empty:
                    if not self._proc.is_alive():
                        return None
            return None

    def stop(self, timeout: float) -> None:
        with contextlib.suppress(Exception):
            self._inbox.put(None)
        self._proc.join(timeout)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join(2)
