"""Model-family selection (SPEC F8, issue 10): the family is a searched categorical. Real fits, small data."""

from __future__ import annotations

import pickle

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from src.mlops.errors import IncompatibleMetricError, SearchSpaceError, UnknownModelError
from src.mlops.family_search import (
    FAMILY_DROPPED,
    MODEL_PARAM,
    PRUNE_REASON_ATTR,
    FamilySearchObjective,
    canonical_algorithm,
    family_names,
    is_family_search,
)
from src.mlops.models import get_model_spec
from src.mlops.optimizer import OptunaOptimizer
from src.mlops.optuna_optimizer import run_hyperparameter_optimization


def test_the_algorithm_setting_names_one_family_a_list_or_auto() -> None:
    assert canonical_algorithm("AUTO") == "auto"
    assert canonical_algorithm("LGBM, xgb,lightgbm") == "lightgbm,xgboost"  # aliases, duplicates dropped
    assert canonical_algorithm(["rf", "logreg"]) == "random_forest,logistic_regression"
    assert canonical_algorithm("XGBoost") == "xgboost" and not is_family_search("xgb")
    assert is_family_search("auto") and is_family_search("lightgbm,ridge") and not is_family_search(["lgbm"])
    with pytest.raises(UnknownModelError, match="'catboost'"):
        canonical_algorithm("lightgbm,catboost")
    with pytest.raises(UnknownModelError, match="stands alone"):
        canonical_algorithm("auto,lightgbm")
    # auto: only families that take the problem type and can score the metric
    assert family_names("auto", "regression") == ["lightgbm", "xgboost", "random_forest", "extra_trees", "ridge"]
    assert "logistic_regression" in family_names("auto", "binary_classification")
    # a listed family that cannot: an error naming it
    with pytest.raises(UnknownModelError, match="lasso"):
        family_names("lightgbm,lasso", "binary_classification")
    with pytest.raises(IncompatibleMetricError, match="ridge"):
        family_names("lightgbm,ridge", "multiclass_classification", "log_loss")


def test_the_joint_space_has_no_colliding_names_and_each_trial_samples_one_family(small_data) -> None:
    X_tr, y_tr, X_va, y_va = small_data["binary_classification"]
    objective = FamilySearchObjective("auto", "binary_classification", X_tr, y_tr, X_va, y_va)
    space = objective.search_space
    assert space.names[0] == MODEL_PARAM and space[MODEL_PARAM].choices == tuple(objective.families)
    for p in space:
        if p.name == MODEL_PARAM:
            continue
        family, _, param = p.name.partition("__")
        assert family in objective.families and p.when[MODEL_PARAM] == (family,)
        assert param in get_model_spec(family).accepted_params("binary_classification")
        assert all(parent == MODEL_PARAM or parent.startswith(family + "__") for parent in p.when)
    # nested conditions are renamed with their family: dart-only LightGBM params
    assert space["lightgbm__drop_rate"].when == {MODEL_PARAM: ("lightgbm",), "lightgbm__boosting_type": ("dart",)}
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(60):
        trial = study.ask()
        params = objective.suggest(trial)
        family = params[MODEL_PARAM]
        seen.add(family)
        assert all(k == MODEL_PARAM or k.startswith(family + "__") for k in params)
        assert set(params) == {p.name for p in space.active_params(params)}
        if family == "lightgbm":
            assert ("lightgbm__drop_rate" in params) == (params["lightgbm__boosting_type"] == "dart")
        study.tell(trial, 0.5)
    assert seen == set(objective.families)
    assert space == type(space).from_json(space.to_json())  # still data: stored with the study


