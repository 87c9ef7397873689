"""Blending a study's best trials by their validation predictions (greedy ensemble selection,
Caruana et al. 2004, as auto-sklearn and AutoGluon do).

A study asked for a blend (``run_hyperparameter_optimization(blend_members=k)``; the graph asks for it
in family searches, ``algorithm="auto"`` or a list) keeps, for its best evaluations, the predictions
each made on the rows that scored it (every CV fold's validation rows, or the validation split):
:class:`PredictionStore`, filled by the objective's ``evaluate`` once ``remember_predictions`` is called.
After the study, :func:`greedy_blend` starts from the best trial and adds, one step at a time and
with replacement, the candidate whose addition most improves the score of the weighted mean of the
predictions on those same rows, scored exactly as a trial is (the metric per fold, then the mean);
it stops when no addition improves it. A member's weight is the share of the steps that picked it.
Members of different families blend what one family alone misses (a linear model's smooth trend, a
booster's interactions); the final model is then a weighted
:class:`~src.mlops.fitted.AveragedModel` of them, each refit like the best trial.

Only predictions that average meaningfully are kept: class probabilities (from estimators that give
them) and regression values, never class labels (metrics that score labels are not blended), and no
multi-objective or anomaly-detection study. Predictions of trials run in worker processes
(``trial_timeout``), of trial-cache hits and of an earlier session are not kept, so such a trial is
not a candidate; without two candidates there is no blend.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import rankdata

from .metrics import MetricSpec, score_predictions

__all__ = ["BLEND_STEPS", "Blend", "PredictionStore", "blend_trials", "greedy_blend", "params_key"]

#: the most evaluations whose predictions a store keeps (the best ones: the blend's candidates are
#: the study's best 10 trials, :data:`~src.mlops.ensemble.TOP_TRIALS`)
KEEP = 10
#: the greedy selection's steps at most (a member's weight is a multiple of 1 / steps taken)
BLEND_STEPS = 20


def params_key(params: Mapping[str, Any]) -> str:
    """One string per configuration (the key of :class:`PredictionStore` and of duplicate trials)."""
    return json.dumps(dict(params), sort_keys=True, default=str)


class PredictionStore:
    """The validation predictions (one array per fold) of the ``limit`` best evaluations so far, by
    their params. Thread-safe: trials run in threads."""

    def __init__(self, direction: str, limit: int = KEEP) -> None:
        self._sign = 1.0 if direction == "maximize" else -1.0
        self.limit = limit
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, list[np.ndarray]]] = {}

    # -- pickling for worker processes: an empty store (what a worker keeps never comes back) ----------
    def __getstate__(self) -> dict[str, Any]:
        return {"_sign": self._sign, "limit": self.limit}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
        self._entries = {}

    def add(self, params: Mapping[str, Any], value: float, predictions: Sequence[Any]) -> None:
        key = params_key(params)
        with self._lock:
            self._entries[key] = (float(value), [np.asarray(p, dtype=float) for p in predictions])
            if len(self._entries) > self.limit:
                worst = min(self._entries, key=lambda k: self._sign * self._entries[k][0])
                del self._entries[worst]

    def get(self, params: Mapping[str, Any]) -> list[np.ndarray] | None:
        with self._lock:
            entry = self._entries.get(params_key(params))
        return None if entry is None else entry[1]

    def __len__(self) -> int:
        return len(self._entries)


@dataclass
class Blend:
    """The members of a blend (``{"number", "value", "params", ...}`` candidates, best first) with
    their weights (summing to 1), the blend's score on the validation rows and the best single's."""

    members: list[Mapping[str, Any]]
    weights: list[float]
    value: float
    single_value: float

    def to_dict(self) -> dict[str, Any]:
        return {"members": [{"number": m["number"], "weight": round(w, 4)} for m, w in zip(self.members, self.weights)],
                "value": self.value, "single_value": self.single_value}


def _scorer(metric: MetricSpec, labels: Any) -> Callable[[Any, np.ndarray], float]:
    """``score(y, prediction)`` equal to :func:`score_predictions`, in numpy for the default metrics
    (the greedy search scores a few thousand mixes: scikit-learn's input checks would cost seconds)."""
    if metric.name == "rmse":
        return lambda y, p: float(np.sqrt(np.mean((np.asarray(y, dtype=float) - p) ** 2)))
    if metric.name == "log_loss":
        def log_loss(y: Any, p: np.ndarray) -> float:
            eps = np.finfo(p.dtype).eps
            p = p if p.ndim == 2 else np.column_stack([1 - p, p])
            return float(-np.mean(np.log(np.clip(p[np.arange(len(p)), np.asarray(y, dtype=np.int64)], eps, 1 - eps))))
        return log_loss

    def auc_or_exact(y: Any, p: np.ndarray) -> float:
        if metric.name == "roc_auc" and p.ndim == 1:  # Mann-Whitney: average ranks, as ties count half
            y = np.asarray(y) == 1
            n_pos = int(y.sum())
            n_neg = len(y) - n_pos
            if n_pos and n_neg:
                return float((rankdata(p)[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
        return score_predictions(metric, y, p, labels=labels)
    return auc_or_exact


def _score(score: Callable[[Any, np.ndarray], float], y_folds: Sequence[Any], pred_folds: Sequence[np.ndarray]) -> float:
    return float(np.mean([score(y, p) for y, p in zip(y_folds, pred_folds)]))


def greedy_blend(candidates: Sequence[Mapping[str, Any]], store: PredictionStore, y_folds: Sequence[Any],
                 metric: MetricSpec, *, labels: Any = None, max_members: int = 3,
                 steps: int = BLEND_STEPS) -> Blend | None:
    """The greedy blend of ``candidates`` (best first; those without stored predictions are skipped)
    with at most ``max_members`` distinct members, or ``None`` when the best candidate has no stored
    predictions, fewer than two have, or no blend scores above the best one alone."""
    if max_members < 2 or not candidates:
        return None
    pool = [(c, store.get(c["params"])) for c in candidates]
    if pool[0][1] is None:
        return None
    pool = [(c, p) for c, p in pool if p is not None and len(p) == len(y_folds)]
    if len(pool) < 2:
        return None
    sign = 1.0 if metric.direction == "maximize" else -1.0
    score = _scorer(metric, labels)
    counts = [1] + [0] * (len(pool) - 1)
    total = [np.array(p, copy=True) for p in pool[0][1]]  # the running sum of the picked predictions
    best = _score(score, y_folds, total)
    for step in range(2, steps + 1):
        chosen, chosen_value = None, best
        for i, (_, preds) in enumerate(pool):
            if counts[i] == 0 and sum(1 for c in counts if c) >= max_members:
                continue
            value = _score(score, y_folds, [(t + p) / step for t, p in zip(total, preds)])
            if sign * value > sign * chosen_value:
                chosen, chosen_value = i, value
        if chosen is None:
            break
        counts[chosen] += 1
        total = [t + p for t, p in zip(total, pool[chosen][1])]
        best = chosen_value
    picked = [i for i, c in enumerate(counts) if c]
    if len(picked) < 2:
        return None
    n = sum(counts)
    return Blend(members=[pool[i][0] for i in picked], weights=[counts[i] / n for i in picked],
                 value=best, single_value=float(pool[0][0]["value"]))


def blend_trials(objective: Any, store: PredictionStore | None, candidates: Sequence[Mapping[str, Any]],
                 max_members: int) -> Blend | None:
    """:func:`greedy_blend` of ``candidates`` by the predictions ``store`` kept, scored against the
    fold targets and with the metric of ``objective`` (a :class:`~src.mlops.objectives.ModelObjective`;
    a family search's first family's: every family is scored on the same rows); ``None`` without a store
    or where predictions do not average."""
    if store is None or len(store) < 2 or not objective.blends_predictions:
        return None
    return greedy_blend(candidates, store, objective.fold_targets(), objective.metric, labels=objective.labels,
                        max_members=max_members)
