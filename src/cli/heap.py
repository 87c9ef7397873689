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
thread, while the database starts. ``gc.unfreeze()`` on the way out hands them back to the
collector, so a process that runs several commands (the tests) does not keep garbage frozen.
Objects are still freed by reference counting as usual; only cycles among frozen objects wait for
the unfreeze.

Cost: start-up waits for those imports (MLflow's model logging is most of it, so only ``train``,
which logs a model, imports it up front). It is work the run did anyway, later, in threads competing
with the fits: on a loaded two-core machine ``hpo train --time-budget 15`` took the same total time
before and after (26-33 s), with more of it in start-up and less in the nodes.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib
import logging
from collections.abc import AsyncIterator, Iterable
from typing import Any

__all__ = ["run_modules", "settled_heap", "warm_imports"]

_log = logging.getLogger("hpo")

#: what every run imports lazily: the estimators' libraries (the MLflow tracker's own start-up,
#: its import and store, is waited for through the tracker)
FIT_MODULES = ("sklearn.ensemble", "sklearn.linear_model", "sklearn.model_selection", "sklearn.metrics",
               "lightgbm", "xgboost")
#: what a run that saves its model imports lazily: the model file format, and MLflow's model logging
MODEL_MODULES = ("skops.io",)
MLFLOW_MODEL_MODULES = ("mlflow.models", "mlflow.pyfunc")


def run_modules(*, saves_model: bool, use_mlflow: bool) -> tuple[str, ...]:
    """The modules a run imports lazily (``saves_model``: ``train``, which saves and logs a model;
    ``tune`` does not, and does not pay for their import)."""
    if not saves_model:
        return FIT_MODULES
    return FIT_MODULES + MODEL_MODULES + (MLFLOW_MODEL_MODULES if use_mlflow else ())


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


@contextlib.asynccontextmanager
async def settled_heap(imports: asyncio.Future[Any] | None = None, *, tracker: Any = None) -> AsyncIterator[int]:
    """Freeze the long-lived heap for the body; yields the number of objects frozen.

    ``imports``: a started :func:`warm_imports` (``asyncio.to_thread``) to wait for first, so its
    modules are frozen too; ``tracker``: an MLflow tracker whose start-up (MLflow's import, its
    store) is waited for (``ready``). Nested or concurrent uses are fine: the first exit unfreezes,
    which only makes later full passes slower again.
    """
    if imports is not None:
        await imports
    if tracker is not None:
        await tracker.ready()
    gc.freeze()
    try:
        yield gc.get_freeze_count()
    finally:
        gc.unfreeze()
