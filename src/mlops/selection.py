"""Which trial to deploy when validation scores are noisy: the most reliable gain over the defaults.

With cross-validation every COMPLETE trial carries its per-fold scores (``fold_scores``), and every
trial is scored on the *same* folds. The trial with the best mean was picked out of many noisy
estimates, so its lead over the model's defaults is biased upward (the winner's curse): on a few
hundred rows the "best" configuration often scores below the defaults on new rows.

:func:`robust_choice` compares each trial with the defaults trial fold by fold (paired differences
remove the variance the folds share) and keeps the trial whose gain has the highest lower bound,
``mean(gain) - k * se(gain)`` (``k`` = 1 by default: the one-standard-error rule); when no trial's
bound is above zero, no trial is reliably better than the defaults, and the defaults are chosen.
Nothing changes for studies without fold scores (holdout) or without a COMPLETE defaults trial.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna

from .types import SOURCE_ATTR

__all__ = ["RobustChoice", "SELECTION_RULES", "robust_choice"]

#: ``"best"``: the trial with the best mean validation score; ``"robust"``: :func:`robust_choice`.
SELECTION_RULES = ("best", "robust")

FOLD_SCORES_ATTR = "fold_scores"


@dataclass(frozen=True)
class RobustChoice:
    """The trial :func:`robust_choice` keeps, with the evidence."""

    number: int
    params: dict[str, Any]
    value: float
    user_attrs: dict[str, Any] = field(default_factory=dict)
    #: mean paired gain over the defaults (in the metric's better direction) and its standard error
    gain: float = 0.0
    gain_se: float = 0.0
    best_number: int | None = None
    best_gain: float = 0.0
    best_gain_se: float = 0.0
    reason: str = ""


def _gain(trial: optuna.trial.FrozenTrial, base: Sequence[float], sign: float) -> tuple[float, float] | None:
    scores = trial.user_attrs.get(FOLD_SCORES_ATTR)
    if not isinstance(scores, list) or len(scores) != len(base) or len(base) < 2:
        return None
    diffs = [sign * (float(a) - float(b)) for a, b in zip(scores, base, strict=True)]
    mean = sum(diffs) / len(diffs)
    var = sum((d - mean) ** 2 for d in diffs) / (len(diffs) - 1)
    return mean, math.sqrt(var / len(diffs))


def robust_choice(trials: Sequence[optuna.trial.FrozenTrial], direction: str, *,
                  k: float = 1.0) -> RobustChoice | None:
    """The COMPLETE trial with the highest ``mean - k * se`` paired gain over the (best) defaults trial, or
    the defaults trial when no bound is above zero; ``None`` when the rule does not apply (no fold
    scores, no COMPLETE defaults trial)."""
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE and t.value is not None]
    sign = 1.0 if direction == "maximize" else -1.0
    # a family search has one defaults trial per family: the best of them is the baseline
    defaults = max((t for t in complete if t.user_attrs.get(SOURCE_ATTR) == "defaults"),
                   key=lambda t: (sign * t.value, -t.number), default=None)
    base = None if defaults is None else defaults.user_attrs.get(FOLD_SCORES_ATTR)
    if defaults is None or not isinstance(base, list) or len(base) < 2:
        return None
    best = max(complete, key=lambda t: sign * t.value)
    gains = {t.number: g for t in complete if t is not defaults and (g := _gain(t, base, sign)) is not None}
    if best.number != defaults.number and best.number not in gains:
        return None
    best_gain, best_se = gains.get(best.number, (0.0, 0.0))
    lower = {n: g - k * se for n, (g, se) in gains.items()}
    pick = max(lower, key=lambda n: lower[n], default=None)
    common = dict(best_number=best.number, best_gain=best_gain, best_gain_se=best_se)
    if pick is None or lower[pick] <= 0.0:
        return RobustChoice(
            number=defaults.number, params=dict(defaults.params), value=float(defaults.value),
            user_attrs=dict(defaults.user_attrs), **common,
            reason=(f"no trial beats the defaults by more than {k:g} standard error on the same folds (the best "
                    f"by mean, trial {best.number}, by {best_gain:+.4g} ± {best_se:.2g}): the defaults are kept"))
    chosen = next(t for t in complete if t.number == pick)
    gain, se = gains[pick]
    reason = ("the best trial by mean is also the most reliable gain over the defaults" if pick == best.number else
              f"trial {pick} gains {gain:+.4g} ± {se:.2g} over the defaults on the same folds, the highest lower "
              f"bound; the best by mean, trial {best.number}, gains {best_gain:+.4g} ± {best_se:.2g}")
    return RobustChoice(number=chosen.number, params=dict(chosen.params), value=float(chosen.value),
                        user_attrs=dict(chosen.user_attrs), gain=gain, gain_se=se, reason=reason, **common)
