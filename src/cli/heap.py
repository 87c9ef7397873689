"""Short garbage-collector pauses during a run: :func:`settled_heap` (issue 8, item 7).

A run holds about half a million container objects that live as long as the process: the modules
and classes of MLflow, SQLAlchemy, scikit-learn, LightGBM, Optuna, LangGraph... CPython's collector
walks every one of them in each full (generation 2) pass, and a pass holds the GIL: on this machine
140-290 ms during which the event loop -- and every thread -- stands still. The bench
(``./run bench bench_event_loop``) traced every event-loop gap above 100 ms in a whole graph run to
such a pass, started by whichever thread allocated at the wrong moment (the MLflow writer, a trial
thread, the loop itself); running the work in threads cannot help, the pause is process-wide.

So the composition root does what long-lived CPython services do: once the run's code is imported,
it moves the objects that exist then into the collector's permanent generation (``gc.freeze()``),
which full passes skip. What the run imports later stays in the young generations, so the imports a
run would do lazily (MLflow's model logging and store, skops, the estimators) are done first, in a
thread, from the moment the database starts; full passes wait until they are frozen.
``gc.unfreeze()`` on the way out hands them back to the collector, so a process that runs several
commands (the tests) does not keep garbage frozen. Objects are still freed by reference counting as
usual; only cycles among frozen objects wait for the unfreeze.

Start-up does not wait for those imports: that would take seconds from a time-budgeted study, and
they ran during the run before as well. Only ``train``, which saves and logs a model, imports skops
and MLflow's model logging up front.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib
import logging
from collections.abc import AsyncIterator, Iterable
from typing import Any

__all__ = ["SettledHeap", "run_modules", "settled_heap", "tracker_modules", "warm_imports"]

_log = logging.getLogger("hpo")

#: the third collector threshold while the imports land: full passes wait (young ones go on)
_NO_FULL_PASS = 1_000_000_000

#: what every run imports lazily: the estimators' libraries (the MLflow tracker's own start-up,
#: its import and store, is waited for through the tracker)
FIT_MODULES = ("sklearn.ensemble", "sklearn.linear_model", "sklearn.model_selection", "sklearn.metrics",
               "lightgbm", "xgboost")
#: what a run that saves its model imports lazily: the model file format
MODEL_MODULES = ("skops.io",)
#: what the MLflow tracker imports lazily to log a model. Imported only once the tracker's own start-up
#: (``import mlflow`` in its writer thread) is over: two threads importing MLflow's circular package
#: at once fail ("cannot import name ... from partially initialized module 'mlflow.models'")
MLFLOW_MODEL_MODULES = ("mlflow.models", "mlflow.pyfunc")


def run_modules(*, saves_model: bool) -> tuple[str, ...]:
    """The modules a run imports lazily, MLflow's aside (``saves_model``: ``train``, which saves and
    logs a model; ``tune`` does not, and does not pay for their import)."""
    return FIT_MODULES + MODEL_MODULES if saves_model else FIT_MODULES


def tracker_modules(*, saves_model: bool) -> tuple[str, ...]:
    """The MLflow modules a run with a tracker imports lazily (:data:`MLFLOW_MODEL_MODULES` when it
    logs a model)."""
    return MLFLOW_MODEL_MODULES if saves_model else ()


def warm_imports(modules: Iterable[str]) -> list[str]:
    """Import ``modules`` (a blocking call: run it in a thread); returns those that failed to import,
    which only means they are not frozen (the run reports its own import errors where it needs them)."""
    failed = []
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as e:  # noqa: BLE001 - an optional library missing is not this module's error
            _log.debug("warm import of %s failed: %s: %s", name, type(e).__name__, e)
            failed.append(name)
    return failed


class SettledHeap:
    """What :func:`settled_heap` yields: ``settled`` ends once the heap is frozen."""

    def __init__(self, settled: asyncio.Task[None]) -> None:
        self.settled = settled


@contextlib.asynccontextmanager
async def settled_heap(imports: asyncio.Future[Any] | None = None, *, tracker: Any = None,
                       tracker_imports: Iterable[str] = ()) -> AsyncIterator[SettledHeap]:
    """Freeze the long-lived heap for the body, once the run's lazy imports are done.

    The body starts at once: waiting for the imports would take seconds from a time-budgeted
    study. Until they are done, the collector makes no *full* pass (young generations are still
    collected), so none walks the whole heap meanwhile. Then, in the background: ``imports`` (a
    started :func:`warm_imports`) is awaited, the ``tracker``'s start-up (MLflow's import, its
    store: ``ready``) too, ``tracker_imports`` are imported (after it, never beside it: see
    :data:`MLFLOW_MODEL_MODULES`), everything alive is frozen and full passes resume. Objects that
    became cyclic garbage during those seconds stay frozen until the exit, which unfreezes.
    Nested or concurrent uses are fine: the first exit unfreezes, which only makes later full
    passes slower again.
    """
    threshold = gc.get_threshold()
    gc.set_threshold(threshold[0], threshold[1], _NO_FULL_PASS)

    async def settle() -> None:
        try:
            if imports is not None:
                await imports
            if tracker is not None and await tracker.ready():
                await asyncio.to_thread(warm_imports, tracker_imports)
            gc.freeze()  # moves lists: instant (gc.get_freeze_count() walks them: 70-80 ms, not here)
        finally:
            gc.set_threshold(*threshold)

    task = asyncio.create_task(settle(), name="hpo-settle-heap")
    try:
        yield SettledHeap(task)
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        gc.unfreeze()
