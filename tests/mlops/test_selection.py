"""The robust selection rule (src/mlops/selection.py): paired fold-by-fold gains over the defaults."""

from __future__ import annotations

import optuna
import pytest

from src.mlops.selection import robust_choice


def _trial(number: int, folds: list[float], source: str | None = None, **params: float) -> optuna.trial.FrozenTrial:
    attrs = {"fold_scores": folds, **({"source": source} if source else {})}
    return optuna.trial.create_trial(params={"x": float(number), **params},
                                     distributions={"x": optuna.distributions.FloatDistribution(0, 100)},
                                     value=sum(folds) / len(folds), user_attrs=attrs)


def _numbered(trials: list[optuna.trial.FrozenTrial]) -> list[optuna.trial.FrozenTrial]:
    """The trials as a study numbers them (0, 1, ...)."""
    study = optuna.create_study(direction="maximize")
    for t in trials:
        study.add_trial(t)
    return study.trials


def test_a_lead_within_the_fold_noise_keeps_the_defaults():
    trials = _numbered([
        _trial(0, [0.80, 0.82, 0.78, 0.81, 0.79], "defaults"),
        _trial(1, [0.86, 0.79, 0.75, 0.85, 0.78]),  # best mean (+0.006), but up and down fold by fold
    ])
    choice = robust_choice(trials, "maximize")
    assert choice is not None and choice.number == 0 and choice.best_number == 1
    assert choice.best_gain == pytest.approx(0.006) and "the defaults are kept" in choice.reason


def test_the_most_reliable_gain_wins_over_a_larger_noisy_one():
    trials = _numbered([
        _trial(0, [0.80, 0.82, 0.78, 0.81, 0.79], "defaults"),
        _trial(1, [0.90, 0.80, 0.76, 0.88, 0.80]),  # mean gain +0.028, noisy
        _trial(2, [0.82, 0.84, 0.80, 0.83, 0.81]),  # +0.02 on every fold
    ])
    choice = robust_choice(trials, "maximize")
    assert choice.number == 2 and choice.best_number == 1
    assert choice.gain == pytest.approx(0.02) and choice.gain_se == pytest.approx(0.0, abs=1e-12)
    # minimizing: lower is better, the same rule mirrored
    mirrored = _numbered([_trial(t.number, [1 - v for v in t.user_attrs["fold_scores"]],
                                 t.user_attrs.get("source")) for t in trials])
    assert robust_choice(mirrored, "minimize").number == 2


def test_the_rule_does_not_apply_without_fold_scores_or_defaults():
    holdout = _numbered([_trial(0, [0.8], "defaults"), _trial(1, [0.9])])
    assert robust_choice(holdout, "maximize") is None  # one score: no spread to judge by
    no_defaults = _numbered([_trial(0, [0.8, 0.7]), _trial(1, [0.9, 0.8])])
    assert robust_choice(no_defaults, "maximize") is None
