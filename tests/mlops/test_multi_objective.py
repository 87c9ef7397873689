"""Multi-objective tuning (SPEC F7, issue 10 item 3): the metric against latency and size, the Pareto
front, the pick rule, and settings refused before any study exists. Real fits on small data."""

from __future__ import annotations

import pickle

import optuna
import pytest

from src.mlops.errors import ConfigurationError
from src.mlops.multi_objective import (
    LATENCY_NOISE,
    Objectives,
    ParetoPick,
    check_multi_settings,
    pick_point,
)
from src.mlops.optuna_optimizer import run_hyperparameter_optimization


def _dominates(a: list[float], b: list[float], signs: list[float]) -> bool:
    return all(s * x <= s * y for x, y, s in zip(a, b, signs)) and any(s * x < s * y for x, y, s in zip(a, b, signs))


async def test_front_is_non_dominated_and_the_pick_obeys_the_rule(binary_data) -> None:
    X_tr, y_tr, X_va, y_va = binary_data
    storage = optuna.storages.InMemoryStorage()
    result = await run_hyperparameter_optimization(
        "lightgbm,logistic_regression", "binary_classification", X_tr, y_tr, X_va, y_va,
        objectives=["roc_auc", "latency", "size"], pick_tolerance=0.02, n_trials=12, seed=0,
        study_name="mo", storage=storage, pruner="median")
    assert result.directions == ("maximize", "minimize", "minimize")
    assert result.objectives == ["roc_auc", "latency", "size"]
    study = optuna.load_study(study_name="mo", storage=storage)
    assert study.user_attrs["pruner"] == "NopPruner"  # Optuna cannot prune a multi-objective study
    assert study.metric_names == ["roc_auc", "latency", "size"]
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) == result.n_completed >= 10
    for t in done:  # one value per objective, the costs measured (and kept as attributes too)
        assert t.values[1] == t.user_attrs["latency"] > 0 and t.values[2] == t.user_attrs["size"] > 0
        assert not t.intermediate_values  # nothing reported: no pruning
    signs = [-1.0, 1.0, 1.0]
    front = result.pareto_front
    numbers = {p["number"] for p in front}
    by_number = {t.number: t for t in done}
    for p in front:  # non-dominated by any completed trial, and every non-dominated trial is on it
        assert not any(_dominates(t.values, by_number[p["number"]].values, signs) for t in done)
        assert p["family"] == p["params"]["model"]
    for t in done:
        if t.number not in numbers:
            assert any(_dominates(by_number[n].values, t.values, signs) for n in numbers)
    # the rule: the fastest point (latency within the noise band) among those within 2 % of the best roc_auc
    pick = result.pick
    best = max(p["values"]["roc_auc"] for p in front)
    within = [p for p in front if p["values"]["roc_auc"] >= best - 0.02 * best - 1e-12]
    assert sorted(pick["within_tolerance"]) == sorted(p["number"] for p in within)
    fastest = min(p["values"]["latency"] for p in within)
    assert pick["values"]["latency"] <= fastest * (1 + LATENCY_NOISE) + 1e-9
    assert pick["rule"] == "fastest" and pick["tolerance"] == 0.02 and pick["best_metric"] == best
    # the picked point is what the result trains: best_* and merged_params are the picked trial's
    assert result.best_trial_number == pick["number"] and result.best_values == list(by_number[pick["number"]].values)
    assert result.best_value == pick["values"]["roc_auc"]
    assert result.algorithm == pick["family"]
    unprefixed = {k.split("__", 1)[1]: v for k, v in pick["params"].items() if k != "model"}
    assert unprefixed.items() <= result.merged_params.items()


def test_pick_rules_on_a_known_front() -> None:
    objs = Objectives("roc_auc", ("latency", "size"), "maximize")
    front = [{"number": 0, "values": {"roc_auc": 0.95, "latency": 20.0, "size": 900.0}, "params": {}, "family": None},
             {"number": 1, "values": {"roc_auc": 0.945, "latency": 5.0, "size": 5000.0}, "params": {}, "family": None},
             {"number": 2, "values": {"roc_auc": 0.944, "latency": 5.2, "size": 100.0}, "params": {}, "family": None},
             {"number": 3, "values": {"roc_auc": 0.90, "latency": 1.0, "size": 10.0}, "params": {}, "family": None}]
    # 5.2 ms is within the timing-noise band of 5.0 ms: the smaller model wins the tie
    assert pick_point(front, objs, ParetoPick("fastest", 0.01))["number"] == 2
    assert pick_point(front, objs, ParetoPick("fastest", 0.0))["number"] == 0
    assert pick_point(front, objs, ParetoPick("smallest", 0.01))["number"] == 2
    assert pick_point(front, objs, ParetoPick("best_metric", 0.5))["number"] == 0
    assert pick_point(front, objs, ParetoPick("fastest", 0.06))["number"] == 3
    rmse = Objectives("rmse", ("size",), "minimize")
    front = [{"number": 0, "values": {"rmse": 10.0, "size": 900.0}}, {"number": 1, "values": {"rmse": 10.05, "size": 50.0}},
             {"number": 2, "values": {"rmse": 12.0, "size": 5.0}}]
    assert pick_point(front, rmse, ParetoPick("smallest", 0.01))["number"] == 1


