"""Pipeline search (SPEC F9, issue 10.2 and 10.5): step params ``step__param`` searched with the model,
refused before any study when no step of the family takes them; a study whose trials other than the
defaults all fail ends with their error. Real fits on small scikit-learn data, no mocks."""

from __future__ import annotations

import numpy as np
import optuna
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.impute import SimpleImputer
from sklearn.preprocessing import RobustScaler

from src.mlops.errors import SearchSpaceError, StudyFailedError, StudyMismatchError
from src.mlops.feature_selection import FeatureSelector
from src.mlops.model_io import dump_model, load_model
from src.mlops.objectives import ModelObjective
from src.mlops.optuna_optimizer import run_hyperparameter_optimization
from src.mlops.preprocessing import CategoryEncoder
from src.mlops.trial_cache import InMemoryTrialCacheStore, TrialCache


@pytest.fixture(scope="module")
def gappy():
    """Breast cancer (8 columns) with missing values and a text column: train/validation."""
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    X = X.iloc[:, :8].copy()
    X.iloc[::7, 0] = np.nan
    X.iloc[::11, 3] = np.nan
    X["shape"] = np.where(np.arange(len(X)) % 3 == 0, "round", None)
    return X.iloc[:400], y.iloc[:400], X.iloc[400:], y.iloc[400:]


def _steps(model) -> dict:
    """The fitted steps of a TunedModel's preprocessor, by kind."""
    prep = model.preprocessor
    out = {"select": prep.named_steps["select"] if hasattr(prep, "named_steps") else None}
    base = prep.named_steps["prep"] if out["select"] is not None else prep
    out["base"] = base
    if hasattr(base, "named_transformers_"):
        num = base.named_transformers_["num"]
        out["imputer"] = num.named_steps["impute"]
        out["scaler"] = num.named_steps.get("scale")
    return out


def test_step_params_reach_the_fitted_pipeline_and_survive_the_model_file(gappy, tmp_path):
    X_tr, y_tr, X_va, y_va = gappy
    steps = {"scaler__method": "robust", "imputer__strategy": "mean", "imputer__add_indicator": True,
             "select__method": "k_best", "select__k": 3}
    obj = ModelObjective("logistic_regression", "binary", X_tr, y_tr, X_va, y_va, fixed_params=steps)
    assert obj.default_params["scaler__method"] == "robust"
    assert 0.5 < obj.evaluate({}).value <= 1.0
    fit = obj.fit_final({})
    found = _steps(fit.model)
    assert isinstance(found["scaler"], RobustScaler)
    assert isinstance(found["imputer"], SimpleImputer) and found["imputer"].strategy == "mean"
    assert found["imputer"].add_indicator is True
    assert isinstance(found["select"], FeatureSelector) and found["select"].get_support().sum() == 3
    assert "scaler__method" not in fit.model.estimator.get_params()  # steps never reach the estimator
    path = dump_model(fit.model, tmp_path / "m.skops")  # every step is a trusted type of the model file
    loaded = load_model(path)
    rows = X_va.head(30)
    assert rows.isna().any().any()  # raw rows with missing values
    np.testing.assert_allclose(loaded.predict_proba(rows), fit.model.predict_proba(rows))

    # a family that takes NaN and categories natively: the selection keeps the DataFrame's columns
    obj = ModelObjective("lightgbm", "binary", X_tr, y_tr, X_va, y_va,
                         fixed_params={"select__method": "percentile", "select__percentile": 50})
    fit = obj.fit_final({})
    found = _steps(fit.model)
    assert isinstance(found["base"], CategoryEncoder) and found["select"].get_support().sum() == 5  # ceil(9 * 0.5)
    assert np.isfinite(fit.model.predict_proba(X_va.head(5))).all()


async def test_pipeline_search_samples_the_steps_and_the_cache_tells_them_apart(gappy):
    X_tr, y_tr, X_va, y_va = gappy
    r = await run_hyperparameter_optimization("logistic_regression", "binary", X_tr, y_tr, X_va, y_va,
                                              n_trials=8, pipeline=True, seed=0, pruner="none")
    assert r.n_completed == 8 and r.n_failed == 0
    assert {"scaler__method", "imputer__strategy", "select__method"} <= set(r.best_params)
    assert r.merged_params["scaler__method"] in ("standard", "robust", "minmax", "none")
    assert {"C", "max_iter", "imputer__add_indicator"} <= set(r.merged_params)
    assert r.study_name.startswith("logistic_regression+pipeline-")
    # trees have no scaler; every supervised family has a select step
    obj = ModelObjective("random_forest", "binary", X_tr, y_tr, X_va, y_va, pipeline=True)
    assert "scaler__method" not in obj.search_space and {"imputer__strategy", "select__k"} <= set(obj.search_space.names)
    assert obj.search_space["select__k"].high == X_tr.shape[1]
    assert obj.defaults_trial_params()["select__method"] == "none"  # the defaults trial is the plain pipeline
    # the trial cache key includes the step params
    obj = ModelObjective("logistic_regression", "binary", X_tr, y_tr, X_va, y_va, pipeline=True)
    cache = TrialCache.for_objective(InMemoryTrialCacheStore(), obj, data_fingerprint="fp")
    base = {"C": 1.0, "imputer__strategy": "median", "select__method": "none"}
    assert cache.key({**base, "scaler__method": "standard"}) != cache.key({**base, "scaler__method": "robust"})
    assert cache.key({**base, "scaler__method": "robust"}) == cache.key({**base, "scaler__method": "robust"})


