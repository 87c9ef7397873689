"""ONE generic objective (F5) for every model family, on a validation split or on CV folds.

:class:`ModelObjective` is data (a :class:`ModelSpec`, a metric, training data, a search space) and
two steps:

- ``suggest(trial)`` samples the params (only on the calling side, where the trial lives);
- ``evaluate(params, reporter)`` fits and scores; it is a pure function of the params, so it runs in
  a worker thread or in a worker process (see ``executors.py``), reporting intermediate values
  through a small :class:`Reporter` (per boosting round on a validation split, per fold in CV).

``fit_model`` is the same fitting code used by the final training node: a trial and the final
model are built identically.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import optuna
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.model_selection import KFold, StratifiedKFold, TimeSeriesSplit

from .errors import ConfigurationError, DataValidationError, IncompatibleMetricError
from .metrics import (
    ANOMALY,
    BINARY,
    MULTICLASS,
    REGRESSION,
    MetricSpec,
    default_metric,
    get_metric,
    normalize_problem_type,
    score_predictions,
)
from .models import ModelSpec, get_model_spec, threads_per_trial
from .preprocessing import as_frame, build_preprocessor
from .search_space import SearchSpace, parse_search_space
from .types import SOURCE_ATTR

__all__ = [
    "ModelObjective",
    "Evaluation",
    "Reporter",
    "TrialReporter",
    "NullReporter",
    "TunedModel",
    "TrialCancelled",
    "REFIT_MODES",
    "concat_rows",
    "fit_model",
    "validate_training_data",
    "check_metric_supported",
    "LabelCodec",
]

_CLASSIFICATION = (BINARY, MULTICLASS)


class TrialCancelled(Exception):
    """Raised inside a fit when its trial was cancelled (timeout, study cancelled)."""


class Reporter(Protocol):
    def report(self, value: float, step: int) -> None: ...

    def should_prune(self) -> bool: ...

    def cancelled(self) -> bool: ...


class NullReporter:
    """For fits outside a study (final training): reports nothing, never prunes."""

    def report(self, value: float, step: int) -> None:
        return None

    def should_prune(self) -> bool:
        return False

    def cancelled(self) -> bool:
        return False


class TrialReporter:
    """Reports straight into an Optuna trial (thread mode); ``cancel`` stops the fit cooperatively."""

    def __init__(self, trial: optuna.Trial, cancel: threading.Event | None = None) -> None:
        self.trial = trial
        self.cancel = cancel or threading.Event()
        self._multi = len(trial.study.directions) > 1

    def report(self, value: float, step: int) -> None:
        if not self._multi and math.isfinite(value):
            self.trial.report(float(value), step)

    def should_prune(self) -> bool:
        return not self._multi and self.trial.should_prune()

    def cancelled(self) -> bool:
        return self.cancel.is_set()


@dataclass
class Evaluation:
    """What one evaluation returns: the objective value and attributes worth storing on the trial."""

    value: float
    user_attrs: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# labels and the fitted model
# ---------------------------------------------------------------------------------------------
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
        if self.problem_type in _CLASSIFICATION:
            return LabelCodec.from_classes(self.classes).encode(y)
        if self.problem_type == ANOMALY:
            return _anomaly_labels(y)
        return np.asarray(y, dtype=float)


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


def _anomaly_labels(y: Any) -> np.ndarray:
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


# ---------------------------------------------------------------------------------------------
# data validation
# ---------------------------------------------------------------------------------------------
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
        if pt in _CLASSIFICATION:
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
    if pt in _CLASSIFICATION and name == "y_train":
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


# ---------------------------------------------------------------------------------------------
# fitting
# ---------------------------------------------------------------------------------------------
_HIGHER_BETTER_NATIVE = {"auc", "auc_mu", "average_precision", "aucpr", "map", "ndcg"}


def _native_metric(spec: ModelSpec, metric: MetricSpec, problem_type: str) -> tuple[str, bool]:
    """(native eval metric name, is_proxy): our metric when the library has it, else its default loss."""
    table = metric.lgbm if spec.kind == "lightgbm" else metric.xgb
    if table and problem_type in table:
        return table[problem_type], False
    if spec.kind == "lightgbm":
        return {BINARY: "binary_logloss", MULTICLASS: "multi_logloss", REGRESSION: "l2"}[problem_type], True
    return {BINARY: "logloss", MULTICLASS: "mlogloss", REGRESSION: "rmse"}[problem_type], True


_LOSS = {
    "lightgbm": {BINARY: "binary_logloss", MULTICLASS: "multi_logloss", REGRESSION: "l2"},
    "xgboost": {BINARY: "logloss", MULTICLASS: "mlogloss", REGRESSION: "rmse"},
}


def _to_reported(native: str, value: float, metric: MetricSpec) -> float:
    """A native per-round value on the scale and direction of the study's metric."""
    if native in ("binary_error", "multi_error", "error", "merror"):
        return 1.0 - value  # accuracy
    native_higher = native in _HIGHER_BETTER_NATIVE
    return value if native_higher == metric.greater_is_better else -value


