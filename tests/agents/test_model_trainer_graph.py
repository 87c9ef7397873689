"""End-to-end runs of the model-trainer graph with real data, models, Optuna and MLflow."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from sklearn.datasets import load_breast_cancer, load_iris

from src.agents.ml_foundation.model_trainer import (
    ModelTrainerContext,
    build_model_trainer_graph,
    load_run_artifact,
)
from src.agents.ml_foundation.model_trainer.nodes.model_evaluator import score_model
from src.mlops.splits import load_frame_ref
from src.mlops.tracking import MLflowTracker

from .conftest import make_messy_frame


def _assert_plain_json(state: dict) -> None:
    """The state must survive a JSON round trip unchanged (no DataFrames, numpy or dataclasses)."""
    assert json.loads(json.dumps(state, allow_nan=False)) == state


async def test_breast_cancer_end_to_end_with_mlflow(tmp_path: Path, context: ModelTrainerContext, monkeypatch) -> None:
    uri = f"sqlite:///{(tmp_path / 'mlflow.db').as_posix()}"
    tracker = MLflowTracker(tracking_uri=uri, experiment_name="trainer-test")
    context.tracker = tracker
    graph = build_model_trainer_graph()
    try:
        final = await graph.ainvoke({"dataset_name": "breast_cancer", "n_trials": 5, "refit": "train", "scheme": "holdout",
                                     "ensemble_size": 1},  # the validation score is then the best trial's
                                   context=context)
    finally:
        await tracker.aclose()

    assert final["status"] == "completed", final.get("error")
    assert final["error"] is None
    assert final["problem_type"] == "binary_classification"
    assert final["metric"] == "roc_auc"
    _assert_plain_json(final)

    hpo = final["hpo"]
    assert hpo["enabled"] is True
    assert hpo["study_name"] == f"trainer-{final['run_id']}"
    assert hpo["n_trials"] == 5 and hpo["n_completed"] + hpo["n_pruned"] + hpo["n_failed"] == 5
    assert hpo["best_value"] >= hpo["defaults_value"]  # defaults are trial 0
    assert final["merged_params"]["random_state"] == 42

    for key in ("test_metrics", "defaults_test_metrics", "validation_metrics"):
        assert set(final[key]) == {"roc_auc", "accuracy", "f1", "log_loss"}
        assert all(v is not None for v in final[key].values())
    assert 0.9 < final["test_metrics"]["roc_auc"] <= 1.0
    # refit="train": the final model is fitted exactly like the best trial: same validation score
    assert final["validation_metrics"]["roc_auc"] == pytest.approx(hpo["best_value"], abs=1e-9)
    assert final["split_sizes"] == {"train": 343, "val": 113, "test": 113}

    model, metadata = load_run_artifact(final, final["model_path"])
    X_test = load_frame_ref(final["splits"]["test_X"])
    pred = model.predict(X_test)
    assert len(pred) == len(X_test) and set(np.unique(pred)) <= {0, 1}
    assert metadata["params"] == final["merged_params"]
    assert metadata["dataset_fingerprint"] == final["dataset_fingerprint"]
    assert metadata["study_name"] == hpo["study_name"]
    assert metadata["test_metrics"] == final["test_metrics"]
    assert metadata["mlflow_run_id"] == final["mlflow_run_id"]
    assert {"python", "sklearn", "lightgbm", "xgboost", "optuna", "pandas"} <= set(metadata["library_versions"])
    assert Path(final["model_path"]).is_relative_to(context.hpo_home / "runs" / final["run_id"])
    defaults_model, defaults_meta = load_run_artifact(final, final["defaults_model_path"])
    assert defaults_meta["kind"] == "defaults" and defaults_meta["params"] == final["default_params"]

    # MLflow: parent run for the study, a nested run per trial, the model under the parent
    assert final["mlflow_run_id"] and final["mlflow_dropped_writes"] == 0
    client = MlflowClient(tracking_uri=uri)
    parent = client.get_run(final["mlflow_run_id"])
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["hpo.study_name"] == hpo["study_name"]
    assert parent.data.metrics["test_roc_auc"] == pytest.approx(final["test_metrics"]["roc_auc"])
    children = client.search_runs([parent.info.experiment_id],
                                  filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    assert sorted(int(r.data.tags["hpo.trial_number"]) for r in children) == [0, 1, 2, 3, 4]
    assert final["mlflow_model_uri"]
    # the logged model is a pyfunc that takes the raw rows (the cleaning travels with it)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    import mlflow.pyfunc

    raw = load_breast_cancer(as_frame=True).frame.loc[X_test.index]
    pyfunc = mlflow.pyfunc.load_model(final["mlflow_model_uri"])
    np.testing.assert_array_equal(np.asarray(pyfunc.predict(raw)), model.predict(raw))


async def test_refit_train_val_uses_train_and_validation_rows(context: ModelTrainerContext) -> None:
    """refit="train+val": the deployed model is fitted on train+val, with the best holdout trial's
    rounds scaled up; its validation score is the study's (it has seen the validation rows)."""
    space = {"learning_rate": {"type": "float", "low": 0.03, "high": 0.3, "log": True}}  # gbdt: early stopping
    final = await build_model_trainer_graph().ainvoke({"dataset_name": "breast_cancer", "n_trials": 4,
                                                       "search_space": space, "refit": "train+val",
                                                       "scheme": "holdout", "ensemble_size": 1}, context=context)
    assert final["status"] == "completed", final.get("error")
    training, hpo, sizes = final["training"], final["hpo"], final["split_sizes"]
    assert training["refit"] == "train+val" and training["fitted_on"] == "train+val"
    assert "deployed" not in training and final["evaluated_model_path"] == final["model_path"]
    assert training["best_iteration"] == hpo["best_iteration"] and hpo["best_fit_rows"] == sizes["train"]
    grown = (sizes["train"] + sizes["val"]) / sizes["train"]
    # classification: the rounds grow with the square root of the rows (src.mlops.fitting.ROUNDS_EXPONENT)
    assert training["n_rounds"] == max(1, round(hpo["best_iteration"] * grown ** 0.5)) > hpo["best_iteration"]
    assert final["validation_metrics"] == {"roc_auc": hpo["best_value"]}
    model, _ = load_run_artifact(final, final["model_path"])
    assert model.estimator.n_estimators == training["n_rounds"]
    assert set(final["test_metrics"]) == {"roc_auc", "accuracy", "f1", "log_loss"}
    assert final["test_metrics"]["roc_auc"] > 0.9


