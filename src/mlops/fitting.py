"""Fitting one model: the same code for a trial, the final model and the defaults baseline.

:func:`fit_model` fits a family's estimator (through its :class:`~src.mlops.models.ModelSpec`) on
prepared features; boosting families report the study's metric per round (pruners act on it) and
stop early on validation data when given. :func:`scaled_rounds` carries an early-stopped round count
over to a fit on more rows (the final refits, which have no validation data to stop on).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import optuna
import pandas as pd

from .fitted import AveragedModel, LabelCodec, TunedModel
from .metrics import MetricSpec
from .models import ModelSpec
from .pipeline_steps import split_step_params
from .preprocessing import build_preprocessor
from .problems import ANOMALY, BINARY, MULTICLASS, REGRESSION, normalize_problem_type
from .reporters import NullReporter, Reporter, TrialCancelled

__all__ = ["FitResult", "REFIT_MODES", "ROUNDS_EXPONENT", "average_fits", "fit_model", "concat_rows", "rounds_growth",
           "scaled_rounds", "uses_early_stopping"]


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
    #: rows the model was fitted on: "train", "train+val" or "train+val+test"
    refit: str = "train"
    #: number of rows the model was fitted on
    fit_rows: int = 0


def average_fits(fits: list[FitResult], weights: list[float] | None = None) -> FitResult:
    """One :class:`FitResult` whose model averages the models of ``fits`` (fitted on the same rows;
    :class:`~src.mlops.fitted.AveragedModel`; ``weights``: one per fit, ``None`` equal). Round count
    and rows are the first (best) one's, the seconds the sum of all."""
    first = fits[0]
    return FitResult(model=AveragedModel.of([f.model for f in fits], weights), best_iteration=first.best_iteration,
                     fit_seconds=sum(f.fit_seconds for f in fits), n_rounds=first.n_rounds, refit=first.refit,
                     fit_rows=first.fit_rows)


#: Rows the deployed model is fitted on. ``all``: after the test split has been scored (by a model
#: fitted on train+val), the deployed model is refit on train+val+test; ``train+val``: every row but
#: the test split; ``train``: exactly like the trials (early stopping on validation).
REFIT_MODES = ("all", "train+val", "train")


def uses_early_stopping(params: Mapping[str, Any], early_stopping_rounds: int | None) -> bool:
    """Whether a boosting fit with ``params`` stops early (dart cannot)."""
    return bool(early_stopping_rounds) and params.get("boosting_type") != "dart"


#: how a refit's round count grows with its rows: ``(n_rows / found_on_rows) ** exponent``, per problem
#: type. Measured by ``bench/rounds_probe.py`` (24 real tables x 3 seeds x 3 LightGBM configurations;
#: 5-fold CV on 80 % of dev found the rounds, the refit on all of dev -- 1.56x the rows, as the deployed
#: model has -- scored on the bench's test rows; bench/RESULTS-rounds.md): for classification the
#: square root beat proportional growth on the test log loss (multiclass 46/6, binary 53/25 of the
#: (table, seed, configuration) rows), ROC-AUC unchanged (47/29, mean -0.0001): more rounds made the
#: probabilities overconfident. Regression keeps proportional growth (the square root: 39/41, mean
#: -0.16 %; dplyr::storms' RMSE 1.4 % worse).
ROUNDS_EXPONENT: dict[str, float] = {BINARY: 0.5, MULTICLASS: 0.5, REGRESSION: 1.0}


def rounds_growth(found_on_rows: float, n_rows: float, problem_type: str | None = None) -> float:
    """The factor by which a round count found on ``found_on_rows`` rows grows for a fit on ``n_rows``
    (at least 1; :data:`ROUNDS_EXPONENT`, proportional for an unknown problem type)."""
    exponent = ROUNDS_EXPONENT.get(normalize_problem_type(problem_type), 1.0) if problem_type else 1.0
    return max(1.0, n_rows / max(1.0, found_on_rows)) ** exponent