def test_a_user_space_names_params_by_family(small_data) -> None:
    X_tr, y_tr, X_va, y_va = small_data["binary_classification"]
    space = {"logistic_regression__C": {"type": "float", "low": 0.01, "high": 10.0, "log": True},
             "lightgbm__num_leaves": ("int", 8, 64)}
    objective = FamilySearchObjective("lightgbm,logistic_regression", "binary", X_tr, y_tr, X_va, y_va,
                                      search_space=space)
    assert set(objective.search_space.names) == {MODEL_PARAM, *space}
    with pytest.raises(SearchSpaceError, match="'num_leaves'.*lightgbm__"):
        FamilySearchObjective("lightgbm,logistic_regression", "binary", X_tr, y_tr, X_va, y_va,
                              search_space={"num_leaves": ("int", 8, 64)})
    with pytest.raises(SearchSpaceError, match="logistic_regression does not take 'num_leaves'"):
        FamilySearchObjective("lightgbm,logistic_regression", "binary", X_tr, y_tr, X_va, y_va,
                              search_space={"logistic_regression__num_leaves": ("int", 8, 64)})


async def test_every_familys_defaults_run_first_primary_then_cheapest(small_data) -> None:
    X_tr, y_tr, X_va, y_va = small_data["binary_classification"]
    result = await run_hyperparameter_optimization(
        "lightgbm,random_forest,logistic_regression", "binary", X_tr, y_tr, X_va, y_va, n_trials=7, seed=0)
    stats = result.family_stats
    assert result.families == ["lightgbm", "random_forest", "logistic_regression"]
    # trials 0-2: the defaults, the first listed family's first, then the others cheapest first
    assert [stats[f]["defaults_trial"] for f in ("lightgbm", "logistic_regression", "random_forest")] == [0, 1, 2]
    assert stats["lightgbm"]["n_trials"] >= 4
    assert result.algorithm in result.families and result.best_params[MODEL_PARAM] == result.algorithm
    assert result.family_best[result.algorithm] == result.best_value
    assert all(v is not None for v in result.family_best.values())
    # the final fits' params: the chosen family's defaults, updated by its unprefixed params
    chosen = get_model_spec(result.algorithm)
    assert result.default_params == chosen.default_params("binary_classification", seed=0)
    assert not any("__" in k for k in result.merged_params) and MODEL_PARAM not in result.merged_params
    assert result.defaults_value == stats[result.algorithm]["defaults_value"]


async def test_a_trailing_family_is_dropped_and_its_trials_pruned_without_a_fit(small_data) -> None:
    """LogisticRegression restricted to absurd regularization predicts one class: after two trials
    it trails LightGBM by far more than the margin, and its later trials are pruned before any fit."""
    X_tr, y_tr, X_va, y_va = small_data["binary_classification"]
    objective = FamilySearchObjective(
        "lightgbm,logistic_regression", "binary", X_tr, y_tr, X_va, y_va, metric="accuracy", drop_after=2,
        search_space={"logistic_regression__C": ("float", 1e-7, 1e-6, "log"),
                      "lightgbm__learning_rate": ("float", 0.05, 0.2, "log")})
    opt = OptunaOptimizer()
    study = await opt.create_study(direction="maximize", sampler="random", seed=1, pruner="none")
    result = await opt.optimize(study, objective, n_trials=24, enqueue_defaults=False)
    lr = [t for t in study.trials if t.params[MODEL_PARAM] == "logistic_regression"]
    fitted = [t for t in lr if t.user_attrs.get(PRUNE_REASON_ATTR) != FAMILY_DROPPED]
    dropped = [t for t in lr if t.user_attrs.get(PRUNE_REASON_ATTR) == FAMILY_DROPPED]
    assert len(fitted) == 2 and dropped, [(t.number, t.state.name, t.user_attrs) for t in lr]
    for t in dropped:
        assert t.state == TrialState.PRUNED and "fit_seconds" not in t.user_attrs and not t.intermediate_values
        assert t.params == {MODEL_PARAM: "logistic_regression"}  # nothing else was even sampled
    stats = result.family_stats["logistic_regression"]
    assert stats["dropped"] and stats["n_trials"] == 2 and stats["n_dropped"] == len(dropped)
    assert not result.family_stats["lightgbm"]["dropped"] and result.algorithm == "lightgbm"