async def test_default_refit_deploys_a_model_fitted_on_every_row(context: ModelTrainerContext) -> None:
    """refit="all" (default): the test metrics are those of a model fitted on train+val (scored
    before the refit); the saved model is then refit on train+val+test, with the rounds the study
    found scaled to all rows, and its metadata says whose test metrics it carries."""
    space = {"learning_rate": {"type": "float", "low": 0.03, "high": 0.3, "log": True}}  # gbdt: early stopping
    final = await build_model_trainer_graph().ainvoke({"dataset_name": "breast_cancer", "n_trials": 4,
                                                       "search_space": space, "ensemble_size": 1}, context=context)
    assert final["status"] == "completed", final.get("error")
    training, hpo, sizes = final["training"], final["hpo"], final["split_sizes"]
    n_trainval, n_all = sizes["train"] + sizes["val"], sum(sizes.values())
    assert training["refit"] == "all" and training["fitted_on"] == "train+val" and training["fit_rows"] == n_trainval
    deployed = training["deployed"]
    assert deployed["refit"] == "train+val+test" and deployed["fit_rows"] == n_all
    # the study's early-stopped round count, found on fits of best_fit_rows rows, scaled to the fit's
    # rows (a classifier's by the square root of their growth)
    assert training["n_rounds"] == round(hpo["best_iteration"] * (n_trainval / hpo["best_fit_rows"]) ** 0.5)
    assert deployed["n_rounds"] == round(hpo["best_iteration"] * (n_all / hpo["best_fit_rows"]) ** 0.5) > training["n_rounds"]

    assert final["evaluated_model_path"] != final["model_path"]
    deployed_model, meta = load_run_artifact(final, final["model_path"])
    evaluated_model, evaluated_meta = load_run_artifact(final, final["evaluated_model_path"])
    assert deployed_model.estimator.n_estimators == deployed["n_rounds"]
    assert meta["kind"] == "deployed" and meta["fitted_on"] == "train+val+test" and meta["fit_rows"] == n_all
    assert meta["test_metrics_of"] == "evaluated_model" and "train+validation+test" in meta["test_metrics_note"]
    assert meta["test_metrics"] == final["test_metrics"] == evaluated_meta["test_metrics"]
    assert evaluated_meta["fitted_on"] == "train+val"
    # the reported test score is the evaluated model's, recomputed here from the test split
    X_test, y_test = load_frame_ref(final["splits"]["test_X"]), load_frame_ref(final["splits"]["test_y"])
    scores, _ = score_model(evaluated_model.model, X_test, y_test, ["roc_auc"], "binary_classification")
    assert scores["roc_auc"] == pytest.approx(final["test_metrics"]["roc_auc"], abs=1e-12)
    # ... and not the deployed model's, which has seen those rows
    seen, _ = score_model(deployed_model.model, X_test, y_test, ["log_loss"], "binary_classification")
    assert seen["log_loss"] < final["test_metrics"]["log_loss"]


