"""Metric registry: name -> scorer, direction, the prediction it needs, and the problems it fits."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn import metrics as skm

from .errors import IncompatibleMetricError, UnknownMetricError
from .problems import ANOMALY, BINARY, MULTICLASS, PROBLEM_TYPES, REGRESSION, normalize_problem_type

__all__ = [
    "MetricSpec",
    "get_metric",
    "default_metric",
    "list_metrics",
    "score_predictions",
    # re-exported from .problems, where they are defined
    "BINARY",
    "MULTICLASS",
    "REGRESSION",
    "ANOMALY",
    "PROBLEM_TYPES",
    "normalize_problem_type",
]


@dataclass(frozen=True)
class MetricSpec:
    """A metric: ``needs`` is "label" (predict), "proba" (predict_proba) or "score" (a ranking score)."""

    name: str
    direction: str  # "maximize" | "minimize"
    needs: str
    problem_types: tuple[str, ...]
    func: Callable[..., float]
    #: LightGBM / XGBoost native eval metric names used for per-round reports and early stopping.
    lgbm: dict[str, str] | None = None
    xgb: dict[str, str] | None = None

    @property
    def greater_is_better(self) -> bool:
        return self.direction == "maximize"


def _rmse(y, p):
    return float(np.sqrt(skm.mean_squared_error(y, p)))


def _roc_auc(y, s, labels=None):
    s = np.asarray(s)
    if s.ndim == 2 and s.shape[1] == 2:
        s = s[:, 1]
    if s.ndim == 2:
        return skm.roc_auc_score(y, s, multi_class="ovr", average="macro", labels=labels)
    return skm.roc_auc_score(y, s)


def _ap(y, s, labels=None):
    s = np.asarray(s)
    if s.ndim == 2 and s.shape[1] == 2:
        s = s[:, 1]
    if s.ndim == 2:
        from sklearn.preprocessing import label_binarize

        return skm.average_precision_score(label_binarize(y, classes=labels), s, average="macro")
    return skm.average_precision_score(y, s)


def _log_loss(y, p, labels=None):
    return skm.log_loss(y, p, labels=labels)


def _averaged(fn, average):
    def f(y, p):
        return fn(y, p, average=average, zero_division=0)

    return f


_C = (BINARY, MULTICLASS)
_METRICS: dict[str, MetricSpec] = {
    m.name: m
    for m in [
        MetricSpec("roc_auc", "maximize", "score", (BINARY, MULTICLASS, ANOMALY), _roc_auc,
                   lgbm={BINARY: "auc", MULTICLASS: "auc_mu"}, xgb={BINARY: "auc"}),
        MetricSpec("average_precision", "maximize", "score", (BINARY, MULTICLASS, ANOMALY), _ap,
                   lgbm={BINARY: "average_precision"}, xgb={BINARY: "aucpr"}),
        MetricSpec("accuracy", "maximize", "label", _C + (ANOMALY,), skm.accuracy_score,
                   lgbm={BINARY: "binary_error", MULTICLASS: "multi_error"},
                   xgb={BINARY: "error", MULTICLASS: "merror"}),
        MetricSpec("balanced_accuracy", "maximize", "label", _C + (ANOMALY,), skm.balanced_accuracy_score),
        MetricSpec("f1", "maximize", "label", (BINARY, ANOMALY), _averaged(skm.f1_score, "binary")),
        MetricSpec("f1_macro", "maximize", "label", _C, _averaged(skm.f1_score, "macro")),
        MetricSpec("f1_weighted", "maximize", "label", _C, _averaged(skm.f1_score, "weighted")),
        MetricSpec("precision", "maximize", "label", (BINARY, ANOMALY), _averaged(skm.precision_score, "binary")),
        MetricSpec("precision_macro", "maximize", "label", _C, _averaged(skm.precision_score, "macro")),
        MetricSpec("recall", "maximize", "label", (BINARY, ANOMALY), _averaged(skm.recall_score, "binary")),
        MetricSpec("recall_macro", "maximize", "label", _C, _averaged(skm.recall_score, "macro")),
        MetricSpec("log_loss", "minimize", "proba", _C, _log_loss,
                   lgbm={BINARY: "binary_logloss", MULTICLASS: "multi_logloss"},
                   xgb={BINARY: "logloss", MULTICLASS: "mlogloss"}),
        MetricSpec("rmse", "minimize", "label", (REGRESSION,), _rmse, lgbm={REGRESSION: "rmse"},
                   xgb={REGRESSION: "rmse"}),
        MetricSpec("mae", "minimize", "label", (REGRESSION,), skm.mean_absolute_error, lgbm={REGRESSION: "l1"},
                   xgb={REGRESSION: "mae"}),
        MetricSpec("r2", "maximize", "label", (REGRESSION,), skm.r2_score),
        MetricSpec("mape", "minimize", "label", (REGRESSION,), skm.mean_absolute_percentage_error,
                   lgbm={REGRESSION: "mape"}, xgb={REGRESSION: "mape"}),
    ]
}
_METRIC_ALIASES = {
    "auc": "roc_auc", "roc-auc": "roc_auc", "rocauc": "roc_auc", "ap": "average_precision",
    "pr_auc": "average_precision", "acc": "accuracy", "logloss": "log_loss", "neg_log_loss": "log_loss",
    "cross_entropy": "log_loss", "f1_binary": "f1", "mse_root": "rmse", "l1": "mae", "r_squared": "r2",
    "precision_binary": "precision", "recall_binary": "recall",
}
_DEFAULT = {BINARY: "roc_auc", MULTICLASS: "log_loss", REGRESSION: "rmse", ANOMALY: "roc_auc"}


def list_metrics(problem_type: str | None = None) -> list[str]:
    if problem_type is None:
        return list(_METRICS)
    pt = normalize_problem_type(problem_type)
    return [n for n, m in _METRICS.items() if pt in m.problem_types]


def default_metric(problem_type: str) -> str:
    return _DEFAULT[normalize_problem_type(problem_type)]


def get_metric(name: str, problem_type: str | None = None) -> MetricSpec:
    """Look a metric up (case-insensitive, with aliases) and check that it fits ``problem_type``."""
    key = str(name).strip().lower()
    key = _METRIC_ALIASES.get(key, key)
    if key not in _METRICS:
        raise UnknownMetricError(f"unknown metric {name!r}; known metrics: {sorted(_METRICS)}")
    spec = _METRICS[key]
    if problem_type is not None:
        pt = normalize_problem_type(problem_type)
        if pt not in spec.problem_types:
            raise IncompatibleMetricError(
                f"metric {spec.name!r} does not fit problem type {pt!r}; "
                f"metrics for {pt}: {list_metrics(pt)}"
            )
    return spec


def score_predictions(metric: MetricSpec, y_true: Any, prediction: Any, *, labels: Any = None) -> float:
    """Score a prediction of the kind ``metric.needs`` (labels, class probabilities or scores)."""
    if metric.name in ("roc_auc", "average_precision", "log_loss"):
        return float(metric.func(y_true, prediction, labels=labels))
    return float(metric.func(y_true, prediction))
