"""One set of problem-type names and one JSON converter, used everywhere (src/mlops/problems.py,
src/mlops/jsonutil.py)."""

from __future__ import annotations

import datetime as dt
import json
import math

import numpy as np
import pandas as pd
import pytest

from src.agents.ml_foundation.model_trainer.state import jsonable
from src.mlops import datasets, metrics, models, problems, splits
from src.mlops.errors import ConfigurationError
from src.mlops.features import prepare_features
from src.mlops.jsonutil import float_from_json, json_dumps, to_jsonable
from src.mlops.persistence import TrialRecord


def test_problem_type_names_are_defined_once() -> None:
    for name in ("BINARY", "MULTICLASS", "REGRESSION", "ANOMALY", "PROBLEM_TYPES"):
        assert getattr(datasets, name) is getattr(problems, name) is getattr(metrics, name)
    assert metrics.normalize_problem_type is problems.normalize_problem_type is models.normalize_problem_type
    assert splits._CLASSIFICATION is problems.CLASSIFICATION


@pytest.mark.parametrize("spelling, expected", [
    ("binary", problems.BINARY), (" Multi-Class ", problems.MULTICLASS), ("REGRESSION", problems.REGRESSION),
    ("outlier detection", problems.ANOMALY), ("classification", problems.BINARY),
])
def test_one_normalizer_reads_every_spelling(spelling: str, expected: str) -> None:
    assert problems.normalize_problem_type(spelling) == expected


def test_prepare_features_and_metrics_refuse_an_unknown_problem_type_alike() -> None:
    frame = pd.DataFrame({"x": [3.5, 1.0, 2.0] * 10, "y": [0, 1, 2] * 10})
    with pytest.raises(ConfigurationError, match=r"problem_type must be one of .* but got 'ranking'") as a:
        prepare_features(frame, "y", problem_type="ranking")
    with pytest.raises(ConfigurationError) as b:
        metrics.default_metric("ranking")
    assert str(a.value) == str(b.value)
    # the cleaning accepts what the rest of the engine accepts (it refused "multiclass" before)
    assert prepare_features(frame, "y", problem_type="multiclass").problem_type == problems.MULTICLASS


def test_to_jsonable_for_postgres_and_mlflow() -> None:
    value = {
        1: np.float64(0.5), "nan": math.nan, "inf": -math.inf, "t": (1, np.int64(2)), "s": frozenset({"a"}),
        "a": np.arange(3), "when": dt.datetime(2026, 1, 2, 3, 4, 5), "obj": ValueError("boom"),
    }
    out = to_jsonable(value)
    assert out["1"] == 0.5 and type(out["1"]) is float and type(out["t"][1]) is int
    assert (out["nan"], out["inf"], out["t"], out["s"], out["a"]) == ("NaN", "-Infinity", [1, 2], ["a"], [0, 1, 2])
    assert out["when"] == "2026-01-02T03:04:05" and out["obj"] == "boom"
    text = json_dumps(value)  # strict JSON: PostgreSQL's JSONB refuses bare NaN
    assert "NaN" in text and json.loads(text) == out
    assert math.isnan(float_from_json(out["nan"])) and float_from_json(out["inf"]) == -math.inf
    assert float_from_json(None) is None and float_from_json("1.5") == 1.5


def test_the_graph_state_policy_nulls_non_finite_and_refuses_objects() -> None:
    assert jsonable({"x": [math.nan, np.float32(1.5), math.inf], "n": np.int8(3)}) == {"x": [None, 1.5, None], "n": 3}
    with pytest.raises(TypeError, match="ValueError is not plain data"):
        jsonable({"bad": ValueError("x")})


def test_trial_records_use_the_shared_converter() -> None:
    record = TrialRecord(number=0, state="COMPLETE", value=math.nan, params={"lr": np.float64(0.1)})
    assert record.to_dict()["value"] == "NaN" and record.to_dict()["params"] == {"lr": 0.1}