async def test_an_ensemble_averages_the_best_configurations_in_the_evaluated_and_the_deployed_model(
        context: ModelTrainerContext) -> None:
    """ensemble_size=3: the final model is the average of the study's 3 best distinct configurations
    (each refit like the best one); the test metrics are that average's, and the deployed model is
    the same average refit on every row."""
    from src.mlops.objectives import AveragedModel, TunedModel

    space = {"learning_rate": {"type": "float", "low": 0.03, "high": 0.3, "log": True},
             "num_leaves": {"type": "int", "low": 4, "high": 64}}
    final = await build_model_trainer_graph().ainvoke({"dataset_name": "breast_cancer", "n_trials": 10,
                                                       "search_space": space, "ensemble_size": 3}, context=context)
    assert final["status"] == "completed", final.get("error")
    hpo = final["hpo"]
    members = hpo["ensemble"]
    assert len(members) == 3 and members[0]["number"] == hpo["best_trial_number"]
    assert members[0]["params"] == final["merged_params"]
    assert len({json.dumps(m["params"], sort_keys=True) for m in members}) == 3
    values = [m["value"] for m in members]
    assert values == sorted(values, reverse=True) and values[-1] >= hpo["defaults_value"]
    _assert_plain_json(final)

    evaluated, meta = load_run_artifact(final, final["evaluated_model_path"])
    deployed, _ = load_run_artifact(final, final["model_path"])
    for model in (evaluated.model, deployed.model):
        assert type(model) is AveragedModel and [type(m) for m in model.members] == [TunedModel] * 3
        assert [m.estimator.get_params()["num_leaves"] for m in model.members] == [m["params"]["num_leaves"]
                                                                                     for m in members]
    assert [m.estimator.n_estimators for m in deployed.model.members] == [
        round(m["best_iteration"] * (sum(final["split_sizes"].values()) / m["fit_rows"]) ** 0.5) for m in members]
    assert meta["hpo"]["ensemble"] == members
    X_test, y_test = load_frame_ref(final["splits"]["test_X"]), load_frame_ref(final["splits"]["test_y"])
    scores, _ = score_model(evaluated.model, X_test, y_test, ["roc_auc", "log_loss"], "binary_classification")
    assert scores == pytest.approx({k: final["test_metrics"][k] for k in scores}, abs=1e-12)
    proba = np.mean([m.predict_proba(X_test) for m in evaluated.model.members], axis=0)
    np.testing.assert_allclose(evaluated.model.predict_proba(X_test), proba)
    # the raw-rows wrapper serves the average too
    assert evaluated.predict(X_test).shape == (len(X_test),)


async def test_an_ensemble_of_one_is_the_best_model_alone(context: ModelTrainerContext) -> None:
    from src.mlops.objectives import AveragedModel

    final = await build_model_trainer_graph().ainvoke({"dataset_name": "iris", "n_trials": 6, "ensemble_size": 1},
                                                      context=context)
    assert final["status"] == "completed", final.get("error")
    assert "ensemble" not in final["hpo"]
    model, _ = load_run_artifact(final, final["model_path"])
    assert type(model.model) is not AveragedModel


async def test_trial_progress_is_streamed(context: ModelTrainerContext) -> None:
    graph = build_model_trainer_graph()
    events = [
        chunk async for chunk in graph.astream(
            {"dataset_name": "breast_cancer", "n_trials": 4}, context=context, stream_mode="custom"
        )
    ]
    trials = [e for e in events if e["event"] == "trial"]
    assert len(trials) == 4
    assert sorted(e["number"] for e in trials) == [0, 1, 2, 3]
    assert [e["n_done"] for e in trials] == [1, 2, 3, 4]
    for e in trials:
        assert e["n_trials"] == 4
        assert e["state"] in ("COMPLETE", "PRUNED", "FAIL")
        assert (e["value"] is not None) == (e["state"] == "COMPLETE")
    best = [e["best_value"] for e in trials if e["best_value"] is not None]
    assert best == sorted(best)  # roc_auc: the best so far never decreases
    assert events[0]["event"] == "study_start" and events[-1]["event"] == "study_end"


