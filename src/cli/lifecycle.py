"""How a command stops before its end: SIGINT (Ctrl-C), SIGTERM (a container stop, a batch
scheduler) or a database that stays unreachable.

Each of them cancels the command's task once (:class:`RunStopper`); the cancellation runs every
cleanup on its way out (trials in flight are told FAIL "cancelled", history and MLflow queues are
flushed, the embedded PostgreSQL is released), and :func:`stoppable` turns it into :class:`Stopped`,
which says why. A second SIGINT/SIGTERM while cleaning up cancels again: the cleanup is cut short.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

__all__ = ["StopReason", "Stopped", "RunStopper", "stoppable", "HANDLED_SIGNALS"]

_log = logging.getLogger("hpo")

HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@dataclass(frozen=True)
class StopReason:
    """Why a command stopped early: a signal, or a database outage (``signal`` is then None)."""

    signal: signal.Signals | None
    message: str

    @property
    def is_signal(self) -> bool:
        return self.signal is not None


class Stopped(Exception):
    """The command was stopped before its end (see :class:`StopReason`); ``context`` holds what the
    command had recorded for the final message (thread id, study name...)."""

    def __init__(self, reason: StopReason, context: dict[str, str] | None = None) -> None:
        super().__init__(reason.message)
        self.reason = reason
        self.context = dict(context or {})


@dataclass
class RunStopper:
    """Cancels one task, once per request; the first reason wins. Commands fill ``context`` with
    what the final message should tell (the thread id, the study, the node that was running)."""

    task: asyncio.Task
    reason: StopReason | None = None
    context: dict[str, str] = field(default_factory=dict)

    def request(self, reason: StopReason) -> None:
        if self.reason is None:
            self.reason = reason
            self.task.cancel()
            return
        if reason.is_signal:  # asked again while cleaning up: cut the cleanup short
            sys.stderr.write(f"\n  {reason.signal.name} again: stopping without waiting for the cleanup\n")
            self.task.cancel()

    def on_signal(self, sig: signal.Signals) -> None:
        verb = "interrupted" if sig == signal.SIGINT else "stopped"
        if self.reason is None:
            sys.stderr.write(f"\n  {sig.name}: stopping; trials in flight are recorded as cancelled ...\n")
            sys.stderr.flush()
        self.request(StopReason(sig, f"{verb} by {sig.name}"))


@contextlib.asynccontextmanager
async def stoppable() -> AsyncIterator[RunStopper]:
    """Run the body under a :class:`RunStopper` wired to SIGINT and SIGTERM; a stop ends the body
    with :class:`Stopped` (whatever exception the cancelled cleanup raised on its way out)."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    stopper = RunStopper(task)
    installed = []
    for sig in HANDLED_SIGNALS:
        try:
            loop.add_signal_handler(sig, stopper.on_signal, sig)
            installed.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or no such signal here
            pass
    try:
        yield stopper
    except BaseException as e:
        if stopper.reason is None or isinstance(e, (KeyboardInterrupt, SystemExit)):
            raise
        while task.cancelling():
            task.uncancel()
        if not isinstance(e, asyncio.CancelledError):  # a cleanup step failed while being cancelled
            _log.debug("while stopping: %s: %s", type(e).__name__, e, exc_info=e)
        raise Stopped(stopper.reason, stopper.context) from None
    else:
        if stopper.reason is not None:  # the stop came after the body's last await: still a stop
            while task.cancelling():
                task.uncancel()
            raise Stopped(stopper.reason, stopper.context)
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
