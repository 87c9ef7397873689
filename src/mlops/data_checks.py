"""Checks of training data and metric support, run before any study exists."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from .errors import DataValidationError, IncompatibleMetricError
from .fitted import LabelCodec
from .metrics import MetricSpec
from .models import ModelSpec
from .preprocessing import as_frame
from .problems import (
    ANOMALY,
    BINARY,
    CLASSIFICATION,
    REGRESSION,
    normalize_problem_type,
)

__all__ = ["validate_training_data", "check_metric_supported"]



def _n_rows(a: Any) -> int:
    return len(a) if hasattr(a, "__len__") else np.asarray(a).shape[0]


def validate_training_data(problem_type: str, X_train: Any, y_train: Any, X_val: Any = None, y_val: Any = None,
                           *, require_val: bool = True) -> tuple[pd.DataFrame, Any, pd.DataFrame | None, Any]:
    """Refuse data that cannot be tuned on; returns X frames (validation columns in training order)."""
    pt = normalize_problem_type(problem_type)
    if X_train is None:
        raise DataValidationError("X_train is required")
    Xtr = as_frame(X_train)
    if Xtr.shape[0] == 0:
        raise DataValidationError("X_train is empty (0 rows); the training split needs rows")
    if Xtr.shape[1] == 0:
        raise DataValidationError("X_train has no feature columns")
    if pt != ANOMALY or y_train is not None:
        _check_y("y_train", Xtr, y_train, pt)
    Xva = None
    if X_val is None and y_val is not None or X_val is not None and y_val is None:
        raise DataValidationError("X_val and y_val go together: give both or neither")
    if X_val is not None:
        Xva = as_frame(X_val)
        if Xva.shape[0] == 0:
            raise DataValidationError("X_val is empty (0 rows); the validation split needs rows")
        if set(Xva.columns) != set(Xtr.columns):
            only_tr = sorted(set(Xtr.columns) - set(Xva.columns))
            only_va = sorted(set(Xva.columns) - set(Xtr.columns))
            raise DataValidationError(
                "feature columns differ between train and validation: "
                f"only in X_train {only_tr[:10]}, only in X_val {only_va[:10]}; both splits need the same columns"
            )
        Xva = Xva.loc[:, list(Xtr.columns)]
        _check_y("y_val", Xva, y_val, pt)
        if pt in CLASSIFICATION:
            LabelCodec(y_train).encode(y_val, name="y_val")
    elif require_val:
        raise DataValidationError("validation data (X_val, y_val) is required unless cv is given")
    if pt == ANOMALY and y_val is None:
        raise DataValidationError("anomaly detection is scored on labelled validation data: give y_val (1 = anomaly)")
    return Xtr, y_train, Xva, y_val


def _check_y(name: str, X: pd.DataFrame, y: Any, pt: str) -> None:
    if y is None:
        raise DataValidationError(f"{name} is required")
    if _n_rows(y) != X.shape[0]:
        raise DataValidationError(
            f"length mismatch: X has {X.shape[0]} rows but {name} has {_n_rows(y)}; they must match row for row"
        )
    s = pd.Series(np.asarray(y, dtype=object) if pt != REGRESSION else np.asarray(y))
    n_nan = int(s.isna().sum())
    if n_nan:
        raise DataValidationError(f"{name} contains {n_nan} missing (NaN) values; drop those rows or impute the target first")
    if pt == REGRESSION:
        if not pd.api.types.is_numeric_dtype(s):
            raise DataValidationError(f"{name} must be numeric for regression, got dtype {s.dtype}")
        if not np.isfinite(s.to_numpy(dtype=float)).all():
            raise DataValidationError(f"{name} contains infinite values; regression targets must be finite")
    if pt in CLASSIFICATION and name == "y_train":
        n_classes = s.nunique()
        if n_classes < 2:
            raise DataValidationError(
                f"{name} has only one class ({s.iloc[0]!r}); classification needs at least two classes"
            )
        if pt == BINARY and n_classes > 2:
            raise DataValidationError(
                f"{name} has {n_classes} classes but problem_type is binary_classification; "
                "use multiclass_classification"
            )



def check_metric_supported(spec: ModelSpec, problem_type: str, metric: MetricSpec,
                           params: Mapping[str, Any] | None = None) -> None:
    """Refuse a metric that needs class probabilities from a model that cannot give them."""
    pt = normalize_problem_type(problem_type)
    if pt == ANOMALY or metric.needs != "proba":
        return
    est = spec.build(params if params is not None else spec.default_params(pt), pt)
    if not hasattr(est, "predict_proba"):
        raise IncompatibleMetricError(
            f"metric {metric.name!r} needs class probabilities, which {spec.name!r} does not "
            "provide; choose a metric such as 'roc_auc' or 'accuracy', or another algorithm"
        )

