"""The ``select`` step of pipeline search (:mod:`.pipeline_steps`): keep the features with the highest
univariate F-test score against the target (``f_classif`` for classification, ``f_regression`` for
regression), the ``k`` best or a ``percentile`` of them.

:class:`FeatureSelector` works on both shapes the family preprocessing produces: a numeric array
(one-hot encoded, imputed) and, for the families that take categories and NaN natively, a DataFrame
with ``category`` columns -- it keeps the DataFrame's columns (and their dtypes) and scores a numeric
view of them (category codes, NaN filled with the column median). Fitted state is plain data
(a boolean mask), so it saves with skops.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

__all__ = ["FeatureSelector"]


def _numeric_view(X: Any) -> np.ndarray:
    """``X`` as a float matrix without NaN (category codes; NaN -> the column median, or 0)."""
    if isinstance(X, pd.DataFrame):
        cols = []
        for c in X.columns:
            s = X[c]
            if isinstance(s.dtype, pd.CategoricalDtype):
                v = s.cat.codes.to_numpy(dtype=float)
                v[v < 0] = np.nan
            else:
                v = pd.to_numeric(s, errors="coerce").to_numpy(dtype=float)
            cols.append(v)
        arr = np.column_stack(cols) if cols else np.empty((len(X), 0))
    else:
        arr = np.asarray(X, dtype=float)
    arr = arr.copy()
    for j in range(arr.shape[1]):
        col = arr[:, j]
        bad = ~np.isfinite(col)
        if bad.any():
            fill = np.nanmedian(col[~bad]) if (~bad).any() else 0.0
            col[bad] = fill
    return arr


class FeatureSelector(TransformerMixin, BaseEstimator):
    """Keep the ``k`` best features (``method="k_best"``; all of them when ``k`` exceeds their number)
    or the best ``percentile`` % (at least one), scored by an F-test against ``y`` (``task``:
    "classification" or "regression"). Ties keep the earlier column."""

    def __init__(self, method: str = "k_best", k: int = 10, percentile: float = 50.0,
                 task: str = "classification") -> None:
        self.method = method
        self.k = k
        self.percentile = percentile
        self.task = task

    def fit(self, X: Any, y: Any = None) -> FeatureSelector:
        from sklearn.feature_selection import f_classif, f_regression

        if y is None:
            raise ValueError("FeatureSelector needs the target y to score features")
        Xn = _numeric_view(X)
        n = Xn.shape[1]
        self.n_features_in_ = n
        if self.method == "k_best":
            keep = min(int(self.k), n)
        elif self.method == "percentile":
            keep = max(1, math.ceil(n * float(self.percentile) / 100.0))
        else:
            raise ValueError(f"FeatureSelector method must be 'k_best' or 'percentile', got {self.method!r}")
        score = f_classif if self.task == "classification" else f_regression
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")  # constant columns: F is undefined (NaN), ranked last
            scores = np.asarray(score(Xn, np.asarray(y))[0], dtype=float) if n else np.empty(0)
        scores = np.where(np.isnan(scores), -np.inf, scores)  # a perfect separator scores +inf: kept first
        order = np.argsort(-scores, kind="stable")[:keep]
        mask = np.zeros(n, dtype=bool)
        mask[order] = True
        self.support_ = mask
        self.scores_ = scores
        self.columns_ = [str(c) for c in X.columns] if isinstance(X, pd.DataFrame) else None
        return self

    def transform(self, X: Any) -> Any:
        if isinstance(X, pd.DataFrame):
            if self.columns_ is not None:
                X = X.loc[:, self.columns_]
            return X.loc[:, list(np.asarray(X.columns)[self.support_])]
        return np.asarray(X)[:, self.support_]

    def get_support(self) -> np.ndarray:
        return np.asarray(self.support_)
