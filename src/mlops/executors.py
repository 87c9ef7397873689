"""Where trial fits run: never on the event loop.

- :func:`run_in_thread` starts a fresh daemon thread per trial. A thread cannot be killed: when a
  trial times out, the optimizer fails it, sets its cancel event (boosting fits stop at the next
  round, CV at the next fold) and moves on; the abandoned thread ends on its own.
- :class:`ProcessTrialRunner` keeps ``size`` worker processes, each holding one pickled copy of a
  :class:`ModelObjective` (data shipped once per worker). A trial sends only its params; per-round
  reports and prune decisions travel over a pipe. On timeout or cancellation the worker is killed
  and replaced, so its CPU is really reclaimed. The optimizer uses it when ``trial_timeout`` is set
  and the objective is a ``ModelObjective``.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import pickle
import queue
import signal
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

import optuna

from .objectives import Evaluation, ModelObjective, TrialCancelled

__all__ = ["run_in_thread", "ProcessTrialRunner", "TrialTimeout", "TrialError", "start_process"]


class TrialTimeout(Exception):
    """A trial ran past ``trial_timeout``."""


class TrialError(Exception):
    """A trial failed inside a worker process; the message carries the reason."""


def run_in_thread(fn: Callable[[], Any], *, name: str = "hpo-trial") -> cf.Future:
    """Run ``fn`` in a new daemon thread; its result or exception lands in the returned future."""
    fut: cf.Future = cf.Future()

    def target() -> None:
        if not fut.set_running_or_notify_cancel():
            return
        try:
            fut.set_result(fn())
        except BaseException as e:  # noqa: BLE001 - handed to the awaiting side
            fut.set_exception(e)

    threading.Thread(target=target, name=name, daemon=True).start()
    return fut


# ---------------------------------------------------------------------------------------------
# worker process side
# ---------------------------------------------------------------------------------------------
class _PipeReporter:
    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self._prune = False

    def report(self, value: float, step: int) -> None:
        self.conn.send(("report", float(value), int(step)))
        self._prune = self.conn.recv() == "prune"

    def should_prune(self) -> bool:
        return self._prune

    def cancelled(self) -> bool:
        return False  # the parent kills the process instead


def _worker_main(conn: Any, payload: bytes) -> None:  # pragma: no cover - runs in a child process
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group: the parent decides
    objective: ModelObjective = pickle.loads(payload)
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        if msg[0] == "stop":
            return
        params = msg[1]
        try:
            ev = objective.evaluate(params, _PipeReporter(conn))
            conn.send(("result", ev.value, ev.user_attrs))
        except optuna.TrialPruned as e:
            conn.send(("pruned", str(e)))
        except Exception as e:  # noqa: BLE001 - reported as the trial's fail reason
            conn.send(("error", f"{type(e).__name__}: {e}", traceback.format_exc(limit=5)))


# ---------------------------------------------------------------------------------------------
# parent side
# ---------------------------------------------------------------------------------------------
_START_LOCK = threading.Lock()


def start_process(proc: Any) -> None:
    """``proc.start()`` without the child re-running the caller's ``__main__`` script.

    multiprocessing's spawn/forkserver children import the main module (as ``__mp_main__``), so a
    user script without an ``if __name__ == "__main__":`` guard would run again in every worker.
    Our workers only need importable ``src.mlops`` code, so the main module's path is hidden while
    the process (and, on first use, the forkserver) starts.
    """
    import sys

    main = sys.modules.get("__main__")
    with _START_LOCK:
        saved = {a: main.__dict__[a] for a in ("__file__", "__spec__") if main is not None and a in main.__dict__}
        try:
            if main is not None:
                main.__dict__.pop("__file__", None)
                main.__dict__["__spec__"] = None
            proc.start()
        finally:
            if main is not None:
                main.__dict__.update(saved)
                if "__spec__" not in saved:
                    main.__dict__.pop("__spec__", None)


class _Worker:
    def __init__(self, ctx: Any, payload: bytes) -> None:
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker_main, args=(child, payload), daemon=True, name="hpo-trial-worker")
        start_process(self.proc)
        child.close()

    def kill(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(timeout=5)
        self.conn.close()

    def stop(self) -> None:
        try:
            self.conn.send(("stop",))
        except (OSError, BrokenPipeError):
            pass
        self.proc.join(timeout=2)
        if self.proc.is_alive():
            self.kill()


_CTX: Any = None
_CTX_LOCK = threading.Lock()


def _context() -> Any:
    """A forkserver context with the heavy libraries preloaded (fast, and no fork of our threads)."""
    global _CTX
    with _CTX_LOCK:
        if _CTX is None:
            method = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
            ctx = mp.get_context(method)
            if method == "forkserver":
                ctx.set_forkserver_preload(["numpy", "pandas", "sklearn", "lightgbm", "xgboost", "src.mlops.objectives"])
            _CTX = ctx
        return _CTX


class ProcessTrialRunner:
    """Runs ``objective.evaluate(params)`` in worker processes with a hard per-trial deadline."""

    def __init__(self, objective: ModelObjective, *, size: int = 1) -> None:
        self._payload = pickle.dumps(objective, protocol=pickle.HIGHEST_PROTOCOL)
        self._ctx = _context()
        self._idle: queue.LifoQueue[_Worker] = queue.LifoQueue()
        self._all: set[_Worker] = set()
        self._lock = threading.Lock()
        self._closed = False
        self.size = max(1, size)
        self.restarts = 0

    def _take(self) -> _Worker:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            w = _Worker(self._ctx, self._payload)
            with self._lock:
                self._all.add(w)
            return w

    def _discard(self, w: _Worker) -> None:
        w.kill()
        with self._lock:
            self._all.discard(w)
            self.restarts += 1

    def run(self, params: dict[str, Any], trial: optuna.Trial, *, timeout: float | None,
            cancel: threading.Event) -> Evaluation:
        """Blocking: evaluate in a worker; raise TrialTimeout / TrialCancelled / TrialError / TrialPruned."""
        if self._closed:
            raise TrialCancelled("runner closed")
        w = self._take()
        deadline = None if timeout is None else time.monotonic() + timeout
        multi = len(trial.study.directions) > 1
        try:
            w.conn.send(("eval", params))
            while True:
                if cancel.is_set():
                    self._discard(w)
                    raise TrialCancelled("cancelled")
                wait = 0.1 if deadline is None else min(0.1, deadline - time.monotonic())
                if wait <= 0:
                    self._discard(w)
                    raise TrialTimeout(f"trial exceeded trial_timeout={timeout}s")
                if not w.conn.poll(wait):
                    if not w.proc.is_alive():
                        code = w.proc.exitcode
                        self._discard(w)
                        raise TrialError(f"worker process died (exit code {code})")
                    continue
                msg = w.conn.recv()
                if msg[0] == "report":
                    prune = False
                    if not multi:
                        trial.report(msg[1], msg[2])
                        prune = trial.should_prune()
                    w.conn.send("prune" if prune else "go")
                    continue
                self._idle.put(w)
                if msg[0] == "result":
                    return Evaluation(msg[1], msg[2])
                if msg[0] == "pruned":
                    raise optuna.TrialPruned(msg[1])
                raise TrialError(msg[1])
        except (EOFError, OSError, BrokenPipeError) as e:
            self._discard(w)
            raise TrialError(f"worker process connection lost: {type(e).__name__}: {e}") from e

    def close(self) -> None:
        self._closed = True
        with self._lock:
            workers = list(self._all)
            self._all.clear()
        for w in workers:
            w.stop()

    @property
    def alive_workers(self) -> int:
        with self._lock:
            return sum(1 for w in self._all if w.proc.is_alive())

    def worker_pids(self) -> list[int]:
        with self._lock:
            return [w.proc.pid for w in self._all if w.proc.pid is not None]

