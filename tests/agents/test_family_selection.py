"""The graph with ``algorithm="auto"`` or a list (SPEC F8, issue 10): the chosen family is tuned, saved,
named everywhere and deployed on raw rows. Real data, real fits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from mlflow import MlflowClient
from sklearn.datasets import load_breast_cancer

from src.agents.ml_foundation.model_trainer import (
    ModelTrainerContext,
    build_model_trainer_graph,
    load_run_artifact,
)
from src.mlops.family_search import MODEL_PARAM
from src.mlops.models import get_model_spec
from src.mlops.tracking import MLflowTracker


async def test_auto_on_breast_cancer_picks_names_and_deploys_a_family(tmp_path: Path,
                                                                       context: ModelTrainerContext) -> None:
    frame = load_breast_cancer(as_frame=True).frame
    csv = tmp_path / "bc.csv"
    frame.to_csv(csv, index=False)
    uri = f"sqlite:///{(tmp_path / 'mlflow.db').as_posix()}"
    context.tracker = tracker = MLflowTracker(tracking_uri=uri, experiment_name="families")
    try:
        final = await build_model_trainer_graph().ainvoke(
            {"data_path": str(csv), "target": "target", "algorithm": "AUTO", "n_trials": 8, "scheme": "holdout"},
            context=context)
    finally:
        await tracker.aclose()
    assert final["status"] == "completed", final.get("error")
    assert final["algorithm"] == "auto"  # the setting, canonical
    hpo = final["hpo"]
    chosen = hpo["chosen_family"]
    assert chosen == hpo["algorithm"] == hpo["best_params"][MODEL_PARAM]
    families = ["lightgbm", "xgboost", "random_forest", "extra_trees", "logistic_regression"]
    assert list(hpo["families"]) == families and set(hpo["family_best"]) == set(families)
    assert hpo["family_best"][chosen] == hpo["best_value"] == max(v for v in hpo["family_best"].values() if v is not None)
    assert all(hpo["families"][f]["defaults_trial"] is not None for f in families)  # every family's defaults ran
    # the final fits: the chosen family's defaults updated by its unprefixed params
    assert set(final["default_params"]) <= set(get_model_spec(chosen).accepted_params("binary_classification"))
    assert set(final["merged_params"]) >= set(final["default_params"])
    assert not any("__" in k for k in final["merged_params"])
    model, meta = load_run_artifact(final, final["model_path"])
    assert meta["algorithm"] == chosen and meta["hpo"]["chosen_family"] == chosen
    assert meta["hpo"]["family_best"] == hpo["family_best"]
    _, evaluated = load_run_artifact(final, final["evaluated_model_path"])
    assert evaluated["algorithm"] == chosen
    raw = pd.read_csv(csv).drop(columns=["target"]).head(25)
    proba = model.predict_proba(raw)
    assert proba.shape == (25, 2) and np.allclose(proba.sum(axis=1), 1.0)
    assert set(model.predict(raw)) <= {0, 1}
    assert json.loads(json.dumps(final, allow_nan=False)) == final  # the state stays plain JSON
    parent = MlflowClient(tracking_uri=uri).get_run(final["mlflow_run_id"])
    assert parent.data.tags["hpo.chosen_family"] == chosen and parent.data.params["final.algorithm"] == chosen
    assert parent.data.metrics[f"family_best.{chosen}"] == hpo["best_value"]
    assert parent.data.params["algorithm"] == ",".join(families)  # what the study searched


async def test_a_list_without_tuning_uses_its_first_family(context: ModelTrainerContext) -> None:
    X, y = load_breast_cancer(return_X_y=True)
    context.data = (X, y)
    final = await build_model_trainer_graph().ainvoke(
        {"algorithm": ["logreg", "lightgbm"], "tuning_enabled": False}, context=context)
    assert final["status"] == "completed", final.get("error")
    assert final["algorithm"] == "logistic_regression,lightgbm"
    assert final["hpo"]["algorithm"] == "logistic_regression"
    _, meta = load_run_artifact(final, final["model_path"])
    assert meta["algorithm"] == "logistic_regression"


async def test_a_bad_family_list_fails_before_any_study(tmp_path: Path, context: ModelTrainerContext) -> None:
    good = pd.DataFrame({"x1": np.arange(60.0), "x2": np.arange(60.0) % 7, "target": np.arange(60) % 2})
    csv = tmp_path / "d.csv"
    good.to_csv(csv, index=False)
    for algorithm, expected in (("lightgbm,catboostx", "catboostx"), ("lightgbm,lasso", "lasso")):
        final = await build_model_trainer_graph().ainvoke(
            {"data_path": str(csv), "target": "target", "n_trials": 2, "algorithm": algorithm}, context=context)
        assert final["status"] == "failed" and final["error"]["node"] == "load_data"
        assert expected in final["error"]["message"] and not final.get("hpo")
    final = await build_model_trainer_graph().ainvoke(
        {"data_path": str(csv), "target": "target", "n_trials": 2, "algorithm": "auto",
         "search_space": {"num_leaves": ("int", 8, 64)}}, context=context)
    assert final["status"] == "failed" and "lightgbm__" in final["error"]["message"]


async def test_the_tuner_deploys_the_preferred_familys_best_trial_when_the_lead_is_within_the_noise() -> None:
    """A family search deploys its first family's best trial when the best trial (another family's)
    leads it by no more than FAMILY_K standard errors on the same folds (selection.family_choice); the
    deployed trial's family, defaults and ensemble follow, and a time budget too short for its final
    fits keeps the best trial. Real folds and fits."""
    import optuna
    from sklearn.datasets import make_classification

    from src.agents.ml_foundation.model_trainer.budget import PostStudyReserve
    from src.agents.ml_foundation.model_trainer.nodes.hyperparameter_tuner import _family_of, _prefer_family
    from src.mlops.optuna_optimizer import run_hyperparameter_optimization
    from src.mlops.family_search import split_family_params
    from src.mlops.selection import family_choice

    X, y = make_classification(n_samples=300, n_features=8, n_informative=4, random_state=0)
    X = pd.DataFrame(X, columns=[f"f{i}" for i in range(8)])
    storage = optuna.storages.InMemoryStorage()
    result = await run_hyperparameter_optimization("lightgbm,logistic_regression", "binary", X, y, cv=5,
                                                   n_trials=10, seed=0, storage=storage, study_name="families")
    trials = optuna.load_study(study_name="families", storage=storage).get_trials(
        states=(optuna.trial.TrialState.COMPLETE,))
    # the optimizer applies the rule for the first family: its choice, if any, is a LightGBM trial
    assert result.family_choice == family_choice(trials, "maximize", "lightgbm")
    assert result.family_choice is None or result.family_choice.params[MODEL_PARAM] == "lightgbm"
    # prefer the family that did not win, with every lead "within the noise" (k huge)
    loser = next(f for f in result.families if f != result.algorithm)
    choice = family_choice(trials, "maximize", loser, k=1e9)
    assert choice is not None and choice.params[MODEL_PARAM] == loser and choice.best_number == result.best_trial_number
    result.family_choice = choice
    family_of = _family_of(result.families)
    # a time budget with no time left for the loser's final fits keeps the best trial
    reserve = PostStudyReserve(rows_trainval=300, rows_all=None, default_fit_rows=240, family_of=family_of)
    reserve._maximize = True
    for t in trials:
        reserve._observe(t)
    assert reserve.seconds_for(choice.number) > 0
    assert _prefer_family(result, reserve, 0.0 - reserve.slack - 1.0, family_of) is None
    assert result.algorithm != loser
    # with time (or no budget) it is deployed: number, value, family, its defaults, its params
    assert _prefer_family(result, reserve, 1e6, family_of) == choice.number
    assert (result.best_trial_number, result.best_value, result.algorithm) == (choice.number, choice.value, loser)
    assert result.default_params == get_model_spec(loser).default_params("binary_classification", seed=0)
    assert result.merged_params == {**result.default_params, **split_family_params(choice.params)[1]}
    assert result.defaults_value == result.family_stats[loser]["defaults_value"]
    assert result.top_trials and {family_of(t["params"]) for t in result.top_trials} == {loser}
