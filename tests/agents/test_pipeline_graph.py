"""Pipeline search through the whole graph (SPEC F9, issue 10.2): a pipeline with every step (imputer,
scaler, feature selection) is tuned, saved, loaded and predicts raw rows with missing values -- from the
local artifact and from the MLflow model. Real data, real fits, no mocks."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from sklearn.preprocessing import MinMaxScaler, RobustScaler

from src.agents.ml_foundation.model_trainer import ModelTrainerContext, build_model_trainer_graph, load_run_artifact
from src.agents.ml_foundation.model_trainer.settings import validate_settings
from src.mlops.errors import MLOpsError
from src.mlops.feature_selection import FeatureSelector
from src.mlops.splits import load_frame_ref
from src.mlops.tracking import MLflowTracker


def _signal_and_noise_csv(path: Path, n: int = 360) -> Path:
    """Three informative columns (with gaps), a text column with gaps, and 25 noise columns: KNN on all
    columns is poor, on the few selected ones it is good -- the selection step pays."""
    rng = np.random.default_rng(7)
    informative = rng.normal(size=(n, 3))
    label = np.where(informative.sum(axis=1) + rng.normal(0, 0.3, n) > 0, "yes", "no")
    frame = pd.DataFrame(informative * [1.0, 50.0, 0.01], columns=["a", "b", "c"])
    for j in range(25):
        frame[f"noise{j}"] = rng.normal(size=n) * 10
    frame["colour"] = rng.choice(["red", "blue", None], n)
    frame.loc[rng.random(n) < 0.08, "a"] = np.nan
    frame.loc[rng.random(n) < 0.08, "b"] = np.nan
    frame["label"] = label
    frame.to_csv(path, index=False)
    return path


async def test_a_pipeline_with_every_step_trains_saves_and_predicts_raw_rows(tmp_path: Path,
                                                                              context: ModelTrainerContext,
                                                                              monkeypatch) -> None:
    csv = _signal_and_noise_csv(tmp_path / "signal.csv")
    uri = f"sqlite:///{(tmp_path / 'mlflow.db').as_posix()}"
    context.tracker = tracker = MLflowTracker(tracking_uri=uri, experiment_name="pipelines")
    space = {"select__method": ("categorical", ["k_best"]), "select__k": ("int", 2, 4),
             "scaler__method": ("categorical", ["robust", "minmax"]),
             "imputer__strategy": ("categorical", ["mean", "most_frequent"])}
    try:
        final = await build_model_trainer_graph().ainvoke(
            {"data_path": str(csv), "target": "label", "algorithm": "knn", "pipeline_search": True,
             "search_space": space, "n_trials": 5, "scheme": "holdout", "seed": 0, "ensemble_size": 1},
            context=context)
    finally:
        await tracker.aclose()
    assert final["status"] == "completed", final.get("error")
    merged = final["merged_params"]
    # the selection pays on this data: the chosen trial has every step, and its values reach the model
    assert merged["select__method"] == "k_best" and 2 <= merged["select__k"] <= 4
    model, meta = load_run_artifact(final, final["model_path"])
    assert meta["params"]["select__k"] == merged["select__k"]
    prep = model.model.preprocessor
    select = prep.named_steps["select"]
    assert isinstance(select, FeatureSelector) and select.get_support().sum() == merged["select__k"]
    num = prep.named_steps["prep"].named_transformers_["num"]
    scaler = {"robust": RobustScaler, "minmax": MinMaxScaler}[merged["scaler__method"]]
    assert isinstance(num.named_steps["scale"], scaler)
    assert num.named_steps["impute"].strategy == merged["imputer__strategy"]

    raw = pd.read_csv(csv)
    X_test = load_frame_ref(final["splits"]["test_X"])
    rows = raw.loc[X_test.index].drop(columns=["label"])
    assert rows[["a", "b", "colour"]].isna().any().all()  # raw rows with missing values
    expected = model.model.predict(X_test)
    np.testing.assert_array_equal(model.predict(rows), expected)
    assert set(expected) <= {"no", "yes"}

    # mlflow.set_tracking_uri would also set MLFLOW_TRACKING_URI for the rest of the session (the later CLI
    # tests' subprocesses then wrote their runs to this store): scope it to this test
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    pyfunc = mlflow.pyfunc.load_model(final["mlflow_model_uri"])
    np.testing.assert_array_equal(np.asarray(pyfunc.predict(rows)), expected)
    proba = pyfunc.predict(rows, params={"predict_method": "predict_proba"})
    np.testing.assert_allclose(proba.to_numpy(), model.predict_proba(rows))


@pytest.mark.parametrize("state, fragment", [
    ({"algorithm": "random_forest", "search_space": {"scaler__method": ("categorical", ["robust"])}},
     "'scaler__method' -- random_forest has no scaler step"),
    ({"algorithm": "logreg", "search_space": {"scaler__method": ("categorical", ["zscore"])}},
     "scaler__method must be one of ['standard', 'robust', 'minmax', 'none'], but got 'zscore'"),
    ({"algorithm": "logreg", "enqueue": [{"select__k": 0}]}, "select__k (features kept) must be an integer >= 1"),
    ({"algorithm": "logreg,lightgbm", "search_space": {"lightgbm__scaler__method": ("categorical", ["none"])}},
     "'scaler__method' -- lightgbm has no scaler step"),
    ({"algorithm": "logreg", "pipeline_search": "yes"}, "pipeline_search must be True or False"),
])
def test_bad_pipeline_settings_are_refused_by_the_one_settings_check(state, fragment) -> None:
    with pytest.raises(MLOpsError) as info:
        validate_settings(state)
    assert fragment in str(info.value)


async def test_the_graph_refuses_a_step_no_step_takes_before_any_study(tmp_path: Path,
                                                                      context: ModelTrainerContext) -> None:
    csv = _signal_and_noise_csv(tmp_path / "signal.csv", n=120)
    final = await build_model_trainer_graph().ainvoke(
        {"data_path": str(csv), "target": "label", "algorithm": "logistic_regression", "n_trials": 3,
         "search_space": {"scaler__foo": ("categorical", ["a"])}}, context=context)
    assert final["status"] == "failed" and "the scaler step takes scaler__method" in final["error"]["message"]
    assert final["error"]["node"] == "load_data"  # the first node: no split, no study
    assert final.get("hpo") is None and final.get("model_path") is None