def _lgbm_has_eval_xy() -> bool:
    try:
        import inspect

        import lightgbm

        return "eval_X" in inspect.signature(lightgbm.LGBMModel.fit).parameters
    except Exception:  # pragma: no cover - lightgbm missing or unusual
        return False


_LGBM_EVAL_XY = _lgbm_has_eval_xy()


@dataclass
class FitResult:
    model: TunedModel
    #: boosting rounds chosen by early stopping on validation (None: not a boosting fit / no validation)
    best_iteration: int | None
    fit_seconds: float
    #: boosting rounds the fitted model has
    n_rounds: int | None = None
    #: rows the model was fitted on: "train" or "train+val"
    refit: str = "train"


#: how the final model is fitted: ``train`` (like the trials) or ``train+val`` (all non-test rows)
REFIT_MODES = ("train+val", "train")


def _uses_early_stopping(params: Mapping[str, Any], early_stopping_rounds: int | None) -> bool:
    return bool(early_stopping_rounds) and params.get("boosting_type") != "dart"


def concat_rows(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """``a`` then ``b`` (same columns); categorical columns keep a ``category`` dtype with the union
    of both sides' categories (plain ``pd.concat`` turns differing categories into ``object``)."""
    b = b[list(a.columns)]
    a, b = a.copy(), b.copy()
    for col in a.columns:
        if isinstance(a[col].dtype, pd.CategoricalDtype) or isinstance(b[col].dtype, pd.CategoricalDtype):
            a_cat, b_cat = a[col].astype("category"), b[col].astype("category")
            seen = set(a_cat.cat.categories)
            cats = list(a_cat.cat.categories) + [c for c in b_cat.cat.categories if c not in seen]
            a[col] = a_cat.cat.set_categories(cats)
            b[col] = b_cat.cat.set_categories(cats)
    return pd.concat([a, b], axis=0, ignore_index=True)


def _fit_boosting(spec: ModelSpec, est: Any, Xt_tr: Any, y_tr: Any, Xt_va: Any, y_va: Any, *,
                  metric: MetricSpec, problem_type: str, reporter: Reporter, early_stopping_rounds: int | None,
                  report_steps: bool) -> int | None:
    native, _ = _native_metric(spec, metric, problem_type)
    # Early stopping watches the training loss (a proper scoring rule): stopping on a ranking metric
    # such as AUC halts while probabilities are still near the prior (bad calibration, worse test
    # scores). The study's metric is what gets reported per round and scored at the end.
    loss = _LOSS[spec.kind][problem_type]
    n_rounds = int(est.get_params().get("n_estimators") or 100)
    every = max(1, n_rounds // 40)  # at most ~40 reports per fit: storage writes stay cheap

    def on_round(step: int, value: float) -> None:
        if reporter.cancelled():
            raise TrialCancelled(f"cancelled at round {step}")
        if report_steps and (step % every == 0 or step == n_rounds - 1):
            reporter.report(_to_reported(native, value, metric), step)
            if reporter.should_prune():
                raise optuna.TrialPruned(f"pruned at boosting round {step}")

    if spec.kind == "lightgbm":
        import lightgbm as lgb

        def lgb_callback(env: Any) -> None:
            for data_name, name, value, _ in env.evaluation_result_list:
                if data_name == "valid_0" and name == native:
                    on_round(env.iteration - env.begin_iteration, float(value))
                    return

        callbacks = [lgb_callback]
        if early_stopping_rounds and est.get_params().get("boosting_type") != "dart":
            callbacks.insert(0, lgb.early_stopping(early_stopping_rounds, first_metric_only=True, verbose=False))
        est.set_params(metric=[loss, native] if native != loss else native)
        if _LGBM_EVAL_XY:  # LightGBM >= 4.6 deprecates eval_set
            est.fit(Xt_tr, y_tr, eval_X=(Xt_va,), eval_y=(y_va,), callbacks=callbacks)
        else:
            est.fit(Xt_tr, y_tr, eval_set=[(Xt_va, y_va)], callbacks=callbacks)
        best = getattr(est, "best_iteration_", None)
        return int(best) if best else n_rounds

    import xgboost as xgb

    class _XgbCallback(xgb.callback.TrainingCallback):
        def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
            hist = evals_log.get("validation_0", {}).get(native)
            if hist:
                on_round(epoch, float(hist[-1]))
            return False

    # XGBoost stops early on the *last* eval metric.
    est.set_params(eval_metric=[native, loss] if native != loss else native, callbacks=[_XgbCallback()],
                   early_stopping_rounds=early_stopping_rounds or None)
    est.fit(Xt_tr, y_tr, eval_set=[(Xt_va, y_va)], verbose=False)
    est.callbacks = None  # keep the fitted model picklable without our closure (set_params would
    # push the eval_metric list into the fitted booster, which XGBoost rejects)
    best = getattr(est, "best_iteration", None)
    return int(best) + 1 if best is not None else n_rounds


def fit_model(spec: ModelSpec, problem_type: str, params: Mapping[str, Any], X_train: pd.DataFrame, y_train: Any,
              X_val: pd.DataFrame | None = None, y_val: Any = None, *, metric: MetricSpec | None = None,
              reporter: Reporter | None = None, early_stopping_rounds: int | None = 50,
              n_threads: int | None = None, preprocessor: Any = None, codec: LabelCodec | None = None,
              report_steps: bool = True) -> FitResult:
    """Fit ``spec`` with ``params`` (already merged with defaults) on encoded training data.

    ``y_train``/``y_val`` are encoded labels (0..K-1) for classification. Boosting families use
    early stopping on the validation data when it is given. ``preprocessor`` may be pre-fitted
    (then ``X_*`` are passed through its ``transform`` only).
    """
    t0 = time.perf_counter()
    reporter = reporter or NullReporter()
    pt = normalize_problem_type(problem_type)
    if preprocessor is None:
        preprocessor = build_preprocessor(spec, X_train).fit(X_train)
    Xt_tr = preprocessor.transform(X_train)
    Xt_va = preprocessor.transform(X_val) if X_val is not None else None
    est = spec.build(params, pt, n_threads=n_threads)
    best_iteration = None
    if spec.is_boosting and Xt_va is not None and metric is not None:
        best_iteration = _fit_boosting(spec, est, Xt_tr, y_train, Xt_va, y_val, metric=metric,
                                       problem_type=pt, reporter=reporter,
                                       early_stopping_rounds=early_stopping_rounds, report_steps=report_steps)
    elif pt == ANOMALY:
        est.fit(Xt_tr)
    else:
        est.fit(Xt_tr, y_train)
    if reporter.cancelled():
        raise TrialCancelled("cancelled after fit")
    model = TunedModel(preprocessor, est, pt, classes=None if codec is None else codec.classes_.tolist(),
                       algorithm=spec.name, feature_names=[str(c) for c in X_train.columns])
    return FitResult(model, best_iteration, time.perf_counter() - t0)


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


# ---------------------------------------------------------------------------------------------
# the objective
# ---------------------------------------------------------------------------------------------
@dataclass
class _Fold:
    preprocessor: Any
    X_train: pd.DataFrame
    y_train: Any
    X_val: pd.DataFrame
    y_val: Any


class ModelObjective:
    """The generic objective: ``value = metric(fit(defaults | params on train), validation)``.

    Built by :meth:`OptunaOptimizer.create_validation_objective` / ``create_cv_objective`` or
    directly. Callable as a plain Optuna objective (``objective(trial) -> float``) too.
    """

    def __init__(
        self,
        algorithm: str | ModelSpec,
        problem_type: str,
        X_train: Any,
        y_train: Any,
        X_val: Any = None,
        y_val: Any = None,
        *,
        metric: str | None = None,
        search_space: Mapping[str, Any] | SearchSpace | None = None,
        space_overrides: Mapping[str, Any] | None = None,
        fixed_params: Mapping[str, Any] | None = None,
        cv: int | None = None,
        cv_strategy: str = "auto",
        seed: int | None = 0,
        early_stopping_rounds: int | None = 50,
        n_jobs: int = 1,
    ) -> None:
        self.problem_type = normalize_problem_type(problem_type)
        self.spec = get_model_spec(algorithm, self.problem_type)
        self.metric = get_metric(metric or default_metric(self.problem_type), self.problem_type)
        if cv is not None and (isinstance(cv, bool) or not isinstance(cv, int) or cv < 2):
            raise DataValidationError(f"cv must be an integer >= 2 (number of folds), got {cv!r}")
        if cv_strategy not in ("auto", "stratified", "kfold", "timeseries"):
            raise DataValidationError(
                f"cv_strategy must be one of 'auto', 'stratified', 'kfold', 'timeseries', got {cv_strategy!r}"
            )
        self.cv, self.cv_strategy = cv, cv_strategy
        Xtr, ytr, Xva, yva = validate_training_data(self.problem_type, X_train, y_train, X_val, y_val,
                                                    require_val=cv is None)
        self.X_train, self.X_val = Xtr, Xva
        if self.problem_type in _CLASSIFICATION:
            self.codec: LabelCodec | None = LabelCodec(ytr)
            self.y_train = self.codec.encode(ytr, name="y_train")
            self.y_val = None if yva is None else self.codec.encode(yva, name="y_val")
            self.labels = list(range(len(self.codec.classes_)))
        else:
            self.codec = None
            self.labels = None
            conv = _anomaly_labels if self.problem_type == ANOMALY else (lambda v: np.asarray(v, dtype=float))
            self.y_train = None if ytr is None else conv(ytr)
            self.y_val = None if yva is None else conv(yva)
        if self.problem_type == ANOMALY and self.metric.name in ("roc_auc", "average_precision"):
            if len(set(self.y_val.tolist())) < 2:
                raise DataValidationError("y_val must contain both anomalies (1) and normal rows (0) to score roc_auc")
        self.seed = seed
        self.early_stopping_rounds = early_stopping_rounds
        self.n_jobs = max(1, int(n_jobs))
        self._custom_space = search_space is not None or bool(space_overrides)
        if search_space is not None:
            space = parse_search_space(search_space)
        else:
            space = self.spec.search_space(self.problem_type)
            if self.metric.needs in ("score", "proba") and "class_weight" in space.names:
                # Reweighting classes cannot improve a ranking (roc_auc) and it distorts the
                # probabilities (log loss, calibration): not searched for these metrics.
                space = space.with_overrides({"class_weight": None})
        if space_overrides:
            space = space.with_overrides(space_overrides)
        if fixed_params and "n_estimators" in fixed_params and "dart_rounds" in space.names:
            space = space.with_overrides({"dart_rounds": None})  # a fixed round count holds for dart too
        self.search_space = space
        self.default_params = {**self.spec.default_params(self.problem_type, seed=seed), **(fixed_params or {})}
        self.fixed_params = dict(fixed_params or {})
        self._check_metric_supported()
        self._folds: list[_Fold] | None = None
        self._lock = threading.Lock()

    # -- pickling for worker processes: the data goes, caches and locks are rebuilt -------------
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_folds"] = None
        state.pop("_lock", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def _check_metric_supported(self) -> None:
        check_metric_supported(self.spec, self.problem_type, self.metric, self.default_params)

    @property
    def direction(self) -> str:
        return self.metric.direction

    @property
    def uses_cv(self) -> bool:
        return self.cv is not None

    # -- sampling ---------------------------------------------------------------------------
    def portfolio_trial_params(self) -> list[dict[str, Any]]:
        """The family's portfolio configurations that lie wholly in the search space (all of their
        keys that the space has, inside it); none when the space was given by the caller."""
        if self._custom_space:
            return []
        out = []
        for config in self.spec.portfolio:
            projected = self.search_space.project(config)
            relevant = {k: v for k, v in config.items() if k in self.search_space.names}
            active = {k: v for k, v in relevant.items() if self.search_space[k].is_active(relevant)}
            if projected == active and not set(self.fixed_params) & set(projected):
                out.append(projected)
        return out

    def defaults_trial_params(self) -> dict[str, Any]:
        """The part of the defaults that lies in the search space (what trial 0 is enqueued with)."""
        return self.search_space.project(self.default_params)

    def suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        """Sample this trial's params. A defaults trial samples only the in-space defaults."""
        if trial.user_attrs.get(SOURCE_ATTR) == "defaults":
            return self.search_space.sample(trial, only=self.defaults_trial_params().keys())
        return self.search_space.sample(trial)

    def params_for(self, sampled: Mapping[str, Any]) -> dict[str, Any]:
        """Defaults updated by sampled params: what is fitted (and what final training uses)."""
        params = {**self.default_params, **dict(sampled)}
        return params

    # -- evaluation --------------------------------------------------------------------------
    def _get_folds(self) -> list[_Fold]:
        with self._lock:
            if self._folds is None:
                self._folds = self._make_folds()
            return self._folds

    def _make_folds(self) -> list[_Fold]:
        def fold(Xa: pd.DataFrame, ya: Any, Xb: pd.DataFrame, yb: Any) -> _Fold:
            prep = build_preprocessor(self.spec, Xa).fit(Xa)
            return _Fold(prep, Xa, ya, Xb, yb)

        if self.cv is None:
            return [fold(self.X_train, self.y_train, self.X_val, self.y_val)]
        strategy = self.cv_strategy
        if strategy == "auto":
            strategy = "stratified" if self.problem_type in _CLASSIFICATION else "kfold"
        y_for_split = self.y_train if self.y_train is not None else np.zeros(len(self.X_train))
        if strategy == "timeseries":
            splitter: Any = TimeSeriesSplit(n_splits=self.cv)
        elif strategy == "stratified" and self.problem_type in _CLASSIFICATION + (ANOMALY,):
            min_count = int(np.bincount(np.asarray(y_for_split, dtype=np.int64)).min())
            if min_count < self.cv:
                raise DataValidationError(
                    f"cv={self.cv} stratified folds need at least {self.cv} rows of every class in y_train; "
                    f"the smallest class has {min_count}. Lower cv or use validation-based tuning"
                )
            splitter = StratifiedKFold(n_splits=self.cv, shuffle=True, random_state=self.seed)
        else:
            splitter = KFold(n_splits=self.cv, shuffle=True, random_state=self.seed)
        folds = []
        for tr, va in splitter.split(self.X_train, y_for_split):
            ytr = None if self.y_train is None else self.y_train[tr]
            folds.append(fold(self.X_train.iloc[tr], ytr, self.X_train.iloc[va], y_for_split[va]))
        return folds

    def evaluate(self, sampled: Mapping[str, Any], reporter: Reporter | None = None) -> Evaluation:
        """Fit and score ``defaults | sampled`` on every fold; intermediate values go to ``reporter``."""
        reporter = reporter or NullReporter()
        params = self.params_for(sampled)
        folds = self._get_folds()
        scores: list[float] = []
        iterations: list[int] = []
        t0 = time.perf_counter()
        for i, f in enumerate(folds):
            fitted = fit_model(
                self.spec, self.problem_type, params, f.X_train, f.y_train, f.X_val, f.y_val,
                metric=self.metric, reporter=reporter, early_stopping_rounds=self.early_stopping_rounds,
                n_threads=threads_per_trial(self.n_jobs, len(f.X_train)), preprocessor=f.preprocessor, codec=self.codec,
                report_steps=self.cv is None,
            )
            pred = fitted.model.predict_for_metric(f.X_val, self.metric)
            scores.append(score_predictions(self.metric, f.y_val, pred, labels=self.labels))
            if fitted.best_iteration is not None:
                iterations.append(fitted.best_iteration)
            if self.cv is not None:
                reporter.report(float(np.mean(scores)), i)
                if reporter.should_prune():
                    raise optuna.TrialPruned(f"pruned after fold {i + 1} of {len(folds)}")
        attrs: dict[str, Any] = {"fit_seconds": round(time.perf_counter() - t0, 4)}
        if self.cv is not None:
            attrs["fold_scores"] = [round(s, 6) for s in scores]
        if iterations:
            attrs["best_iteration"] = int(round(float(np.mean(iterations))))
        return Evaluation(float(np.mean(scores)), attrs)

    def __call__(self, trial: optuna.Trial) -> float:
        ev = self.evaluate(self.suggest(trial), TrialReporter(trial))
        for k, v in ev.user_attrs.items():
            trial.set_user_attr(k, v)
        return ev.value

    def fit_final(self, sampled_or_merged: Mapping[str, Any], *, refit: str = "train",
                  n_rounds: int | None = None) -> FitResult:
        """The final model with ``defaults | params``.

        ``refit="train"``: fitted like a trial, on the training data (boosting: early stopping on
        validation). ``refit="train+val"``: fitted on the training and validation rows together,
        which uses all the data the study was allowed to see. Boosting then needs its round count
        up front: ``n_rounds`` (the best trial's early-stopped count) or, when unknown, the count
        of an early-stopped fit on the training data first; it is scaled by the growth of the data.
        ``dart`` (no early stopping) keeps its ``n_estimators``. ``FitResult.best_iteration`` is
        the round count found on validation; ``FitResult.n_rounds`` what the final model has.
        """
        if refit not in REFIT_MODES:
            raise ConfigurationError(f"refit must be one of {list(REFIT_MODES)}, got {refit!r}")
        params = self.params_for(sampled_or_merged)
        X_val = self.X_val
        if refit == "train" or X_val is None:
            fitted = fit_model(self.spec, self.problem_type, params, self.X_train, self.y_train, X_val, self.y_val,
                               metric=self.metric, early_stopping_rounds=self.early_stopping_rounds if X_val is not None else None,
                               n_threads=threads_per_trial(1, len(self.X_train)), codec=self.codec)
            fitted.n_rounds = fitted.best_iteration
            return fitted
        t0 = time.perf_counter()
        best_iteration = n_rounds
        if self.spec.is_boosting and _uses_early_stopping(params, self.early_stopping_rounds):
            if best_iteration is None:
                best_iteration = self.fit_final(params, refit="train").best_iteration
            grown = (len(self.X_train) + len(X_val)) / len(self.X_train)
            params["n_estimators"] = max(1, int(round(best_iteration * grown)))
        X_all = concat_rows(self.X_train, X_val)
        y_all = (None if self.y_train is None  # unsupervised anomaly detection: no labels to fit on
                 else np.concatenate([np.asarray(self.y_train), np.asarray(self.y_val)]))
        fitted = fit_model(self.spec, self.problem_type, params, X_all, y_all, n_threads=threads_per_trial(1, len(X_all)),
                           codec=self.codec)
        rounds = int(fitted.model.estimator.get_params()["n_estimators"]) if self.spec.is_boosting else None
        return FitResult(fitted.model, best_iteration if self.spec.is_boosting else None,
                         time.perf_counter() - t0, n_rounds=rounds, refit="train+val")