async def test_trial_timeout_runs_every_family_in_worker_processes(small_data) -> None:
    X_tr, y_tr, X_va, y_va = small_data["multiclass_classification"]
    result = await run_hyperparameter_optimization(
        "lightgbm,logistic_regression,extra_trees", "multiclass", X_tr, y_tr, X_va, y_va, n_trials=5,
        trial_timeout=120, seed=0)
    assert result.n_completed + result.n_pruned == 5 and result.n_failed == 0
    assert {f for f, s in result.family_stats.items() if s["n_complete"]} == set(result.families)


def test_the_objective_pickles_with_one_copy_of_the_data(small_data) -> None:
    X_tr, y_tr, X_va, y_va = small_data["regression"]
    objective = FamilySearchObjective("auto", "regression", X_tr, y_tr, X_va, y_va)
    copy = pickle.loads(pickle.dumps(objective))
    frames = {id(o.X_train) for o in copy.objectives.values()}
    assert len(frames) == 1  # shared after the round trip: a worker holds the data once
    ev = copy.evaluate(copy.defaults_trials()[0])
    assert copy.by_cost == ["lightgbm", "ridge", "xgboost", "extra_trees", "random_forest"]
    assert ev.user_attrs["family"] == "lightgbm" and np.isfinite(ev.value)


@pytest.mark.parametrize("problem_type", ["binary_classification", "multiclass_classification", "regression",
                                          "anomaly_detection"])
async def test_auto_picks_a_family_for_every_problem_type_and_its_model_predicts(small_data, problem_type) -> None:
    X_tr, y_tr, X_va, y_va = small_data[problem_type]
    opt = OptunaOptimizer()
    objective = opt.create_validation_objective("auto", problem_type, X_tr, y_tr, X_va, y_va, seed=0)
    study = await opt.create_study(direction=objective.direction, seed=0)
    n = len(objective.families)
    result = await opt.optimize(study, objective, n_trials=n + 1, enqueue_portfolio=False)
    assert result.algorithm in objective.families and set(result.family_best) == set(objective.families)
    fitted = objective.fit_final(result.best_params, refit="train+val")
    assert fitted.model.algorithm == result.algorithm
    predictions = fitted.model.predict(X_va)
    assert len(predictions) == len(X_va)
    if problem_type == "multiclass_classification":
        assert set(predictions) <= {"setosa", "versicolor", "virginica"}  # original labels


async def test_an_enqueued_configuration_names_its_family(small_data) -> None:
    X_tr, y_tr, X_va, y_va = small_data["binary_classification"]
    good = {MODEL_PARAM: "logistic_regression", "logistic_regression__C": 0.5}
    result = await run_hyperparameter_optimization("lightgbm,logistic_regression", "binary", X_tr, y_tr, X_va, y_va,
                                                   n_trials=3, enqueue=[good], enqueue_portfolio=False, seed=0)
    assert result.family_stats["logistic_regression"]["n_trials"] == 2
    for bad in ({"logistic_regression__C": 0.5}, {MODEL_PARAM: "lightgbm", "logistic_regression__C": 0.5}):
        with pytest.raises(SearchSpaceError, match="names its family as 'model'"):
            await run_hyperparameter_optimization("lightgbm,logistic_regression", "binary", X_tr, y_tr, X_va, y_va,
                                                  n_trials=3, enqueue=[bad])


async def test_a_single_family_study_is_unchanged(small_data) -> None:
    X_tr, y_tr, X_va, y_va = small_data["binary_classification"]
    result = await run_hyperparameter_optimization("xgb", "binary", X_tr, y_tr, X_va, y_va, n_trials=3, seed=0)
    assert result.algorithm == "xgboost" and result.families == [] and result.family_stats == {}
    assert MODEL_PARAM not in result.best_params and result.study_name.startswith("xgboost-")
    assert result.merged_params == {**result.default_params, **result.best_params}
