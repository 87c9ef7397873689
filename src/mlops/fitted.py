"""The fitted model and its labels: :class:`TunedModel` (preprocessor + estimator, predicting in the
original label space), :class:`AveragedModel` (several tuned models, their predictions averaged)
and :class:`LabelCodec` (class labels <-> 0..K-1).

Both are plain data once fitted, so they serialize with skops/joblib and rebuild predictions
anywhere the libraries are installed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from .errors import DataValidationError
from .metrics import MetricSpec
from .preprocessing import as_frame
from .problems import ANOMALY, BINARY, CLASSIFICATION

__all__ = ["AveragedModel", "LabelCodec", "TunedModel", "anomaly_labels"]


class LabelCodec:
    """Maps class labels to 0..K-1 (the classes seen in training, sorted)."""

    def __init__(self, y_train: Any) -> None:
        classes = sorted(pd.unique(pd.Series(np.asarray(y_train, dtype=object))), key=_sort_key)
        self._set_classes(classes)

    @classmethod
    def from_classes(cls, classes: Any) -> LabelCodec:
        codec = cls.__new__(cls)
        codec._set_classes(classes)
        return codec

    def _set_classes(self, classes: Any) -> None:
        self.classes_ = np.asarray(list(classes), dtype=object)
        self._index = {c: i for i, c in enumerate(self.classes_.tolist())}

    def encode(self, y: Any, *, name: str = "y") -> np.ndarray:
        values = np.asarray(y, dtype=object).tolist()
        unknown = sorted({v for v in values if v not in self._index}, key=_sort_key)
        if unknown:
            raise DataValidationError(
                f"{name} has classes {unknown[:10]} that do not occur in y_train "
                f"(training classes: {self.classes_.tolist()[:20]}); every class must appear in training data"
            )
        return np.fromiter((self._index[v] for v in values), dtype=np.int64, count=len(values))

    def decode(self, codes: Any) -> np.ndarray:
        return self.classes_[np.asarray(codes, dtype=np.int64)]


def _sort_key(v: Any) -> tuple[str, Any]:
    return (type(v).__name__, v) if isinstance(v, (int, float, str, bool)) else (type(v).__name__, str(v))


class TunedModel(BaseEstimator):
    """A fitted preprocessor + estimator, predicting in the original label space.

    ``predict`` returns original class labels (classification), numbers (regression) or 1 for an
    anomaly / 0 for normal (anomaly detection); ``predict_proba`` gives class probabilities in
    ``classes_`` order; ``score_samples`` gives an anomaly score (higher = more anomalous).
    """

    def __init__(self, preprocessor: Any, estimator: Any, problem_type: str, classes: Any = None,
                 algorithm: str | None = None, feature_names: list[str] | None = None) -> None:
        self.preprocessor = preprocessor
        self.estimator = estimator
        self.problem_type = problem_type
        self.classes = classes
        self.algorithm = algorithm
        self.feature_names = feature_names

    @property
    def classes_(self) -> np.ndarray | None:
        return None if self.classes is None else np.asarray(self.classes, dtype=object)

    @property
    def has_proba(self) -> bool:
        """Whether the estimator gives class probabilities of its own (not a squashed decision function)."""
        return hasattr(self.estimator, "predict_proba")

    def _transform(self, X: Any) -> Any:
        X = as_frame(X)
        if self.feature_names is not None:
            missing = [c for c in self.feature_names if c not in X.columns]
            if missing:
                raise DataValidationError(f"input is missing feature columns the model was trained on: {missing[:10]}")
            X = X.loc[:, self.feature_names]
        return self.preprocessor.transform(X)

    def predict(self, X: Any) -> np.ndarray:
        Xt = self._transform(X)
        pred = self.estimator.predict(Xt)
        if self.problem_type == ANOMALY:
            return (np.asarray(pred) == -1).astype(int)
        if self.classes is not None:
            return np.asarray(self.classes, dtype=object)[np.asarray(pred, dtype=np.int64)]
        return np.asarray(pred)

    def predict_proba(self, X: Any) -> np.ndarray:
        return _proba(self.estimator, self._transform(X))

    def score_samples(self, X: Any) -> np.ndarray:
        return -np.asarray(self.estimator.score_samples(self._transform(X)))

    def predict_for_metric(self, X: Any, metric: MetricSpec) -> Any:
        """The prediction ``metric`` needs, in encoded label space (used by the evaluator node)."""
        return _prediction(self.estimator, self._transform(X), metric, self.problem_type)

    def encode_labels(self, y: Any) -> np.ndarray:
        if self.problem_type in CLASSIFICATION:
            return LabelCodec.from_classes(self.classes).encode(y)
        if self.problem_type == ANOMALY:
            return anomaly_labels(y)
        return np.asarray(y, dtype=float)


class AveragedModel(TunedModel):
    """The final model of an ensemble: ``members`` (TunedModels of the same family and labels, e.g.
    the study's best configurations, each fitted on the same rows) with their predictions averaged.

    Class probabilities are the members' mean, labels the most probable class of that mean; a
    regression predicts the members' mean. Averaging the few best configurations of a study, rather
    than deploying the single best, spends less of the validation noise that picked the best
    (``ensemble_size`` in the graph, ``--ensemble`` on the command line). Anomaly detection is not
    averaged.
    """

    def __init__(self, members: list[TunedModel], problem_type: str, classes: Any = None,
                 algorithm: str | None = None, feature_names: list[str] | None = None,
                 weights: list[float] | None = None) -> None:
        super().__init__(None, None, problem_type, classes=classes, algorithm=algorithm, feature_names=feature_names)
        self.members = members
        #: the members' weights (summing to 1; ``None``: equal), e.g. a family search's blend (:mod:`.blend`)
        self.weights = weights

    @classmethod
    def of(cls, members: list[TunedModel], weights: list[float] | None = None) -> AveragedModel:
        """The average of ``members`` (weighted by ``weights``, normalized to sum to 1; ``None``:
        equally), which must share problem type, classes and features (members of different
        families each hold their own preprocessing)."""
        if not members:
            raise ValueError("an averaged model needs at least one member")
        if weights is not None:
            w = np.asarray(weights, dtype=float)
            if w.shape != (len(members),) or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
                raise ValueError(f"weights must be one non-negative number per member, not all zero; got {weights!r}")
            weights = (w / w.sum()).tolist()
        first = members[0]
        if first.problem_type == ANOMALY:
            raise ValueError("anomaly detection models are not averaged")
        for m in members[1:]:
            if m.problem_type != first.problem_type or list(m.classes or []) != list(first.classes or []):
                raise ValueError("averaged members must share the problem type and the classes")
        return cls(list(members), first.problem_type, classes=first.classes, algorithm=first.algorithm,
                   feature_names=first.feature_names, weights=weights)

    def _mean(self, predictions: list[Any]) -> np.ndarray:
        # getattr: a model saved before members had weights has none (equal weights)
        return np.average(np.asarray(predictions, dtype=float), axis=0, weights=getattr(self, "weights", None))

    @property
    def has_proba(self) -> bool:
        return all(m.has_proba for m in self.members)

    def predict_proba(self, X: Any) -> np.ndarray:
        return self._mean([m.predict_proba(X) for m in self.members])

    def predict(self, X: Any) -> np.ndarray:
        if self.classes is None:
            return self._mean([np.asarray(m.predict(X), dtype=float) for m in self.members])
        return np.asarray(self.classes, dtype=object)[np.argmax(self.predict_proba(X), axis=1)]

    def score_samples(self, X: Any) -> np.ndarray:
        # never an anomaly detector (``of`` refuses them): no anomaly score, as for any classifier
        raise AttributeError("an AveragedModel has no score_samples: anomaly detection models are not averaged")

    def predict_for_metric(self, X: Any, metric: MetricSpec) -> Any:
        if self.classes is not None and metric.needs == "label":
            return np.argmax(self.predict_proba(X), axis=1)  # encoded labels of the mean probabilities
        return self._mean([np.asarray(m.predict_for_metric(X, metric), dtype=float) for m in self.members])


def _softmax(d: np.ndarray) -> np.ndarray:
    e = np.exp(d - d.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _proba(est: Any, Xt: Any) -> np.ndarray:
    if hasattr(est, "predict_proba"):
        return np.asarray(est.predict_proba(Xt))
    d = np.asarray(est.decision_function(Xt))
    if d.ndim == 1:
        p1 = 1.0 / (1.0 + np.exp(-d))
        return np.column_stack([1 - p1, p1])
    return _softmax(d)


def _prediction(est: Any, Xt: Any, metric: MetricSpec, problem_type: str) -> Any:
    if problem_type == ANOMALY:
        if metric.needs == "label":
            return (np.asarray(est.predict(Xt)) == -1).astype(int)
        return -np.asarray(est.score_samples(Xt))
    if metric.needs == "label":
        return est.predict(Xt)
    if metric.needs == "proba" or hasattr(est, "predict_proba"):
        p = _proba(est, Xt)
        return p[:, 1] if (metric.needs == "score" and problem_type == BINARY) else p
    d = np.asarray(est.decision_function(Xt))
    return d if d.ndim == 1 else _softmax(d)


def anomaly_labels(y: Any) -> np.ndarray:
    """1 = anomaly, 0 = normal; scikit-learn's -1 (outlier) / 1 (inlier) convention is accepted too."""
    arr = np.asarray(y)
    values = set(pd.unique(arr).tolist())
    if values <= {-1, 1}:
        return (arr == -1).astype(int)
    if values <= {0, 1, True, False}:
        return arr.astype(int)
    raise DataValidationError(
        f"anomaly-detection labels must be 0/1 (1 = anomaly) or -1/1 (-1 = outlier), got values {sorted(values)[:10]}"
    )

