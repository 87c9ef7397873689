"""The graph with ``algorithm="auto"`` or a list (SPEC F8, issue 10): the chosen family is tuned, saved,
named everywhere and deployed on raw rows. Real data, real fits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from mlflow import MlflowClient
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes

from src.agents.ml_foundation.model_trainer import (
    ModelTrainerContext,
    build_model_trainer_graph,
    load_run_artifact,
)
from src.mlops.family_search import MODEL_PARAM
from src.mlops.fitted import AveragedModel
from src.mlops.models import get_model_spec
from src.mlops.tracking import MLflowTracker


async def _run_tracked(tmp_path: Path, context: ModelTrainerContext, frame: pd.DataFrame,
                       inputs: dict) -> tuple[Path, str, dict]:
    """The graph on ``frame`` (written as a CSV, target column ``target``) with an MLflow tracker:
    (the CSV, the tracking URI, the final state, completed)."""
    csv = tmp_path / "data.csv"
    frame.to_csv(csv, index=False)
    uri = f"sqlite:///{(tmp_path / 'mlflow.db').as_posix()}"
    context.tracker = tracker = MLflowTracker(tracking_uri=uri, experiment_name="families")
    try:
        final = await build_model_trainer_graph().ainvoke({"data_path": str(csv), "target": "target", **inputs},
                                                          context=context)
    finally:
        await tracker.aclose()
    assert final["status"] == "completed", final.get("error")
    return csv, uri, final


async def test_auto_on_breast_cancer_picks_names_and_deploys_a_family(tmp_path: Path,
                                                                       context: ModelTrainerContext) -> None:
    csv, uri, final = await _run_tracked(tmp_path, context, load_breast_cancer(as_frame=True).frame,
                                         {"algorithm": "AUTO", "n_trials": 8, "scheme": "holdout"})
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


async def test_a_blend_across_families_is_deployed_weighted_and_named(tmp_path: Path,
                                                                       context: ModelTrainerContext) -> None:
    """LightGBM and Ridge on diabetes: the study's blend of both families beats either alone on the
    validation rows; both final models (evaluated and deployed) are that weighted average, and the
    state, the artifact's metadata and MLflow name its members, families and weights."""
    csv, uri, final = await _run_tracked(tmp_path, context, load_diabetes(as_frame=True).frame,
                                         {"algorithm": "lightgbm,ridge", "n_trials": 10, "seed": 0})
    hpo = final["hpo"]
    members = hpo["ensemble"]
    assert hpo["blend"]["deployed"] and hpo["blend"]["value"] < hpo["blend"]["single_value"] == hpo["best_value"], hpo.get("blend")
    assert members[0]["number"] == hpo["best_trial_number"] and members[0]["algorithm"] == hpo["chosen_family"]
    assert {m["algorithm"] for m in members} == {"lightgbm", "ridge"}
    assert abs(sum(m["weight"] for m in members) - 1) < 1e-3
    for m in members:  # each member's params: its own family's, merged with that family's defaults
        assert set(m["params"]) <= set(get_model_spec(m["algorithm"]).accepted_params("regression"))
    raw = pd.read_csv(csv).drop(columns=["target"]).head(20)
    for path in (final["model_path"], final["evaluated_model_path"]):
        model, meta = load_run_artifact(final, path)
        averaged = model.model  # behind the raw-rows wrapper (the saved preparer)
        assert isinstance(averaged, AveragedModel)
        assert [m.algorithm for m in averaged.members] == [m["algorithm"] for m in members]
        assert averaged.weights == pytest.approx([m["weight"] for m in members], abs=1e-6)
        prepared = model.preparer.transform(raw)
        expected = sum(w * m.predict(prepared) for m, w in zip(averaged.members, averaged.weights))
        assert np.allclose(model.predict(raw), expected)
        assert [m["number"] for m in meta["hpo"]["ensemble"]] == [m["number"] for m in members]
    params = MlflowClient(tracking_uri=uri).get_run(final["mlflow_run_id"]).data.params
    assert params["final.ensemble_families"] == ",".join(m["algorithm"] for m in members)
    assert params["final.ensemble_trials"] == ",".join(str(m["number"]) for m in members)