def scaled_rounds(best_iteration: int, found_on_rows: int, n_rows: int, problem_type: str | None = None) -> int:
    """The round count for a fit on ``n_rows`` rows, from ``best_iteration`` found by early stopping
    on fits of ``found_on_rows`` rows: more data supports more rounds at the same learning rate
    (:func:`rounds_growth`: proportionally for regression, as FLAML and AutoGluon scale; by the
    square root of the growth for classification)."""
    if best_iteration < 1 or found_on_rows < 1:
        raise ValueError(f"best_iteration and found_on_rows must be >= 1, got {best_iteration}, {found_on_rows}")
    return max(1, int(round(best_iteration * rounds_growth(found_on_rows, n_rows, problem_type))))


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


#: a trial's forest grows this share of its trees per fit call, so that a cancelled trial stops soon
FOREST_CHUNK_SHARE = 0.1
#: ... but at least this many trees per call (each call checks its input again)
FOREST_CHUNK_MIN = 25


def _is_forest(est: Any) -> bool:
    from sklearn.ensemble import ExtraTreesClassifier, ExtraTreesRegressor, RandomForestClassifier, RandomForestRegressor

    return isinstance(est, (RandomForestClassifier, RandomForestRegressor, ExtraTreesClassifier, ExtraTreesRegressor))


def _fit_forest_in_chunks(est: Any, X: Any, y: Any, reporter: Reporter) -> None:
    """Grow a trial's forest a chunk of trees at a time (``warm_start``), checking between chunks
    whether the trial was cancelled. A forest has no per-round callback: a trial's 500-tree forest on
    15k rows ran 12 s past the study's deadline in an abandoned thread, and the final fits, sharing
    its core, overran the time budget by 10 s (bench_real, mlmRev::Chem97, ``--algorithm auto``).
    scikit-learn draws the seeds of the added trees as one fit would: the forest is the same."""
    total = int(est.get_params()["n_estimators"])
    step = max(FOREST_CHUNK_MIN, int(round(FOREST_CHUNK_SHARE * total)))
    est.set_params(warm_start=True)
    grown = 0
    while grown < total:
        if reporter.cancelled():
            raise TrialCancelled(f"cancelled after {grown} of {total} trees")
        grown = min(total, grown + step)
        est.set_params(n_estimators=grown)
        est.fit(X, y)
    est.set_params(warm_start=False)


def fit_model(spec: ModelSpec, problem_type: str, params: Mapping[str, Any], X_train: pd.DataFrame, y_train: Any,
              X_val: pd.DataFrame | None = None, y_val: Any = None, *, metric: MetricSpec | None = None,
              reporter: Reporter | None = None, early_stopping_rounds: int | None = 50,
              n_threads: int | None = None, preprocessor: Any = None, codec: LabelCodec | None = None,
              report_steps: bool = True) -> FitResult:
    """Fit ``spec`` with ``params`` (already merged with defaults) on encoded training data.

    ``y_train``/``y_val`` are encoded labels (0..K-1) for classification. Boosting families use
    early stopping on the validation data when it is given. ``preprocessor`` may be pre-fitted
    (then ``X_*`` are passed through its ``transform`` only); otherwise it is built from the
    pipeline params ``step__param`` of ``params`` (:mod:`.pipeline_steps`) and fitted here.
    """
    t0 = time.perf_counter()
    reporter = reporter or NullReporter()
    pt = normalize_problem_type(problem_type)
    if preprocessor is None:
        preprocessor = build_preprocessor(spec, X_train, split_step_params(params)[1], pt).fit(X_train, y_train)
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
    elif not isinstance(reporter, NullReporter) and _is_forest(est):
        _fit_forest_in_chunks(est, Xt_tr, y_train, reporter)
    else:
        est.fit(Xt_tr, y_train)
    if reporter.cancelled():
        raise TrialCancelled("cancelled after fit")
    model = TunedModel(preprocessor, est, pt, classes=None if codec is None else codec.classes_.tolist(),
                       algorithm=spec.name, feature_names=[str(c) for c in X_train.columns])
    return FitResult(model, best_iteration, time.perf_counter() - t0, fit_rows=len(X_train))


