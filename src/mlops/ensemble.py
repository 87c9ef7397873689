"""Averaging the study's best configurations: which trials are the candidates (:func:`top_trials`)
and how many of them a final model averages (:func:`ensemble_members`).

A study that ran many trials on a validation split of a few thousand rows (or CV folds of them)
picks its best partly on noise. Deploying the mean of the few best configurations, each refit on
the same rows, keeps what they agree on: on 18 (table, seed) pairs of real tables (plain Optuna
protocol, 25 s studies; ``bench/ensemble_probe.py``, ``bench/RESULTS-ensemble-probe.jsonl``) the
average of the best 3 scored above the single best on the test rows in 12 (median +0.09 %); it lost
most where the second and third trials were poor (Chem97: 2 trials). The fitted average is
:class:`~src.mlops.fitted.AveragedModel`.

Only boosters are averaged (:func:`averages_well`): a random forest or extra-trees model is already
an average of trees, so the mean of three is a bigger forest at three times the predict and save
cost (measured: an ``--algorithm auto`` run on a 900-row table that chose extra trees spent 25 s
fitting, predicting and saving three forests after its study and ended 18 s past its 60 s budget).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import optuna

from .blend import params_key
from .model_spec import ModelSpec
from .types import SOURCE_ATTR

__all__ = ["TOP_TRIALS", "ENSEMBLE_ATTRS", "top_trials", "ensemble_members", "averages_well"]

#: how many of the best trials a result keeps as candidates.
TOP_TRIALS = 10
#: the user attributes a candidate keeps (its final fit's round count and cost).
ENSEMBLE_ATTRS = ("best_iteration", "fit_rows", "fit_seconds", "fold_scores", SOURCE_ATTR)


def top_trials(trials: Sequence[optuna.trial.FrozenTrial], direction: str, *,
               limit: int = TOP_TRIALS) -> list[dict[str, Any]]:
    """The ``limit`` best COMPLETE single-objective trials, best first (ties: the earlier trial), one
    per distinct configuration (a cached or re-enqueued repeat counts once)."""
    done = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE and t.values is not None
            and len(t.values) == 1]
    sign = -1.0 if direction == "maximize" else 1.0
    done.sort(key=lambda t: (sign * float(t.values[0]), t.number))
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for t in done:
        key = params_key(t.params)
        if key in seen:
            continue
        seen.add(key)
        out.append({"number": t.number, "value": float(t.values[0]), "params": dict(t.params),
                    "user_attrs": {k: t.user_attrs[k] for k in ENSEMBLE_ATTRS if k in t.user_attrs}})
        if len(out) == limit:
            break
    return out


def averages_well(spec: ModelSpec) -> bool:
    """Whether a final model averages this family's best configurations: boosters only (see above)."""
    return spec.is_boosting


def ensemble_members(candidates: Sequence[Mapping[str, Any]], size: int, *, direction: str,
                     defaults_value: float | None = None, same_family: Any = None,
                     averaged: Callable[[Mapping[str, Any]], bool] | None = None) -> list[Mapping[str, Any]]:
    """The best of ``candidates`` (``{"value", "params", ...}``, best first) and up to ``size - 1`` more
    that may join it: distinct configurations, at least as good as the defaults trial (a configuration
    worse than the defaults only adds noise), and, when ``same_family`` is given (a callable of the
    params), of the best one's family. ``averaged`` (a callable of the params): whether the best one's
    family is averaged at all (:func:`averages_well`); when it says no, the best alone."""
    if not candidates or size < 1:
        return []
    best = candidates[0]
    if averaged is not None and not averaged(best["params"]):
        return [best]
    chosen, seen = [best], {params_key(best["params"])}
    for c in candidates[1:]:
        if len(chosen) >= size:
            break
        if defaults_value is not None and (c["value"] < defaults_value if direction == "maximize"
                                           else c["value"] > defaults_value):
            break
        key = params_key(c["params"])
        if key in seen or (same_family is not None and same_family(c["params"]) != same_family(best["params"])):
            continue
        seen.add(key)
        chosen.append(c)
    return chosen
