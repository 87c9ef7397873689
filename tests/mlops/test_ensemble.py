"""Which trials an averaged final model may use: the best distinct configurations, never one worse
than the defaults, and only of the best one's family."""

from __future__ import annotations

import optuna

from src.mlops.ensemble import ensemble_members, top_trials
from src.mlops.family_search import split_family_params


def _trial(number: int, value: float | None, params: dict, *, state=optuna.trial.TrialState.COMPLETE):
    dists = {k: (optuna.distributions.CategoricalDistribution(["lightgbm", "random_forest"]) if k == "model"
                 else optuna.distributions.FloatDistribution(0, 100)) for k in params}
    t = optuna.trial.create_trial(params=params, distributions=dists, value=value, state=state,
                                  user_attrs={"fit_seconds": 1.0, "best_iteration": 10 + number, "noise": "x"})
    t.number = number
    return t


def test_top_trials_are_the_best_distinct_complete_ones_best_first():
    trials = [_trial(0, 0.80, {"x": 1.0}), _trial(1, 0.90, {"x": 2.0}), _trial(2, 0.90, {"x": 2.0}),  # a repeat
              _trial(3, 0.85, {"x": 3.0}), _trial(4, None, {"x": 4.0}, state=optuna.trial.TrialState.PRUNED),
              _trial(5, 0.95, {"x": 5.0})]
    top = top_trials(trials, "maximize", limit=3)
    assert [t["number"] for t in top] == [5, 1, 3]
    assert top[0] == {"number": 5, "value": 0.95, "params": {"x": 5.0},
                      "user_attrs": {"fit_seconds": 1.0, "best_iteration": 15}}  # only the attrs a fit needs
    assert [t["number"] for t in top_trials(trials, "minimize")] == [0, 3, 1, 5]


def test_members_stop_at_the_defaults_and_keep_to_the_best_ones_family():
    cands = top_trials([_trial(0, 0.80, {"x": 1.0}), _trial(1, 0.90, {"x": 2.0}), _trial(2, 0.85, {"x": 3.0}),
                        _trial(3, 0.79, {"x": 4.0})], "maximize")
    assert [m["number"] for m in ensemble_members(cands, 3, direction="maximize", defaults_value=0.80)] == [1, 2, 0]
    assert [m["number"] for m in ensemble_members(cands, 5, direction="maximize", defaults_value=0.82)] == [1, 2]
    assert [m["number"] for m in ensemble_members(cands, 1, direction="maximize")] == [1]
    assert ensemble_members([], 3, direction="maximize") == []
    fam = top_trials([_trial(0, 0.9, {"model": "lightgbm", "x": 1.0}),
                      _trial(1, 0.8, {"model": "random_forest", "x": 2.0}),
                      _trial(2, 0.7, {"model": "lightgbm", "x": 3.0})], "maximize")
    same = ensemble_members(fam, 3, direction="maximize", same_family=lambda p: split_family_params(p)[0])
    assert [m["number"] for m in same] == [0, 2]


def test_only_boosters_are_averaged():
    """A forest is already an average of trees: its best configuration is deployed alone."""
    from src.mlops.ensemble import averages_well
    from src.mlops.models import get_model_spec

    assert averages_well(get_model_spec("lightgbm")) and averages_well(get_model_spec("xgboost"))
    assert not averages_well(get_model_spec("extra_trees")) and not averages_well(get_model_spec("random_forest"))
    family = lambda p: split_family_params(p)[0]  # noqa: E731
    averaged = lambda p: averages_well(get_model_spec(family(p)))  # noqa: E731
    forests = top_trials([_trial(0, 0.9, {"model": "random_forest", "x": 1.0}),
                          _trial(1, 0.8, {"model": "random_forest", "x": 2.0})], "maximize")
    assert [m["number"] for m in ensemble_members(forests, 3, direction="maximize", same_family=family,
                                                   averaged=averaged)] == [0]
    boosters = top_trials([_trial(0, 0.9, {"model": "lightgbm", "x": 1.0}),
                           _trial(1, 0.8, {"model": "lightgbm", "x": 2.0})], "maximize")
    assert [m["number"] for m in ensemble_members(boosters, 3, direction="maximize", same_family=family,
                                                   averaged=averaged)] == [0, 1]
