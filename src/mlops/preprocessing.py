"""Feature preprocessing fitted on training data only, saved with the model.

Two shapes, chosen by the model family (``ModelSpec.native_categorical``):

- native: LightGBM, XGBoost and HistGradientBoosting take pandas ``category`` columns and NaN as
  they are; :class:`CategoryEncoder` only pins the categories seen in training (unseen -> NaN) and
  caps their number, so validation/test frames are encoded exactly like the training frame.
- encoded: every other family gets median imputation (+ standardization when the family is
  scale-sensitive) for numbers and most-frequent-free constant imputation + one-hot encoding
  (rare levels grouped) for categories, in a scikit-learn ``ColumnTransformer``.

Pipeline search (:mod:`.pipeline_steps`) changes the numeric imputation and scaling through the
``imputer__*`` and ``scaler__*`` params and appends a feature selection (``select__*``,
:class:`~src.mlops.feature_selection.FeatureSelector`) after either shape.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, RobustScaler, StandardScaler

from .models import ModelSpec
from .pipeline_steps import steps_of
from .problems import CLASSIFICATION, normalize_problem_type

__all__ = ["CategoryEncoder", "build_preprocessor", "as_frame", "categorical_columns"]

MAX_CATEGORIES = 250  # HistGradientBoosting's limit is 255 bins; LightGBM/XGBoost overfit beyond this.
_MISSING = "__missing__"


def as_frame(X: Any) -> pd.DataFrame:
    """``X`` as a DataFrame with string column names (arrays get f0, f1, ...)."""
    if isinstance(X, pd.DataFrame):
        if all(isinstance(c, str) for c in X.columns):
            return X
        return X.rename(columns=str)
    arr = np.asarray(X)
    if arr.ndim == 1:
        arr = arr.reshape(-1, 1)
    if arr.ndim != 2:
        raise ValueError(f"X must be 2-dimensional, got shape {arr.shape}")
    return pd.DataFrame(arr, columns=[f"f{i}" for i in range(arr.shape[1])])


def categorical_columns(X: pd.DataFrame) -> list[str]:
    return [
        c for c in X.columns
        if isinstance(X[c].dtype, pd.CategoricalDtype)
        or pd.api.types.is_object_dtype(X[c])
        or pd.api.types.is_string_dtype(X[c])
    ]


class CategoryEncoder(TransformerMixin, BaseEstimator):
    """Casts string/object columns to ``category`` with the training categories (top ``max_categories``);
    bool columns become 0/1 floats."""

    def __init__(self, max_categories: int = MAX_CATEGORIES) -> None:
        self.max_categories = max_categories

    def fit(self, X: Any, y: Any = None) -> CategoryEncoder:
        X = as_frame(X)
        self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        self.categories_: dict[str, list[Any]] = {}
        for c in categorical_columns(X):
            counts = X[c].astype("object").value_counts(dropna=True)
            self.categories_[c] = sorted(counts.index[: self.max_categories].tolist(), key=str)
        return self

    def transform(self, X: Any) -> pd.DataFrame:
        X = as_frame(X)
        missing = [c for c in self.feature_names_in_ if c not in X.columns]
        if missing:
            raise ValueError(f"columns missing from the input: {missing}")
        X = X.loc[:, list(self.feature_names_in_)].copy()
        for c, cats in self.categories_.items():
            X[c] = pd.Categorical(X[c].astype("object"), categories=cats)
        for c in X.columns:
            if c in self.categories_:
                continue
            if pd.api.types.is_bool_dtype(X[c]):
                X[c] = X[c].astype(float)
            elif not pd.api.types.is_numeric_dtype(X[c]):
                X[c] = pd.to_numeric(X[c], errors="coerce")
        return X

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(self.feature_names_in_, dtype=object)


class _ToString(TransformerMixin, BaseEstimator):
    """Categorical columns as plain strings with an explicit missing level (for one-hot encoding)."""

    def fit(self, X: Any, y: Any = None) -> _ToString:
        return self

    def transform(self, X: Any) -> np.ndarray:
        df = pd.DataFrame(X)
        return df.astype("object").where(df.notna(), _MISSING).astype(str).to_numpy()

    def get_feature_names_out(self, input_features: Any = None) -> Any:
        return input_features


_SCALERS: dict[str, Any] = {"standard": StandardScaler, "robust": RobustScaler, "minmax": MinMaxScaler, "none": None}


def build_preprocessor(spec: ModelSpec, X: pd.DataFrame, steps: dict[str, Any] | None = None,
                       problem_type: str | None = None) -> BaseEstimator:
    """An unfitted preprocessor suited to ``spec`` and the column types of ``X``; ``steps`` are the
    pipeline-search params (``imputer__strategy``, ``scaler__method``, ``select__k`` ...; see
    :mod:`.pipeline_steps`), ``problem_type`` is needed when they select features. A selection step
    needs ``y`` at ``fit``."""
    steps = dict(steps or {})
    if spec.native_categorical:
        base: BaseEstimator = CategoryEncoder()
    else:
        base = _encoded(spec, X, steps)
    method = steps.get("select__method", "none")
    if method == "none":
        return base
    from .feature_selection import FeatureSelector

    pt = normalize_problem_type(problem_type or next(iter(spec.problem_types)))
    if "select" not in steps_of(spec, pt):
        raise ValueError(f"{spec.name} has no select step for {pt}")
    select = FeatureSelector(method=method, k=int(steps.get("select__k", 10)),
                             percentile=float(steps.get("select__percentile", 50)),
                             task="classification" if pt in CLASSIFICATION else "regression")
    return Pipeline([("prep", base), ("select", select)])


def _encoded(spec: ModelSpec, X: pd.DataFrame, steps: dict[str, Any]) -> BaseEstimator:
    cats = categorical_columns(X)
    nums = [c for c in X.columns if c not in cats]
    imputer = SimpleImputer(strategy=steps.get("imputer__strategy", "median"), keep_empty_features=True,
                            add_indicator=bool(steps.get("imputer__add_indicator", False)))
    num_steps: list[tuple[str, Any]] = [("impute", imputer)]
    scaler = _SCALERS[steps.get("scaler__method", "standard" if spec.needs_scaling else "none")]
    if scaler is not None:
        num_steps.append(("scale", scaler()))
    transformers: list[tuple[str, Any, list[str]]] = []
    if nums:
        transformers.append(("num", Pipeline(num_steps), nums))
    if cats:
        onehot = OneHotEncoder(
            handle_unknown="infrequent_if_exist", min_frequency=5, max_categories=30, sparse_output=False
        )
        transformers.append(("cat", Pipeline([("str", _ToString()), ("onehot", onehot)]), cats))
    return ColumnTransformer(transformers, remainder="drop", verbose_feature_names_out=False)
