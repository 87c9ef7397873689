"""ONE generic objective (F5) for every model family, on a validation split or on CV folds.

:class:`ModelObjective` is data (a :class:`ModelSpec`, a metric, training data, a search space, an
evaluation scheme) and two steps:

- ``suggest(trial)`` samples the params (only on the calling side, where the trial lives);
- ``evaluate(params, reporter)`` fits and scores; it is a pure function of the params, so it runs in
  a worker thread or in a worker process (see ``executors.py``), reporting intermediate values
  through a small :class:`Reporter` (per boosting round on a validation split, per fold in CV).

Schemes: a holdout (fit on ``X_train``, score on ``X_val``), k-fold CV drawn from ``X_train``
(``cv=k``; stratified for classification, or time-ordered folds with ``cv_strategy="timeseries"``),
and repeated k-fold (``cv_repeats=r``: r shuffles of k folds, for small tables where one split's
noise would decide the winner). ``fit_model`` (``fitting.py``) is the same fitting code used by the
final training node: a trial and the final model are built identically.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
import pandas as pd
from sklearn.model_selection import (
    KFold,
    RepeatedKFold,
    RepeatedStratifiedKFold,
    StratifiedKFold,
    TimeSeriesSplit,
)

from .data_checks import check_metric_supported, validate_training_data
from .errors import ConfigurationError, DataValidationError
from .blend import Blend, PredictionStore, blend_trials
from .fitted import AveragedModel, LabelCodec, TunedModel, anomaly_labels
from .fitting import (
    REFIT_MODES,
    FitResult,
    average_fits,
    concat_rows,
    fit_model,
    scaled_rounds,
    uses_early_stopping,
)
from .metrics import default_metric, get_metric, score_predictions
from .models import ModelSpec, get_model_spec, threads_per_trial
from .pipeline_steps import (
    check_step_space,
    check_step_values,
    is_step_param,
    split_step_params,
    step_defaults,
    with_pipeline_space,
)
from .multi_objective import measure_costs, parse_objectives
from .preprocessing import build_preprocessor
from .problems import ANOMALY, CLASSIFICATION, REGRESSION, normalize_problem_type
from .reporters import Evaluation, NullReporter, Reporter, TrialCancelled, TrialReporter
from .search_space import SearchSpace, parse_search_space
from .types import SOURCE_ATTR

__all__ = [
    "ModelObjective",
    "CV_STRATEGIES",
    # re-exported from the modules that define them (the objective's public vocabulary)
    "Evaluation",
    "Reporter",
    "TrialReporter",
    "NullReporter",
    "TrialCancelled",
    "TunedModel",
    "AveragedModel",
    "LabelCodec",
    "FitResult",
    "average_fits",
    "REFIT_MODES",
    "concat_rows",
    "fit_model",
    "validate_training_data",
    "check_metric_supported",
]

#: how CV folds are drawn: "auto" (stratified for classification, shuffled k-fold otherwise),
#: "stratified", "kfold", "timeseries" (each fold trains on earlier rows, scores on later ones).
CV_STRATEGIES = ("auto", "stratified", "kfold", "timeseries")


@dataclass
class _Fold:
    preprocessor: Any
    X_train: pd.DataFrame
    y_train: Any
    X_val: pd.DataFrame
    y_val: Any
    #: preprocessors fitted for pipeline-search step params (key: the step params as a sorted tuple)
    by_steps: dict[tuple[Any, ...], Any] = field(default_factory=dict)


#: CPU threads of a final fit (:meth:`ModelObjective.fit_final`, :meth:`ModelObjective.fit_rows`; see
#: ``_fit_scaled``): trials keep :func:`~.models.threads_per_trial`
FINAL_FIT_THREADS = 1
#: fitted preprocessors a fold keeps for pipeline-search step configurations (oldest dropped first)
_MAX_STEP_PREPROCESSORS = 16


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
        cv_repeats: int = 1,
        seed: int | None = 0,
        early_stopping_rounds: int | None = 50,
        n_jobs: int = 1,
        pipeline: bool = False,
        objectives: str | list[str] | None = None,
    ) -> None:
        self.problem_type = normalize_problem_type(problem_type)
        self.spec = get_model_spec(algorithm, self.problem_type)
        # ``objectives`` (multi_objective.py): the metric first, then latency/size; evaluate returns one value each
        parsed = parse_objectives(objectives, self.problem_type, metric=metric)
        self.objective_set = parsed if parsed is not None and parsed.is_multi else None
        metric = metric or (parsed.metric if parsed is not None else None)
        self.metric = get_metric(metric or default_metric(self.problem_type), self.problem_type)
        if cv is not None and (isinstance(cv, bool) or not isinstance(cv, int) or cv < 2):
            raise DataValidationError(f"cv must be an integer >= 2 (number of folds), got {cv!r}")
        if cv_strategy not in CV_STRATEGIES:
            raise DataValidationError(f"cv_strategy must be one of {list(CV_STRATEGIES)}, got {cv_strategy!r}")
        if isinstance(cv_repeats, bool) or not isinstance(cv_repeats, int) or cv_repeats < 1:
            raise DataValidationError(f"cv_repeats must be an integer >= 1, got {cv_repeats!r}")
        if cv_repeats > 1 and (cv is None or cv_strategy == "timeseries"):
            raise DataValidationError(
                f"cv_repeats={cv_repeats} needs shuffled CV folds (cv=k and a cv_strategy other than 'timeseries')"
            )
        self.cv, self.cv_strategy, self.cv_repeats = cv, cv_strategy, cv_repeats
        Xtr, ytr, Xva, yva = validate_training_data(self.problem_type, X_train, y_train, X_val, y_val,
                                                    require_val=cv is None)
        self.X_train, self.X_val = Xtr, Xva
        if self.problem_type in CLASSIFICATION:
            self.codec: LabelCodec | None = LabelCodec(ytr)
            self.y_train = self.codec.encode(ytr, name="y_train")
            self.y_val = None if yva is None else self.codec.encode(yva, name="y_val")
            self.labels = list(range(len(self.codec.classes_)))
        else:
            self.codec = None
            self.labels = None
            conv = anomaly_labels if self.problem_type == ANOMALY else (lambda v: np.asarray(v, dtype=float))
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
            if self.spec.categorical_params and not any(isinstance(t, pd.CategoricalDtype) for t in Xtr.dtypes):
                space = space.with_overrides({k: None for k in self.spec.categorical_params if k in space.names})
        if space_overrides:
            space = space.with_overrides(space_overrides)
        if fixed_params and "n_estimators" in fixed_params and "dart_rounds" in space.names:
            space = space.with_overrides({"dart_rounds": None})  # a fixed round count holds for dart too
        if search_space is not None or space_overrides:
            self.spec.check_params(space.names, self.problem_type)
        if fixed_params:
            self.spec.check_params(fixed_params, self.problem_type, what="fixed params")
            check_step_values(fixed_params)
        #: pipeline search (:mod:`.pipeline_steps`): the family's default steps join the space
        self.pipeline = bool(pipeline)
        if self.pipeline:
            space = with_pipeline_space(space, self.spec, self.problem_type, Xtr.shape[1])
        check_step_space(space)
        self.search_space = space
        steps = step_defaults(self.spec, self.problem_type, [*space.names, *(fixed_params or {})])
        self.default_params = {**self.spec.default_params(self.problem_type, seed=seed), **steps,
                               **(fixed_params or {})}
        self.fixed_params = dict(fixed_params or {})
        self._check_metric_supported()
        self._folds: list[_Fold] | None = None
        self._lock = threading.Lock()
        #: whether :meth:`evaluate` returns the predictions that scored it (:mod:`.blend`; a family
        #: search's objectives return them to :class:`~src.mlops.family_search.FamilySearchObjective`)
        self.keep_predictions = False
        #: the best evaluations' predictions, kept for :meth:`blend` (:meth:`remember_predictions`)
        self.predictions: PredictionStore | None = None

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

    @property
    def scheme(self) -> str:
        """The evaluation scheme as a short label: ``holdout``, ``cv=5``, ``cv=5x2`` or ``timeseries-cv=5``."""
        if self.cv is None:
            return "holdout"
        prefix = "timeseries-" if self.cv_strategy == "timeseries" else ""
        return f"{prefix}cv={self.cv}" + (f"x{self.cv_repeats}" if self.cv_repeats > 1 else "")

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
                # a pipeline search runs the portfolio with the default steps
                steps = self.search_space.project({**self.default_params, **projected})
                out.append({**projected, **{k: v for k, v in steps.items() if is_step_param(k)}})
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
            strategy = "stratified" if self.problem_type in CLASSIFICATION else "kfold"
        y_for_split = self.y_train if self.y_train is not None else np.zeros(len(self.X_train))
        repeats = self.cv_repeats
        if strategy == "timeseries":
            splitter: Any = TimeSeriesSplit(n_splits=self.cv)
        elif strategy == "stratified" and self.problem_type in CLASSIFICATION + (ANOMALY,):
            min_count = int(np.bincount(np.asarray(y_for_split, dtype=np.int64)).min())
            if min_count < self.cv:
                raise DataValidationError(
                    f"cv={self.cv} stratified folds need at least {self.cv} rows of every class in y_train; "
                    f"the smallest class has {min_count}. Lower cv or use validation-based tuning"
                )
            splitter = (StratifiedKFold(n_splits=self.cv, shuffle=True, random_state=self.seed) if repeats == 1 else
                        RepeatedStratifiedKFold(n_splits=self.cv, n_repeats=repeats, random_state=self.seed))
        else:
            splitter = (KFold(n_splits=self.cv, shuffle=True, random_state=self.seed) if repeats == 1 else
                        RepeatedKFold(n_splits=self.cv, n_repeats=repeats, random_state=self.seed))
        folds = []
        for tr, va in splitter.split(self.X_train, y_for_split):
            ytr = None if self.y_train is None else self.y_train[tr]
            folds.append(fold(self.X_train.iloc[tr], ytr, self.X_train.iloc[va], y_for_split[va]))
        return folds

    def fold_targets(self) -> list[Any]:
        """The encoded labels of the rows that score each fold, in fold order (what :meth:`evaluate`'s
        predictions are scored against)."""
        return [f.y_val for f in self._get_folds()]

    def remember_predictions(self) -> None:
        """Keep the predictions of the best evaluations from now on, for :meth:`blend` (nothing is kept
        where they do not average: :attr:`blends_predictions`)."""
        self.predictions = PredictionStore(self.direction)
        self.keep_predictions = self.blends_predictions

    def blend(self, candidates: Sequence[Mapping[str, Any]], max_members: int) -> Blend | None:
        """The greedy blend of ``candidates`` (the study's best trials, best first) by their kept
        predictions (:func:`~src.mlops.blend.blend_trials`)."""
        return blend_trials(self, self.predictions, candidates, max_members)

    @property
    def blends_predictions(self) -> bool:
        """Whether this objective's predictions can be averaged with another's (:mod:`.blend`): class
        probabilities or regression values of a single-objective study, never labels or anomaly scores."""
        return self.objective_set is None and (self.problem_type == REGRESSION or (
            self.problem_type in CLASSIFICATION and self.metric.needs != "label"))

    def _preprocessor(self, fold: _Fold, steps: Mapping[str, Any]) -> Any:
        """The fold's fitted preprocessor for pipeline-search ``steps`` (the plain one without steps;
        fitted once per step configuration, the last few kept)."""
        if not steps:
            return fold.preprocessor
        key = tuple(sorted((k, repr(v)) for k, v in steps.items()))
        prep = fold.by_steps.get(key)
        if prep is None:
            prep = build_preprocessor(self.spec, fold.X_train, dict(steps), self.problem_type).fit(
                fold.X_train, fold.y_train)
            with self._lock:
                while len(fold.by_steps) >= _MAX_STEP_PREPROCESSORS:
                    fold.by_steps.pop(next(iter(fold.by_steps)))
                fold.by_steps[key] = prep
        return prep

    def evaluate(self, sampled: Mapping[str, Any], reporter: Reporter | None = None) -> Evaluation:
        """Fit and score ``defaults | sampled`` on every fold; intermediate values go to ``reporter``.

        The evaluation's attributes: ``fit_seconds``; ``fold_scores`` under CV; for boosting fits
        that stopped early, ``best_iteration`` (mean over folds) and ``fit_rows`` (mean training
        rows of those fits), from which the final refits scale their round count."""
        reporter = reporter or NullReporter()
        params = self.params_for(sampled)
        folds = self._get_folds()
        scores: list[float] = []
        iterations: list[int] = []
        rows: list[int] = []
        # probabilities only from an estimator that gives them (a squashed decision function does not average)
        predictions: list[Any] | None = [] if self.keep_predictions else None
        t0 = time.perf_counter()
        steps = split_step_params(params)[1]
        for i, f in enumerate(folds):
            fitted = fit_model(
                self.spec, self.problem_type, params, f.X_train, f.y_train, f.X_val, f.y_val,
                metric=self.metric, reporter=reporter, early_stopping_rounds=self.early_stopping_rounds,
                n_threads=threads_per_trial(self.n_jobs, len(f.X_train)), preprocessor=self._preprocessor(f, steps),
                codec=self.codec, report_steps=self.cv is None,
            )
            pred = fitted.model.predict_for_metric(f.X_val, self.metric)
            scores.append(score_predictions(self.metric, f.y_val, pred, labels=self.labels))
            if predictions is not None and self.codec is not None and not fitted.model.has_proba:
                predictions = None
            if predictions is not None:
                predictions.append(pred)
            if i == 0 and self.objective_set is not None:  # costs of the first fold's model (multi_objective.py)
                costs = measure_costs(self.objective_set.costs, fitted.model, f.X_val)
            if fitted.best_iteration is not None:
                iterations.append(fitted.best_iteration)
                rows.append(len(f.X_train))
            if self.cv is not None:
                reporter.report(float(np.mean(scores)), i)
                if reporter.should_prune():
                    raise optuna.TrialPruned(f"pruned after fold {i + 1} of {len(folds)}")
        attrs: dict[str, Any] = {"fit_seconds": round(time.perf_counter() - t0, 4)}
        if self.cv is not None:
            attrs["fold_scores"] = [round(s, 6) for s in scores]
        if iterations:
            attrs["best_iteration"] = int(round(float(np.mean(iterations))))
            attrs["fit_rows"] = int(round(float(np.mean(rows))))
        if self.objective_set is not None:
            attrs.update(costs)
            return Evaluation([float(np.mean(scores)), *(costs[c] for c in self.objective_set.costs)], attrs)  # type: ignore[arg-type]
        if self.predictions is not None and predictions is not None:
            self.predictions.add(sampled, float(np.mean(scores)), predictions)
            predictions = None
        return Evaluation(float(np.mean(scores)), attrs, predictions=predictions)

    def __call__(self, trial: optuna.Trial) -> float:
        ev = self.evaluate(self.suggest(trial), TrialReporter(trial))
        for k, v in ev.user_attrs.items():
            trial.set_user_attr(k, v)
        return ev.value

    # -- final fits --------------------------------------------------------------------------
    @property
    def all_rows(self) -> tuple[pd.DataFrame, Any]:
        """Every row this objective holds (``X_train`` then ``X_val``), labels encoded."""
        if self.X_val is None:
            return self.X_train, self.y_train
        y = (None if self.y_train is None  # unsupervised anomaly detection: no labels to fit on
             else np.concatenate([np.asarray(self.y_train), np.asarray(self.y_val)]))
        return concat_rows(self.X_train, self.X_val), y

    def encode_target(self, y: Any, *, name: str = "y") -> Any:
        """``y`` (original labels) in the encoding the fits use (class codes, 0/1 anomalies, floats)."""
        if y is None:
            return None
        if self.codec is not None:
            return self.codec.encode(y, name=name)
        if self.problem_type == ANOMALY:
            return anomaly_labels(y)
        return np.asarray(y, dtype=float)

    def fit_final(self, sampled_or_merged: Mapping[str, Any], *, refit: str = "train+val",
                  n_rounds: int | None = None, rounds_rows: int | None = None) -> FitResult:
        """The final model with ``defaults | params``.

        ``refit="train"`` (holdout only): fitted like a trial, on the training data with early
        stopping on validation. ``"train+val"`` and ``"all"``: fitted on every row the objective
        holds (train and validation; under CV, the rows the folds were drawn from) -- the graph
        then refits ``"all"`` once more on the test rows too (:meth:`fit_rows`). Boosting needs
        its round count up front: ``n_rounds`` found by early stopping on fits of ``rounds_rows``
        rows (the best trial's ``best_iteration``/``fit_rows``), scaled to the rows of this fit;
        when unknown, an early-stopped fit finds it first. ``dart`` keeps its ``n_estimators``.
        """
        if refit not in REFIT_MODES:
            raise ConfigurationError(f"refit must be one of {list(REFIT_MODES)}, got {refit!r}")
        params = self.params_for(sampled_or_merged)
        if refit == "train" and self.X_val is not None:
            fitted = fit_model(self.spec, self.problem_type, params, self.X_train, self.y_train, self.X_val,
                               self.y_val, metric=self.metric, early_stopping_rounds=self.early_stopping_rounds,
                               n_threads=FINAL_FIT_THREADS, codec=self.codec)
            fitted.n_rounds = fitted.best_iteration
            return fitted
        X, y = self.all_rows
        fitted = self._fit_scaled(params, X, y, n_rounds=n_rounds, rounds_rows=rounds_rows)
        fitted.refit = "train" if self.X_val is None and refit == "train" else "train+val"
        return fitted

    def fit_rows(self, sampled_or_merged: Mapping[str, Any], X: pd.DataFrame, y: Any, *, n_rounds: int | None,
                 rounds_rows: int | None, label: str) -> FitResult:
        """Fit ``defaults | params`` on the given rows (original labels), e.g. train+val+test for the
        deployed model; the round count is scaled as in :meth:`fit_final`. ``label`` names the rows."""
        fitted = self._fit_scaled(self.params_for(sampled_or_merged), X, self.encode_target(y), n_rounds=n_rounds,
                                  rounds_rows=rounds_rows)
        fitted.refit = label
        return fitted

    def _fit_scaled(self, params: dict[str, Any], X: pd.DataFrame, y: Any, *, n_rounds: int | None,
                    rounds_rows: int | None) -> FitResult:
        t0 = time.perf_counter()
        best_iteration = n_rounds
        boosting = self.spec.is_boosting and uses_early_stopping(params, self.early_stopping_rounds)
        if boosting:
            if best_iteration is None:
                ev = self.evaluate(params)  # early stopping on the objective's own validation data
                best_iteration, rounds_rows = ev.user_attrs["best_iteration"], ev.user_attrs["fit_rows"]
            found_on = rounds_rows or len(self.X_train)
            params["n_estimators"] = scaled_rounds(int(best_iteration), int(found_on), len(X), self.problem_type)
        # One thread: a final fit runs in a fresh pool thread after the trials' OpenMP teams, and there
        # two threads were measured 3-5x slower than one (carData::GSSvocab, 28.8k rows, 5 classes, 2
        # unpinned cores: the deployed refit took 8.2-14.2 s with two threads and 2.5-2.6 s with one,
        # and a 30 s run ended at 33-41 s instead of 28.6-28.8 s).
        fitted = fit_model(self.spec, self.problem_type, params, X, y, n_threads=FINAL_FIT_THREADS, codec=self.codec)
        rounds = int(fitted.model.estimator.get_params()["n_estimators"]) if self.spec.is_boosting else None
        return FitResult(fitted.model, best_iteration if boosting else None, time.perf_counter() - t0,
                         n_rounds=rounds, fit_rows=len(X))
