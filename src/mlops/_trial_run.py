"""Running one trial of an ``optimize`` call, from its params to its outcome as an Optuna state.

The trial is served from the trial cache or run in a thread or a worker process, and stopped at its
timeout or at the study's deadline. Kept apart from the optimizer loop (:mod:`.optimizer`), which
takes the trial through the study's ledger, calls :func:`run_trial` and tells Optuna what it returns.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from typing import Any

import optuna
from optuna.trial import TrialState

from ._run_state import RunState
from ._seeding import MODEL_OBJECTIVES
from .executors import ProcessTrialRunner, TrialError, TrialTimeout, run_in_thread
from .objectives import ModelObjective, TrialCancelled, TrialReporter
from .trial_cache import TrialCache

log = logging.getLogger("src.mlops.optimizer")

#: seconds an interrupted trial gets to stop by itself (boosting fits stop at the next round)
#: before its thread is abandoned
_DEADLINE_GRACE_S = 2.0


class _DeadlinePassed(Exception):
    """The study's timeout passed while a trial ran (it is failed as "deadline", free)."""


def _retrieve(fut: asyncio.Future) -> None:
    """Done-callback of an abandoned trial future: consume its outcome (no 'never retrieved' noise)."""
    if not fut.cancelled():
        fut.exception()


async def run_trial(run: RunState, trial: optuna.Trial, objective: Any, runner: ProcessTrialRunner | None,
                    trial_timeout: float | None, cancel: threading.Event) -> tuple[TrialState, Any, str | None]:
    """Run ``trial`` (served from the trial cache, or fitted in a thread or a worker process) and
    return its outcome: ``(state, value, fail reason)``. Every failure is a FAIL state with its reason."""
    if run.cache is not None:
        hit = await _cached(run.cache, trial, objective)
        if hit is not None:
            return TrialState.COMPLETE, hit, None

    def execute() -> Any:
        if isinstance(objective, MODEL_OBJECTIVES):
            params = objective.suggest(trial)
            if runner is not None:
                ev = runner.run(params, trial, timeout=trial_timeout, cancel=cancel)
            else:
                ev = objective.evaluate(params, TrialReporter(trial, cancel))
            for k, v in ev.user_attrs.items():
                trial.set_user_attr(k, v)
            return ev.value
        return objective(trial)

    # Starting a thread waits until it runs, which took tens of ms with busy threads holding the
    # GIL: not on the loop.
    fut = asyncio.wrap_future(await asyncio.to_thread(run_in_thread, execute, name=f"hpo-trial-{trial.number}"))
    # A process runner enforces the deadline itself (kill + replace); the outer guard only
    # catches a runner that could not (e.g. stuck in suggest). Threads rely on the guard.
    guard = None if trial_timeout is None else (trial_timeout * 2 + 5 if runner else trial_timeout)
    try:
        value = await _await_trial(run, fut, guard, cancel)
    except asyncio.CancelledError:
        fut.add_done_callback(_retrieve)  # the abandoned thread's outcome is moot: no "never retrieved"
        raise
    except _DeadlinePassed:
        return TrialState.FAIL, None, "deadline"
    except (TimeoutError, asyncio.TimeoutError, TrialTimeout):
        cancel.set()
        return TrialState.FAIL, None, "timeout"
    except optuna.TrialPruned:
        return TrialState.PRUNED, None, None
    except TrialCancelled:
        return TrialState.FAIL, None, "cancelled"
    except TrialError as e:
        return TrialState.FAIL, None, f"exception: {e}"
    except Exception as e:  # noqa: BLE001 - every failure becomes a FAIL state with its reason
        log.warning("trial %d failed: %s: %s", trial.number, type(e).__name__, e)
        return TrialState.FAIL, None, f"exception: {type(e).__name__}: {e}"
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    try:
        values = [float(v) for v in values]
    except (TypeError, ValueError):
        return TrialState.FAIL, None, f"objective returned a non-number: {value!r}"
    if not all(math.isfinite(v) for v in values):
        return TrialState.FAIL, None, f"non-finite value: {value!r}"
    if len(values) != len(trial.study.directions):
        return TrialState.FAIL, None, (
            f"objective returned {len(values)} value(s) for a study with {len(trial.study.directions)} direction(s)"
        )
    return TrialState.COMPLETE, values if len(values) > 1 else values[0], None


async def _cached(cache: TrialCache, trial: optuna.Trial, objective: ModelObjective) -> float | None:
    """The stored value of this trial's params, its attributes set on the trial; ``None`` on a
    miss (or any trouble: the trial then trains; suggesting again gives the same params)."""
    try:
        params = await asyncio.to_thread(objective.suggest, trial)
        hit = await cache.lookup(params)
        if hit is None:
            return None
        await asyncio.to_thread(cache.apply, trial, hit)
        return hit.value
    except Exception as e:  # noqa: BLE001 - the cache never fails a trial
        log.warning("trial %d: trial cache skipped (%s: %s)", trial.number, type(e).__name__, e)
        return None


async def _await_trial(run: RunState, fut: asyncio.Future, guard: float | None, cancel: threading.Event) -> Any:
    """The trial's value. Raises TimeoutError past ``guard`` seconds, and :class:`_DeadlinePassed`
    when the study's deadline passes while a COMPLETE trial exists: the trial is asked to stop
    (``cancel``), and its thread is abandoned if it has not stopped within a short grace."""
    start = time.monotonic()
    while True:
        now = time.monotonic()
        deadline = run.deadline
        waits = [] if guard is None else [start + guard - now]
        if deadline is not None and run.has_complete:
            waits.append(deadline - now)
            if run.time_reserve is not None:
                waits.append(1.0)  # the reserve may grow as other trials finish: look again
        elif deadline is not None:
            waits.append(1.0)  # no result yet: look again for a completion elsewhere
        timeout = max(0.0, min(waits)) if waits else None
        done, _ = await asyncio.wait({fut}, timeout=timeout)
        if done:
            return fut.result()
        now = time.monotonic()
        if guard is not None and now >= start + guard:
            fut.cancel()
            raise TimeoutError
        deadline = run.deadline
        if deadline is not None and run.has_complete and now >= deadline:
            cancel.set()
            done, _ = await asyncio.wait({fut}, timeout=_DEADLINE_GRACE_S)
            if done and not fut.cancelled() and fut.exception() is None:
                return fut.result()  # it finished after all: keep its result
            fut.add_done_callback(_retrieve)
            raise _DeadlinePassed
