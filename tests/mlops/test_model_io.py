"""Model files are skops archives read with an explicit list of trusted types (no pickle, ever)."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io as sio

from src.mlops.model_io import TRUSTED_TYPES, UntrustedModelError, dump_model, load_model
from src.mlops.models import MODEL_REGISTRY
from src.mlops.metrics import get_metric
from src.mlops.objectives import AveragedModel, LabelCodec, TunedModel, fit_model

FAMILY_CASES = [(name, pt) for name, spec in MODEL_REGISTRY.items() for pt in spec.problem_types]


@pytest.fixture(scope="module")
def mixed_data() -> dict[str, tuple[pd.DataFrame, np.ndarray]]:
    """Numbers, a missing value and a string category: both preprocessing shapes get exercised."""
    rng = np.random.default_rng(0)
    n = 120
    X = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), "c": rng.choice(["x", "y", "z"], n)})
    X.loc[3, "a"] = np.nan
    return {
        "binary_classification": (X, np.array(["no", "yes"])[rng.integers(0, 2, n)]),
        "multiclass_classification": (X, np.array(["p", "q", "r"])[rng.integers(0, 3, n)]),
        "regression": (X, rng.normal(size=n)),
        "anomaly_detection": (X, rng.integers(0, 2, n)),
    }


@pytest.mark.parametrize(("family", "problem_type"), FAMILY_CASES, ids=[f"{f}-{p}" for f, p in FAMILY_CASES])
def test_every_family_round_trips_with_the_trusted_list(family, problem_type, mixed_data, tmp_path):
    spec = MODEL_REGISTRY[family]
    X, y = mixed_data[problem_type]
    codec = None
    if problem_type.endswith("classification"):
        codec = LabelCodec(y)
        y = codec.encode(y)
    fitted = fit_model(spec, problem_type, spec.default_params(problem_type, seed=0), X, y, codec=codec).model
    path = dump_model(fitted, tmp_path / "m.skops")
    loaded = load_model(path)
    assert type(loaded) is TunedModel and type(loaded.estimator) is type(fitted.estimator)
    np.testing.assert_array_equal(loaded.predict(X), fitted.predict(X))
    if hasattr(fitted.estimator, "predict_proba"):
        np.testing.assert_allclose(loaded.predict_proba(X), fitted.predict_proba(X))
    # nothing beyond our explicit list is needed (skops' own defaults aside)
    assert set(sio.get_untrusted_types(file=path)) <= set(TRUSTED_TYPES)


@pytest.mark.parametrize("problem_type", ["binary_classification", "multiclass_classification", "regression"])
def test_an_averaged_model_predicts_the_mean_of_its_members_and_round_trips(problem_type, mixed_data, tmp_path):
    spec = MODEL_REGISTRY["lightgbm"]
    X, y = mixed_data[problem_type]
    codec = LabelCodec(y) if problem_type.endswith("classification") else None
    yy = codec.encode(y) if codec else y
    members = [fit_model(spec, problem_type, {**spec.default_params(problem_type, seed=s), "n_estimators": n,
                                              "num_leaves": leaves}, X, yy, codec=codec).model
               for s, n, leaves in ((0, 20, 7), (1, 40, 15), (2, 10, 31))]
    avg = AveragedModel.of(members)
    loaded = load_model(dump_model(avg, tmp_path / "avg.skops"))
    assert type(loaded) is AveragedModel and [type(m) for m in loaded.members] == [TunedModel] * 3
    if codec is None:
        mean = np.mean([m.predict(X) for m in members], axis=0)
        np.testing.assert_allclose(loaded.predict(X), mean)
        rmse = get_metric("rmse", problem_type)
        np.testing.assert_allclose(loaded.predict_for_metric(X, rmse), mean)
        return
    proba = np.mean([m.predict_proba(X) for m in members], axis=0)
    np.testing.assert_allclose(loaded.predict_proba(X), proba)
    assert not np.allclose(proba, members[0].predict_proba(X))  # the members differ: a real average
    np.testing.assert_array_equal(loaded.predict(X), codec.classes_[proba.argmax(axis=1)])
    np.testing.assert_array_equal(loaded.predict_for_metric(X, get_metric("accuracy", problem_type)), proba.argmax(axis=1))
    if problem_type == "binary_classification":
        np.testing.assert_allclose(loaded.predict_for_metric(X, get_metric("roc_auc", problem_type)), proba[:, 1])


def test_members_of_other_classes_are_not_averaged(mixed_data):
    spec = MODEL_REGISTRY["lightgbm"]
    X, y = mixed_data["binary_classification"]
    a = fit_model(spec, "binary_classification", spec.default_params("binary_classification", seed=0), X,
                  LabelCodec(y).encode(y), codec=LabelCodec(y)).model
    yr = np.where(y == "yes", "YES", "no")
    b = fit_model(spec, "binary_classification", spec.default_params("binary_classification", seed=0), X,
                  LabelCodec(yr).encode(yr), codec=LabelCodec(yr)).model
    with pytest.raises(ValueError, match="share the problem type and the classes"):
        AveragedModel.of([a, b])


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "model.skops"
    path.write_bytes(pickle.dumps(_Exploit(marker)))
    with pytest.raises(UntrustedModelError, match="not a skops archive"):
        load_model(path)
    assert not marker.exists()


def test_a_skops_file_needing_an_untrusted_type_is_refused(tmp_path):
    model = TunedModel(preprocessor=None, estimator=os.system, problem_type="regression")
    path = tmp_path / "model.skops"
    path.write_bytes(sio.dumps(model))  # written around dump_model, as an attacker would
    with pytest.raises(UntrustedModelError, match=r"outside the trusted list: \['posix.system'\]"):
        load_model(path)
    with pytest.raises(UntrustedModelError, match="posix.system"):
        dump_model(model, tmp_path / "other.skops")  # and we never write one
    assert not (tmp_path / "other.skops").exists()


def test_the_loaded_type_is_checked(tmp_path):
    path = tmp_path / "m.skops"
    path.write_bytes(sio.dumps({"not": "a model"}))
    with pytest.raises(UntrustedModelError, match="holds a builtins.dict, not one of"):
        load_model(path)