@pytest.mark.parametrize("algorithm", ["lightgbm", "logistic_regression"])
async def test_messy_csv_completes(messy_csv: Path, context: ModelTrainerContext, algorithm: str) -> None:
    graph = build_model_trainer_graph()
    final = await graph.ainvoke(
        {"data_path": str(messy_csv), "target": "churn", "algorithm": algorithm, "n_trials": 4, "seed": 1},
        context=context,
    )
    assert final["status"] == "completed", final.get("error")
    assert final["algorithm"] == algorithm
    assert "customer_id" in final["dropped_columns"]
    assert "identifier" in final["dropped_columns"]["customer_id"]
    assert {"city", "plan"} <= set(final["dataset_info"]["categorical_columns"])
    assert final["dataset_info"]["class_labels"] == ["no", "yes"]
    assert final["test_metrics"]["roc_auc"] is not None and final["test_metrics"]["roc_auc"] > 0.6
    model, _ = load_run_artifact(final, final["model_path"])
    raw = make_messy_frame(n=20, seed=5)
    X_new = raw.drop(columns=["customer_id", "churn"])
    X_new["city"] = X_new["city"].astype("category")
    X_new["plan"] = X_new["plan"].astype("category")
    assert set(model.predict(X_new)) <= {"no", "yes"}  # predictions in the original label space
    _assert_plain_json(final)


async def test_in_memory_dataframe(context: ModelTrainerContext) -> None:
    frame = load_iris(as_frame=True).frame
    frame["target"] = frame["target"].map({0: "setosa", 1: "versicolor", 2: "virginica"})
    context.data = frame
    final = await build_model_trainer_graph().ainvoke(
        {"target": "target", "algorithm": "random_forest", "n_trials": 3, "metric": "accuracy"}, context=context
    )
    assert final["status"] == "completed", final.get("error")
    assert final["problem_type"] == "multiclass_classification"
    assert set(final["test_metrics"]) == {"accuracy", "f1_macro", "log_loss"}
    assert final["dataset_info"]["source"] == "<dataframe>"
    assert Path(final["data_ref"]["X"]["path"]).is_relative_to(context.hpo_home / "runs" / final["run_id"] / "data")
    _assert_plain_json(final)


async def test_in_memory_arrays_without_tuning(context: ModelTrainerContext) -> None:
    X, y = load_breast_cancer(return_X_y=True)
    context.data = (X, y)
    final = await build_model_trainer_graph().ainvoke({"tuning_enabled": False}, context=context)
    assert final["status"] == "completed", final.get("error")
    assert final["hpo"] == {"enabled": False, "algorithm": "lightgbm", "metric": "roc_auc", "direction": "maximize"}
    assert final["merged_params"] == final["default_params"]
    assert final["defaults_model_path"] == final["evaluated_model_path"]  # one fit only
    assert final["defaults_test_metrics"] == final["test_metrics"]
    assert final["target"] == "target" and final["dataset_info"]["n_features"] == 30
    _assert_plain_json(final)


def _csv(tmp_path: Path, frame: pd.DataFrame | None, name: str = "data.csv") -> str:
    path = tmp_path / name
    if frame is None:
        path.write_bytes(b"")
    else:
        frame.to_csv(path, index=False)
    return str(path)


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("missing_target", ["'label'", "not in dataset"]),
        ("unknown_algorithm", ["unknown algorithm 'catboostx'", "lightgbm", "xgboost"]),
        ("one_class", ["single class", "at least two classes"]),
        ("empty_file", ["empty"]),
        ("bad_search_space", ["num_leaves", "low"]),
        ("metric_for_other_problem", ["rmse", "binary_classification"]),
        ("drop_columns_not_a_list", ["drop_columns must be a list of column names", "'x1'"]),
        ("drop_columns_unknown", ["drop_columns: 'x3' is not a column of the data", "'x1', 'x2', 'target'"]),
    ],
)
async def test_bad_input_fails_with_clear_error(tmp_path: Path, context: ModelTrainerContext, case: str,
                                                expected: list[str]) -> None:
    good = pd.DataFrame({"x1": np.arange(60.0), "x2": np.arange(60.0) % 7, "target": np.arange(60) % 2})
    state: dict = {"data_path": _csv(tmp_path, good), "target": "target", "n_trials": 2}
    if case == "missing_target":
        state["target"] = "label"
    elif case == "unknown_algorithm":
        state["algorithm"] = "catboostx"
    elif case == "one_class":
        state["data_path"] = _csv(tmp_path, good.assign(target="yes"), "one_class.csv")
    elif case == "empty_file":
        state["data_path"] = _csv(tmp_path, None, "empty.csv")
    elif case == "bad_search_space":
        state["search_space"] = {"num_leaves": {"type": "int", "low": 50, "high": 10}}
    elif case == "metric_for_other_problem":
        state["metric"] = "rmse"
    elif case == "drop_columns_not_a_list":
        state["drop_columns"] = "x1"
    elif case == "drop_columns_unknown":
        state["drop_columns"] = ["x3"]
    final = await build_model_trainer_graph().ainvoke(state, context=context)
    assert final["status"] == "failed"
    error = final["error"]
    assert error["node"] == "load_data"
    for text in expected:
        assert text in error["message"], error
    assert "splits" not in final or final["splits"] is None  # the run stopped at once
    _assert_plain_json(final)
