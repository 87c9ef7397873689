"""Book-keeping of one ``optimize`` call and the lease a worker holds while it runs trials.

:class:`RunState` counts the run's trials and fires its stop rules; :func:`holding_lease` renews
the worker's lease. Used by the optimizer loop only (:mod:`.optimizer`, :mod:`._trial_run`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import optuna
from optuna.trial import TrialState

from .trial_cache import TrialCache
from .trial_slots import TrialSlots

log = logging.getLogger("src.mlops.optimizer")

#: first pause before a waiting worker looks at the budget again (doubling up to 1 s)
FIRST_WAIT_S = 0.02


@dataclass
class RunState:
    """Book-keeping of one ``optimize`` call."""

    study: optuna.Study
    slots: TrialSlots
    n_trials: int | None
    #: ``time.monotonic()`` at which ``timeout`` ends (None: no timeout)
    end: float | None
    max_failures: int | None
    patience: int | None
    min_improvement: float
    #: seconds to keep free before ``end`` (re-evaluated at every check; see ``optimize``)
    time_reserve: Callable[[], float] | None = None
    max_trials: int | None = None
    started: float = field(default_factory=time.monotonic)
    n_started: int = 0
    inflight: dict[int, tuple[optuna.Trial, threading.Event]] = field(default_factory=dict)
    n_failed: int = 0
    n_finished: int = 0
    best: float | None = None
    since_improvement: int = 0
    stop_reason: str | None = None
    waited: bool = False
    wait_delay: float = FIRST_WAIT_S
    #: a COMPLETE trial exists (this run's or an earlier one's): trials running at the deadline may
    #: then be interrupted; before that the first completion is awaited, so a study always has a result.
    has_complete: bool = False
    #: the trial cache (None: every trial trains)
    cache: TrialCache | None = None

    def stop(self, reason: str) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason

    def account(self, frozen: optuna.trial.FrozenTrial) -> None:
        """Count a finished trial of this run; fire the stop rules (``max_failures``, ``patience``)."""
        self.n_finished += 1
        self.has_complete = self.has_complete or frozen.state == TrialState.COMPLETE
        if frozen.state == TrialState.FAIL:
            self.n_failed += 1
            if self.max_failures is not None and self.n_failed >= self.max_failures:
                self.stop("max_failures")
            return
        if frozen.state != TrialState.COMPLETE or len(self.study.directions) > 1:
            return
        v = float(frozen.value)
        maximize = self.study.direction.name == "MAXIMIZE"
        improved = self.best is None or (v > self.best + self.min_improvement if maximize
                                         else v < self.best - self.min_improvement)
        if self.best is None or (v > self.best if maximize else v < self.best):
            self.best = v
        self.since_improvement = 0 if improved else self.since_improvement + 1
        if self.patience is not None and self.since_improvement >= self.patience:
            self.stop("patience")

    @property
    def deadline(self) -> float | None:
        """When no trial may start any more and running ones are stopped: ``end`` minus the reserve."""
        if self.end is None:
            return None
        if self.time_reserve is None:
            return self.end
        try:
            reserve = max(0.0, float(self.time_reserve()))
        except Exception:  # noqa: BLE001 - a broken estimate must not kill the study
            log.exception("time_reserve raised; ignoring it")
            reserve = 0.0
        return self.end - reserve



@contextlib.asynccontextmanager
async def holding_lease(slots: TrialSlots, study: optuna.Study) -> AsyncIterator[None]:
    """This worker's lease renewed while the block runs; its last finished slots written at the end."""
    heartbeat = slots.heartbeat()
    await asyncio.to_thread(heartbeat.__enter__)  # registers the worker and renews its lease
    try:
        yield
    finally:
        try:
            await asyncio.to_thread(slots.flush)  # before the lease may lapse
        except Exception as e:  # noqa: BLE001 - reconciling settles them from Optuna's states anyway
            log.warning("study %s: could not write the last trials' slots (%s: %s)", study.study_name,
                        type(e).__name__, e)
        await asyncio.to_thread(heartbeat.__exit__, None, None, None)


