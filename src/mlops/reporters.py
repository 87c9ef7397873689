"""How a fit talks to its trial: intermediate values, pruning and cancellation.

A fit reports through a small :class:`Reporter` so the same fitting code runs inside a trial (in a
thread: :class:`TrialReporter`; in a worker process: the executor's pipe reporter) and outside a
study (final training: :class:`NullReporter`).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import Any, Protocol

import optuna

__all__ = ["TrialCancelled", "Reporter", "NullReporter", "TrialReporter", "Evaluation"]


class TrialCancelled(Exception):
    """Raised inside a fit when its trial was cancelled (timeout, study cancelled)."""


class Reporter(Protocol):
    def report(self, value: float, step: int) -> None: ...

    def should_prune(self) -> bool: ...

    def cancelled(self) -> bool: ...


class NullReporter:
    """For fits outside a study (final training): reports nothing, never prunes."""

    def report(self, value: float, step: int) -> None:
        return None

    def should_prune(self) -> bool:
        return False

    def cancelled(self) -> bool:
        return False


class TrialReporter:
    """Reports straight into an Optuna trial (thread mode); ``cancel`` stops the fit cooperatively."""

    def __init__(self, trial: optuna.Trial, cancel: threading.Event | None = None) -> None:
        self.trial = trial
        self.cancel = cancel or threading.Event()
        self._multi = len(trial.study.directions) > 1

    def report(self, value: float, step: int) -> None:
        if not self._multi and math.isfinite(value):
            self.trial.report(float(value), step)

    def should_prune(self) -> bool:
        return not self._multi and self.trial.should_prune()

    def cancelled(self) -> bool:
        return self.cancel.is_set()


@dataclass
class Evaluation:
    """What one evaluation returns: the objective value and attributes worth storing on the trial."""

    value: float
    user_attrs: dict[str, Any] = field(default_factory=dict)
    #: the predictions that scored it, one array per fold (kept only when the objective asks:
    #: :attr:`~src.mlops.objectives.ModelObjective.keep_predictions`; never stored on the trial)
    predictions: list[Any] | None = field(default=None, repr=False)


