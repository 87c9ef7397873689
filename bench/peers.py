"""The peer arms of the benchmarks and their scoring (bench_vs_flaml, bench_real).

* :func:`run_lgbm_defaults` -- LGBMClassifier / LGBMRegressor with library defaults, fitted on all of dev.
* :func:`run_plain_optuna`  -- plain Optuna TPE over a typical LightGBM space, fit on 75 % of dev, scored
  on 25 %, ``study.optimize(timeout=budget)``, best params refit on all of dev.
* :func:`run_flaml`         -- ``flaml.AutoML`` (default learners, or ``estimators=["lgbm"]``) with
  ``time_budget=budget`` and the metric our product optimises.
* :func:`score`             -- the primary and secondary test metrics from predictions.

The peers get the raw frame as a typical user passes it: object columns cast to pandas ``category``
(test rows with dev's categories), nothing dropped. Everything runs on one thread (``n_jobs=1``).
Metrics: binary ROC-AUC (+ log loss, accuracy), multiclass log loss (+ accuracy), regression RMSE (+ R^2).

This module imports only third-party packages (FLAML lazily), so bench_real's cell runner can load it
by file path whatever product checkout it scores.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, log_loss, mean_squared_error, r2_score, roc_auc_score
from sklearn.model_selection import train_test_split

# bump when a peer's code or space changes: bench_real then re-runs the peers instead of using its cache
PEERS_VERSION = 1
PEER_ARMS = ("lgbm_defaults", "optuna", "flaml_lgbm", "flaml")
PRIMARY = {  # problem type -> (metric name, higher is better)
    "binary_classification": ("roc_auc", True),
    "multiclass_classification": ("log_loss", False),
    "regression": ("rmse", False),
}
FLAML_TASK = {"binary_classification": ("classification", "roc_auc"),
              "multiclass_classification": ("classification", "log_loss"),
              "regression": ("regression", "rmse")}


# ------------------------------------------------------------------------------------------ scoring
def label_key(v: Any) -> str:
    """One spelling per class label across libraries and CSV round trips: 1, 1.0, '1' and np.int64(1) -> '1'."""
    if isinstance(v, bytes):
        v = v.decode()
    if isinstance(v, str):
        s = v.strip()
        try:
            f = float(s)
        except ValueError:
            return s
        return str(int(f)) if math.isfinite(f) and f == int(f) else s
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    return str(int(f)) if math.isfinite(f) and f == int(f) else repr(f)


def score(pt: str, y_true: Any, classes: Any = None, proba: Any = None, pred: Any = None) -> dict[str, float]:
    """Test metrics: regression from ``pred``; classification from ``proba`` (columns in ``classes`` order)."""
    y_true = np.asarray(y_true)
    if pt == "regression":
        pred = np.asarray(pred, dtype=float)
        return {"rmse": float(math.sqrt(mean_squared_error(y_true.astype(float), pred))),
                "r2": float(r2_score(y_true.astype(float), pred))}
    cls = [label_key(c) for c in classes]
    y = np.asarray([label_key(v) for v in y_true])
    unknown = sorted(set(y) - set(cls))
    if unknown:
        raise ValueError(f"test labels {unknown} are not among the model's classes {cls}")
    proba = np.clip(np.asarray(proba, dtype=float), 1e-15, 1 - 1e-15)
    proba = proba / proba.sum(axis=1, keepdims=True)
    # sklearn's log_loss takes the columns in the lexicographic order of the labels: '0', '10', '2'...
    order = np.argsort(np.asarray(cls))
    out = {"log_loss": float(log_loss(y, proba[:, order], labels=[cls[i] for i in order])),
           "accuracy": float(accuracy_score(y, np.asarray(cls)[proba.argmax(axis=1)]))}
    if pt == "binary_classification":
        out["roc_auc"] = float(roc_auc_score(y == cls[1], proba[:, 1]))
    return out


def score_model(model: Any, pt: str, X_test: pd.DataFrame, y_test: Any) -> dict[str, float]:
    """Score any fitted model with the scikit-learn predict / predict_proba / classes_ interface."""
    if pt == "regression":
        return score(pt, y_test, pred=model.predict(X_test))
    return score(pt, y_test, model.classes_, proba=model.predict_proba(X_test))


def as_categories(X_dev: pd.DataFrame, X_test: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """What a typical user does: object columns -> pandas category (test with the dev categories)."""
    X_dev, X_test = X_dev.copy(), X_test.copy()
    for c in X_dev.columns:
        if pd.api.types.is_object_dtype(X_dev[c]) or pd.api.types.is_string_dtype(X_dev[c]):
            X_dev[c] = X_dev[c].astype("category")
            X_test[c] = pd.Categorical(X_test[c], categories=X_dev[c].cat.categories)
    return X_dev, X_test


def _lgbm_class(pt: str) -> Any:
    import lightgbm as lgb

    return lgb.LGBMRegressor if pt == "regression" else lgb.LGBMClassifier


# ------------------------------------------------------------------------------------------- arms
def run_lgbm_defaults(X_dev: pd.DataFrame, y_dev: Any, X_test: pd.DataFrame, y_test: Any, pt: str,
                      budget: float, seed: int) -> dict[str, Any]:
    """LightGBM with the library's defaults on all of dev (``budget`` unused: one fit)."""
    X_dev, X_te = as_categories(X_dev, X_test)
    t0 = time.perf_counter()
    model = _lgbm_class(pt)(random_state=seed, n_jobs=1, verbose=-1).fit(X_dev, y_dev)
    wall = time.perf_counter() - t0
    return {"wall_s": wall, "test": score_model(model, pt, X_te, y_test)}