async def test_pipeline_search_with_cv_pruning_and_per_trial_timeout_in_worker_processes(gappy):
    X_tr, y_tr, _, _ = gappy
    r = await run_hyperparameter_optimization("logistic_regression", "binary", X_tr, y_tr, cv=3, n_trials=6,
                                              pipeline=True, seed=1, pruner="median", trial_timeout=120)
    assert r.n_completed + r.n_pruned == 6 and r.n_failed == 0, r.failure_reasons
    assert "scaler__method" in r.best_params


async def test_family_search_prefixes_each_familys_steps(gappy):
    X_tr, y_tr, X_va, y_va = gappy
    r = await run_hyperparameter_optimization("logistic_regression,lightgbm", "binary", X_tr, y_tr, X_va, y_va,
                                              n_trials=4, pipeline=True, seed=0, pruner="none")
    assert r.n_failed == 0
    from src.mlops.family_search import FamilySearchObjective

    obj = FamilySearchObjective("logistic_regression,lightgbm", "binary", X_tr, y_tr, X_va, y_va, pipeline=True)
    names = set(obj.search_space.names)
    assert {"logistic_regression__scaler__method", "lightgbm__select__method"} <= names
    assert "lightgbm__scaler__method" not in names and "lightgbm__imputer__strategy" not in names
    assert any(k.startswith(f"{r.algorithm}__") for k in r.best_params)


@pytest.mark.parametrize("algorithm, space, fragment", [
    ("logistic_regression", {"scaler__foo": ("categorical", ["a"])},
     "'scaler__foo' -- the scaler step takes scaler__method, not 'foo'"),
    ("random_forest", {"scaler__method": ("categorical", ["robust"])},
     "'scaler__method' -- random_forest has no scaler step"),
    ("isolation_forest", {"select__k": ("int", 1, 3)}, "'select__k' -- isolation_forest has no select step"),
    ("logistic_regression", {"scaler__method": ("categorical", ["zscore"])},
     "scaler__method must be one of ['standard', 'robust', 'minmax', 'none'], but got 'zscore'"),
    ("logistic_regression", {"select__k": ("int", 0, 3)}, "select__k (features kept) must be an integer >= 1"),
])
async def test_a_param_no_step_takes_is_refused_before_any_study(gappy, algorithm, space, fragment):
    X_tr, y_tr, X_va, y_va = gappy
    problem = "anomaly_detection" if algorithm == "isolation_forest" else "binary"
    ya_tr, ya_va = (np.zeros(len(y_tr), int), (np.arange(len(y_va)) % 10 == 0).astype(int)) \
        if problem == "anomaly_detection" else (y_tr, y_va)
    storage = optuna.storages.InMemoryStorage()
    with pytest.raises(SearchSpaceError) as info:
        await run_hyperparameter_optimization(algorithm, problem, X_tr.iloc[:, :8], ya_tr, X_va.iloc[:, :8], ya_va,
                                              search_space=space, n_trials=3, storage=storage)
    assert fragment in str(info.value)
    if "has no" in fragment:  # the message lists what the family's steps take
        assert "its pipeline steps take:" in str(info.value)
    assert storage.get_all_studies() == []


async def test_a_study_whose_trials_but_the_defaults_all_fail_raises_their_error(gappy):
    X_tr, y_tr, X_va, y_va = gappy
    with pytest.raises(StudyFailedError, match=r"every trial but the defaults failed \(3 of 3\), all with the same "
                                               r"error: exception: InvalidParameterError"):
        await run_hyperparameter_optimization("logistic_regression", "binary", X_tr, y_tr, X_va, y_va,
                                              search_space={"C": ("float", -2.0, -1.0)}, n_trials=4, pruner="none")


def test_feature_selector_ranks_by_f_test_and_keeps_dataframe_dtypes():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    X = pd.DataFrame({"noise": rng.normal(size=200), "signal": y + rng.normal(0, 0.1, 200),
                      "const": 1.0, "cat": pd.Categorical(np.where(y == 1, "a", "b"))})
    sel = FeatureSelector(method="k_best", k=2).fit(X, y)
    out = sel.transform(X)
    assert list(out.columns) == ["signal", "cat"] and isinstance(out["cat"].dtype, pd.CategoricalDtype)
    assert FeatureSelector(method="k_best", k=10).fit(X, y).get_support().all()  # k above the count keeps all
    assert FeatureSelector(method="percentile", percentile=1).fit(X, y).get_support().sum() == 1


async def test_a_named_study_is_not_resumed_with_pipeline_search_switched(gappy):
    X_tr, y_tr, X_va, y_va = gappy
    storage = optuna.storages.InMemoryStorage()
    common = dict(study_name="same", storage=storage, n_trials=1, seed=0)
    await run_hyperparameter_optimization("logistic_regression", "binary", X_tr, y_tr, X_va, y_va, **common)
    with pytest.raises(StudyMismatchError, match="pipeline search 'off' in the study, 'on' in this run"):
        await run_hyperparameter_optimization("logistic_regression", "binary", X_tr, y_tr, X_va, y_va,
                                              pipeline=True, **common)


async def test_the_trial_cache_serves_a_pipeline_trial_run_again(gappy):
    X_tr, y_tr, X_va, y_va = gappy
    store = InMemoryTrialCacheStore()
    runs = [await run_hyperparameter_optimization("logistic_regression", "binary", X_tr, y_tr, X_va, y_va,
                                                  n_trials=3, pipeline=True, seed=5, pruner="none",
                                                  trial_cache=store, study_name=f"run{i}") for i in range(2)]
    assert runs[0].n_cached == 0 and runs[1].n_cached == 3
    assert runs[1].best_params == runs[0].best_params and runs[1].best_value == runs[0].best_value