@pytest.mark.parametrize("kwargs, fragment", [
    ({"objectives": ["roc_auc", "latency"], "problem_type": "regression"}, "objectives must start with a metric of regression"),
    ({"objectives": ["latency", "roc_auc"]}, "objectives must start with a metric"),
    ({"objectives": ["roc_auc", "size", "size"]}, "objectives must name each objective once; size"),
    ({"objectives": ["roc_auc", "accuracy"]}, "'accuracy' is a second metric"),
    ({"objectives": ["roc_auc", "memory"]}, "'memory' is unknown"),
    ({"objectives": ["roc_auc", "latency"], "metric": "accuracy"}, "differs from metric 'accuracy'"),
    ({"objectives": ["roc_auc", "latency"], "pick_tolerance": 1.0}, "pick_tolerance must be a fraction 0 <= tolerance < 1"),
    ({"objectives": ["roc_auc", "latency"], "pick_tolerance": -0.1}, "pick_tolerance must be a fraction"),
    ({"objectives": ["roc_auc", "size"], "pick_rule": "fastest"}, "'fastest' needs 'latency'"),
    ({"objectives": ["roc_auc", "size"], "pick_rule": "cheapest"}, "pick_rule must be one of"),
    ({"objectives": ["roc_auc"], "pick_rule": "fastest"}, "pick_rule must be left out of a single-objective study"),
    ({"objectives": ["roc_auc", "latency"], "sampler": "hyperopt"}, "sampler must drive several objectives: 'hyperopt' is single-objective"),
    ({"objectives": ["roc_auc", "latency"], "patience": 5}, "patience applies to single-objective studies only"),
])
async def test_bad_settings_fail_before_any_study_exists(binary_data, kwargs, fragment) -> None:
    X_tr, y_tr, X_va, y_va = binary_data
    storage = optuna.storages.InMemoryStorage()
    problem = kwargs.pop("problem_type", "binary_classification")
    y = y_tr.astype(float) if problem == "regression" else y_tr
    yv = y_va.astype(float) if problem == "regression" else y_va
    with pytest.raises(ConfigurationError, match=fragment.replace("(", r"\(")):
        await run_hyperparameter_optimization("lightgbm", problem, X_tr, y, X_va, yv, n_trials=2, storage=storage,
                                              study_name="never", **kwargs)
    assert storage.get_all_studies() == []


def test_objectives_checked_without_a_problem_type_then_with_it() -> None:
    objs, pick = check_multi_settings(objectives="rmse,size", problem_type=None)
    assert objs is not None and objs.names == ("rmse", "size") and pick == ParetoPick("smallest", 0.01)
    with pytest.raises(ConfigurationError, match="objectives must start with a metric of binary_classification"):
        check_multi_settings(objectives="rmse,size", problem_type="binary_classification")


async def test_size_is_the_pickled_model_and_cv_measures_the_first_fold(binary_data) -> None:
    from src.mlops.objectives import ModelObjective

    X_tr, y_tr, _, _ = binary_data
    objective = ModelObjective("logistic_regression", "binary_classification", X_tr, y_tr, cv=3,
                               objectives=["roc_auc", "size", "latency"])
    ev = objective.evaluate({"C": 1.0})
    score, size, latency = ev.value
    assert 0.9 < score <= 1.0 and latency > 0 and len(ev.user_attrs["fold_scores"]) == 3
    fold0 = objective._get_folds()[0]  # noqa: SLF001 - the same fit, measured again
    from src.mlops.fitting import fit_model

    fitted = fit_model(objective.spec, objective.problem_type, objective.params_for({"C": 1.0}), fold0.X_train,
                       fold0.y_train, preprocessor=fold0.preprocessor, codec=objective.codec, n_threads=1)
    assert abs(size - len(pickle.dumps(fitted.model, protocol=pickle.HIGHEST_PROTOCOL))) <= 16