def optuna_space(trial: Any) -> dict[str, Any]:
    """A typical LightGBM space (the one a user copies from a tutorial)."""
    return {
        "n_estimators": trial.suggest_int("n_estimators", 50, 1000),
        "learning_rate": trial.suggest_float("learning_rate", 1e-3, 0.3, log=True),
        "num_leaves": trial.suggest_int("num_leaves", 8, 256, log=True),
        "min_child_samples": trial.suggest_int("min_child_samples", 5, 100),
        "colsample_bytree": trial.suggest_float("feature_fraction", 0.5, 1.0),
        "subsample": trial.suggest_float("bagging_fraction", 0.5, 1.0),
        "subsample_freq": 1,
        "reg_alpha": trial.suggest_float("lambda_l1", 1e-8, 10.0, log=True),
        "reg_lambda": trial.suggest_float("lambda_l2", 1e-8, 10.0, log=True),
    }


def run_plain_optuna(X_dev: pd.DataFrame, y_dev: Any, X_test: pd.DataFrame, y_test: Any, pt: str,
                     budget: float, seed: int) -> dict[str, Any]:
    """TPE(seed) on a 75/25 split of dev for ``budget`` seconds; the best params refit on all of dev."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    X_dev, X_te = as_categories(X_dev, X_test)
    strat = y_dev if pt != "regression" else None
    X_tr, X_va, y_tr, y_va = train_test_split(X_dev, y_dev, test_size=0.25, random_state=seed, stratify=strat)
    Model = _lgbm_class(pt)
    metric, higher = PRIMARY[pt]

    def fit(params: dict[str, Any], X: pd.DataFrame, y: Any) -> Any:
        return Model(**params, random_state=seed, n_jobs=1, verbose=-1).fit(X, y)

    def objective(trial: Any) -> float:
        return score_model(fit(optuna_space(trial), X_tr, y_tr), pt, X_va, y_va)[metric]

    t0 = time.perf_counter()
    study = optuna.create_study(direction="maximize" if higher else "minimize",
                                sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, timeout=budget)
    study_s = time.perf_counter() - t0
    model = fit(optuna_space(optuna.trial.FixedTrial(study.best_params)), X_dev, y_dev)
    wall = time.perf_counter() - t0
    return {"wall_s": wall, "study_s": study_s, "test": score_model(model, pt, X_te, y_test),
            "n_trials": len(study.trials), "best_val": study.best_value, "best_params": study.best_params}


def run_flaml(X_dev: pd.DataFrame, y_dev: Any, X_test: pd.DataFrame, y_test: Any, pt: str, budget: float,
              seed: int, estimators: list[str] | None = None) -> dict[str, Any]:
    """``flaml.AutoML`` with ``time_budget=budget``, one thread, our primary metric."""
    import logging

    from flaml import AutoML

    logging.getLogger("flaml").setLevel(logging.ERROR)
    logging.getLogger("flaml.automl.logger").setLevel(logging.ERROR)
    X_dev, X_te = as_categories(X_dev, X_test)
    task, metric = FLAML_TASK[pt]
    kwargs: dict[str, Any] = dict(task=task, metric=metric, time_budget=budget, seed=seed, n_jobs=1, verbose=0,
                                  log_file_name="")
    if estimators is not None:
        kwargs["estimator_list"] = estimators
    automl = AutoML()
    t0 = time.perf_counter()
    automl.fit(X_dev, y_dev, **kwargs)
    wall = time.perf_counter() - t0
    return {"wall_s": wall, "test": score_model(automl, pt, X_te, y_test), "best_estimator": automl.best_estimator,
            "n_trials": len(getattr(automl, "config_history", {}) or {}),
            "best_val_loss": float(automl.best_loss), "best_config": automl.best_config}


def run_peer(arm: str, X_dev: pd.DataFrame, y_dev: Any, X_test: pd.DataFrame, y_test: Any, pt: str,
             budget: float, seed: int) -> dict[str, Any]:
    """Dispatch one of :data:`PEER_ARMS`."""
    if arm == "lgbm_defaults":
        return run_lgbm_defaults(X_dev, y_dev, X_test, y_test, pt, budget, seed)
    if arm == "optuna":
        return run_plain_optuna(X_dev, y_dev, X_test, y_test, pt, budget, seed)
    if arm == "flaml_lgbm":
        return run_flaml(X_dev, y_dev, X_test, y_test, pt, budget, seed, ["lgbm"])
    if arm == "flaml":
        return run_flaml(X_dev, y_dev, X_test, y_test, pt, budget, seed, None)
    raise ValueError(f"unknown peer arm {arm!r}; known: {PEER_ARMS}")
