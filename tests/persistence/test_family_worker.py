"""A family search (SPEC F8) joined by a worker: the recipe records the family list, the worker rebuilds the
same joint objective from it. Real PostgreSQL."""

from __future__ import annotations

import optuna
from optuna.trial import TrialState

from src.mlops.optuna_optimizer import run_hyperparameter_optimization
from src.mlops.persistence import create_optuna_storage
from src.mlops.study_recipe import join_study, load_data_source


async def test_a_worker_rebuilds_a_family_search_from_the_recipe(migrated_dsn: str) -> None:
    source = {"kind": "dataset", "name": "breast_cancer", "target": None, "problem_type": None, "time_column": None,
              "split": {"seed": 3}}
    data = load_data_source(source)
    first = await run_hyperparameter_optimization(
        "auto", data.problem_type, data.X_train, data.y_train, data.X_val, data.y_val, n_trials=8, max_trials=2,
        study_name="families", storage=migrated_dsn, data_source=source, seed=3, trial_timeout=120)
    assert first.n_trials == 2 and first.families[0] == "lightgbm"
    study = optuna.load_study(study_name="families", storage=create_optuna_storage(migrated_dsn))
    assert study.user_attrs["hpo.recipe"]["algorithm"] == ",".join(first.families)
    result = await join_study("families", storage=migrated_dsn)
    trials = optuna.load_study(study_name="families", storage=create_optuna_storage(migrated_dsn)).get_trials()
    assert len(trials) == 8 and all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    # every family's defaults were enqueued once (LightGBM's, then cheapest first), whichever process ran them
    defaults = [t.params["model"] for t in trials if t.user_attrs.get("source") == "defaults"]
    assert defaults == ["lightgbm", "logistic_regression", "xgboost", "extra_trees", "random_forest"]
    assert result.algorithm in result.families and set(result.family_best) == set(first.families)
    # the same family search again resumes the study: its budget is used, nothing runs
    again = await run_hyperparameter_optimization(
        "auto", data.problem_type, data.X_train, data.y_train, data.X_val, data.y_val, n_trials=8,
        study_name="families", storage=migrated_dsn, data_source=source, seed=3)
    assert again.n_trials == 8
