"""The saved model artifact predicts on the raw rows of the user's CSV (real graph run, no mocks)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from src.agents.ml_foundation.model_trainer import ModelTrainerContext, build_model_trainer_graph, load_model_artifact
from src.agents.ml_foundation.model_trainer.artifacts import PREPARER_FILE, recorded_digests
from src.mlops.errors import DataValidationError
from src.mlops.features import load_preparer
from src.mlops.splits import load_frame_ref

from .conftest import make_messy_frame


def _messy_csv(path: Path, n: int = 400) -> Path:
    """Churn data as a spreadsheet export: money and percent text, true/false, text dates, a name
    LightGBM rejects, a constant column and an id."""
    frame = make_messy_frame(n=n, seed=3)
    rng = np.random.default_rng(3)
    frame["income"] = [f"${v:,.2f}" for v in frame["income"]]
    frame["discount"] = [f"{v}%" for v in rng.integers(0, 30, n)]
    frame["autopay"] = rng.choice(["true", "false", "TRUE", ""], n)
    frame["signup_date"] = pd.date_range("2019-01-01", periods=n, freq="3D").strftime("%Y-%m-%d")
    frame["region[code]"] = rng.choice(["n1", "s2", None], n)
    frame["source"] = "web"
    frame.to_csv(path, index=False)
    return path


async def test_artifact_predicts_on_raw_csv_rows(tmp_path: Path, context: ModelTrainerContext) -> None:
    csv = _messy_csv(tmp_path / "customers.csv")
    final = await build_model_trainer_graph().ainvoke(
        {"data_path": str(csv), "target": "churn", "n_trials": 2, "seed": 0}, context=context
    )
    assert final["status"] == "completed", final.get("error")
    assert json.loads(json.dumps(final, allow_nan=False)) == final  # the state stays JSON
    assert Path(final["preparer_path"]).is_file()
    assert {"signup_date_year", "income", "discount", "region_code_"} <= set(load_preparer(final["preparer_path"]).feature_names)

    model, metadata = load_model_artifact(final["model_path"], digests=recorded_digests(final, final["model_path"]))
    assert metadata["preparer_file"] == PREPARER_FILE and (Path(final["model_path"]) / PREPARER_FILE).is_file()
    X_test = load_frame_ref(final["splits"]["test_X"])
    raw = pd.read_csv(csv)  # what the user has: the raw rows, as pandas reads them
    rows = raw.loc[X_test.index]

    expected = model.model.predict(X_test)  # the bare TunedModel on the graph's prepared test split
    assert set(expected) <= {"no", "yes"}
    np.testing.assert_array_equal(model.predict(rows), expected)
    np.testing.assert_array_equal(model.predict(rows.drop(columns=["churn"])), expected)  # target optional
    np.testing.assert_allclose(model.predict_proba(rows), model.model.predict_proba(X_test), rtol=0, atol=1e-12)
    assert list(model.classes_) == ["no", "yes"]  # other attributes are the TunedModel's

    defaults_model, _ = load_model_artifact(final["defaults_model_path"], trusted=True)
    np.testing.assert_array_equal(defaults_model.predict(rows), defaults_model.model.predict(X_test))

    with pytest.raises(DataValidationError, match=r"missing 2 columns.*'income'.*'signup_date'"):
        model.predict(rows.drop(columns=["income", "signup_date"]))
    with pytest.raises(DataValidationError, match=r"prepared feature columns.*\.model"):
        model.predict(X_test)  # prepared features go to model.model
