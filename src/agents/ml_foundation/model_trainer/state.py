"""State of the model-trainer graph: inputs, outputs and the typed update of every node.

The state travels through checkpoints (in memory or PostgreSQL) that are serialized *without*
pickle, so it holds JSON values only: ``dict``/``list``/``str``/``int``/``float``/``bool``/``None``.
Data never lives in the state: ``load_data`` stores it as Parquet under the run directory and the
state carries :class:`~src.mlops.splits.DataRef` pointers; models are files (``model_path``).

A thread (``thread_id``) is one run. Re-invoking a failed thread with ``ainvoke(None, config)``
re-executes the failed node from its start; ``run_id`` and therefore the study name
(``trainer-<run_id>``) are checkpointed, so a resumed tuner continues the same Optuna study.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypedDict

from src.mlops.errors import MLOpsError
from src.mlops.jsonutil import to_jsonable
from src.mlops.splits import DataRef

__all__ = [
    "ModelTrainerState",
    "ModelTrainerInput",
    "ErrorInfo",
    "SplitRefs",
    "HPOSummary",
    "LoadDataUpdate",
    "SplitDataUpdate",
    "TunerUpdate",
    "TrainingUpdate",
    "EvaluatorUpdate",
    "RefitUpdate",
    "RegisterUpdate",
    "OUTPUT_KEYS",
    "error_update",
    "jsonable",
    "is_bad_input",
    "merge_artifact_digests",
]


def merge_artifact_digests(
    current: dict[str, dict[str, str]] | None, update: dict[str, dict[str, str]] | None
) -> dict[str, dict[str, str]]:
    """Reducer of ``artifact_digests``: a node adds or replaces the entries of the artifacts it wrote;
    ``None`` (``load_data`` starting a run) clears them."""
    if update is None:
        return {}
    return {**(current or {}), **update}


class ErrorInfo(TypedDict):
    """Why a run ended ``status="failed"``: the node, the exception type and its message."""

    node: str
    type: str
    message: str


class SplitRefs(TypedDict):
    """References to the six split files (Parquet under ``<hpo_home>/runs/<run_id>/data/splits``)."""

    train_X: DataRef
    train_y: DataRef
    val_X: DataRef
    val_y: DataRef
    test_X: DataRef
    test_y: DataRef


class HPOSummary(TypedDict, total=False):
    """What the tuner reports (a JSON subset of :class:`~src.mlops.types.OptimizationResult`)."""

    #: ``False`` when tuning was disabled (the model defaults are used, no study exists).
    enabled: bool
    study_name: str
    #: the family the final fits use (with ``algorithm="auto"`` or a list: the one the study chose).
    algorithm: str
    #: family search only: the chosen family (= ``algorithm``), the best score each searched family
    #: reached (``None``: none completed), and per family its trial counts (``n_dropped``: trials
    #: pruned without a fit once it was dropped), best and defaults scores, mean fit seconds, ``dropped``.
    chosen_family: str
    family_best: dict[str, float | None]
    families: dict[str, dict[str, Any]]
    metric: str
    #: "maximize" | "minimize" (of ``metric``).
    direction: str
    best_params: dict[str, Any]
    #: best validation (or CV) score of the study.
    best_value: float | None
    #: validation score of the model defaults (trial 0 of a fresh study).
    defaults_value: float | None
    #: ``best_value - defaults_value``, signed so that positive is better.
    improvement_over_defaults: float | None
    best_trial_number: int | None
    #: boosting round count of the best trial (early stopping), when known.
    best_iteration: int | None
    #: trials in the study (a resumed study counts earlier trials too).
    n_trials: int
    n_completed: int
    n_pruned: int
    n_failed: int
    duration_s: float
    #: "n_trials", "timeout", "patience", "max_failures", ...
    stop_reason: str
    #: trial number (as a string) -> reason, for FAIL trials.
    failure_reasons: dict[str, str]
    #: the evaluation scheme of the trials: "holdout", "cv=5", "cv=5x2", "timeseries-cv=5".
    scheme: str
    #: why that scheme was chosen ("requested", or the rule's reason).
    scheme_reason: str
    #: rows of the fits that found ``best_iteration`` (a CV fold's training rows, or the training split).
    best_fit_rows: int | None
    #: seconds one fit of the best trial took (its fit time over its folds).
    best_fit_seconds: float | None
    #: boosting round count (and its fits' rows) of the defaults trial.
    defaults_best_iteration: int | None
    defaults_fit_rows: int | None
    #: the study's analysis (:func:`src.mlops.analysis.analyze_study`): importances, convergence,
    #: per-family comparison, recommendations (``model_evaluator`` adds a validation-test gap to them).
    analysis: dict[str, Any] | None
    #: when the time budget could not afford the best trial's final fits: ``{"best_trial", "used_trial",
    #: "reason"}`` (the best trial whose fits fit in the time left is used instead).
    trial_for_time: dict[str, Any]
    #: the final model averages these trials (``ensemble_size`` > 1; absent: the best alone), best
    #: first: ``{"number", "value", "algorithm", "weight", "params"`` (merged with their family's
    #: defaults), ``"best_iteration", "fit_rows"}``.
    ensemble: list[dict[str, Any]]
    #: a family search's blend (:mod:`src.mlops.blend`): ``{"value", "single_value", "deployed"}``, its
    #: validation score, the best trial's alone, and whether ``ensemble`` is the blend (else its
    #: members' final fits did not fit in the time left).
    blend: dict[str, Any]
    #: epoch seconds at which the study ended (the time budget measures what follows).
    finished_at: float
    #: seconds the study was given (``time_budget`` minus what the rest of the run needs), if bounded by time.
    study_timeout: float | None
    #: COMPLETE trials served from the trial cache (not trained: :mod:`src.mlops.trial_cache`).
    n_cached: int
    #: the warm start: ``{"enabled", "n_seeded", "matched_by": "dataset"|"schema"|None, "sources",
    #: "dropped"}`` (:mod:`src.mlops.warm_start`).
    warm_start: dict[str, Any]
    #: with ``compare="random"``: ``{"method", "metric", "defaults", "random", "tuned", "random_trials",
    #: "budget", ...}`` on validation (:mod:`src.mlops.compare`); ``model_evaluator`` adds
    #: ``test_random`` (the random search's best params fitted like the tuned model, scored on test).
    comparison: dict[str, Any]
    #: with ``phases > 1``: per phase ``{"phase", "start_trial", "end_trial", "ranges", "n_trials",
    #: "n_complete", "best_trial", "best_value", "best_params", "best_before"}`` (:mod:`src.mlops.narrowing`).
    phases: list[dict[str, Any]]
    #: multi-objective (``objectives``): the objectives' names, the metric first.
    objectives: list[str]
    #: the Pareto front: ``[{"number", "values": {objective: value}, "params", "family", "source"}]``,
    #: best metric first (:mod:`src.mlops.multi_objective`).
    pareto_front: list[dict[str, Any]]
    #: the point the pick rule chose (the one trained and registered): ``{"rule", "tolerance", "number",
    #: "values", "params", "family", "within_tolerance", "metric_threshold", "best_metric", ...}``.
    pick: dict[str, Any]


class ModelTrainerInput(TypedDict, total=False):
    """The inputs of the graph: set by the caller (each documented here once); the graph's state
    (:class:`ModelTrainerState`) adds the nodes' outputs. Values are read with
    :func:`~.settings.setting`, which supplies :data:`~.settings.DEFAULTS` for what is left out."""

    # ------------------------------------------------------------------ inputs: data
    #: path of a CSV/TSV/TXT (optionally compressed) or Parquet file holding features and target.
    data_path: str | None
    #: name of a dataset bundled with scikit-learn ("breast_cancer", "iris", "wine", "diabetes",
    #: "digits"). Exactly one of ``data_path``, ``dataset_name`` and ``ModelTrainerContext.data``.
    dataset_name: str | None
    #: target column; optional for bundled datasets and for files with a single column named
    #: target/label/class/y. ``load_data`` writes back the resolved name.
    target: str | None
    #: "binary_classification" | "multiclass_classification" | "regression" | "anomaly_detection"
    #: (aliases such as "binary" accepted). Inferred from the target when absent; ``load_data``
    #: writes back the resolved, canonical name.
    problem_type: str | None
    #: a date/time (or numeric order) column: the split becomes time-ordered (oldest rows train,
    #: newest rows test) and the column is removed from the features.
    time_column: str | None
    #: columns of the data to leave out of the features (e.g. one named in ``leak_suspects``); each
    #: must exist, and is recorded in ``dropped_columns`` as "dropped by request".
    drop_columns: list[str] | None

    # ------------------------------------------------------------------ inputs: model and tuning
    #: model family (registry name or alias, case-insensitive); default "lightgbm". ``"auto"`` or several
    #: families (``"lightgbm,xgboost"`` or a list) searches the family too (``hpo["chosen_family"]``).
    #: ``load_data`` writes back the canonical name ("auto", or the registry names joined by commas).
    algorithm: str | list[str]
    #: metric to optimize and report first; ``None`` -> roc_auc (binary), log_loss (multiclass),
    #: rmse (regression). ``load_data`` writes back the canonical name.
    metric: str | None
    #: size of the study (a resumed study counts its earlier trials); default 50.
    n_trials: int | None
    #: seconds for the whole study (``None``: no limit). With ``n_trials=None`` the timeout alone bounds it.
    timeout: float | None
    #: seconds for the whole run, from ``ModelTrainerContext.started_at`` to the saved model: the study
    #: gets what remains after an estimate of the rest (final fits, evaluation, registration).
    time_budget: float | None
    #: "tpe" (default), "random", "cmaes", "gp", "qmc", "grid".
    sampler: str
    #: "median" (default), "percentile", "successive_halving", "hyperband", "threshold", "patient", "none".
    pruner: str | None
    #: options of the pruner (``None``: the engine's, see ``PrunerFactory.tuning_defaults``), e.g.
    #: ``{"percentile": 20.0}``, ``{"lower": 0.6}`` (threshold), ``{"patience": 3, "wrapped": "median"}``.
    pruner_options: dict[str, Any] | None
    #: configurations evaluated right after the defaults (before the portfolio and the sampler):
    #: a list of ``{param: value}`` with params of the search space (source "user").
    enqueue: list[dict[str, Any]] | None
    #: stop the study after this many completed trials without an improvement of ``min_improvement``.
    patience: int | None
    #: the least change of the best value that counts as an improvement for ``patience`` (default 0).
    min_improvement: float
    #: stop the study after this many failed trials (``None``: no limit).
    max_failures: int | None
    #: which trial the final model uses: "best" (the best mean validation score) or "robust" (under
    #: CV, the most reliable gain over the defaults on the same folds, or the defaults when no trial
    #: beats them by more than one standard error: :mod:`src.mlops.selection`).
    selection: str
    #: the final model averages the study's best ``ensemble_size`` configurations (default 3; 1: the
    #: best alone; measured on bench_real at 60 s: 13 better, 5 tied, 8 worse than the best alone).
    #: The others must be at least as good as the defaults trial and of the best one's family, and
    #: under a time budget their final fits must fit in it (:mod:`src.mlops.ensemble`). A family search
    #: (``algorithm="auto"`` or a list) deploys instead its greedy blend of at most this many of its
    #: best trials, of any family, weighted (:mod:`src.mlops.blend`), when it scores above the best
    #: alone on the validation rows and its fits fit in the time left.
    ensemble_size: int
    #: search space replacing the family's default (dict format of SPEC F2; JSON only).
    search_space: dict[str, Any] | None
    #: how trials are scored: "auto" (default: chosen from the data by the rule of
    #: :mod:`src.mlops.schemes`, printed in the summary), "holdout", "cv", "cv=K", "cv=KxR"
    #: (K folds of train+validation, R shuffles), "timeseries", "timeseries-cv=K".
    scheme: str
    #: shorthand for ``scheme="cv=K"`` (K folds of train+validation); ``None``: ``scheme`` decides.
    cv: int | None
    #: trials running at once (default 1).
    n_jobs: int
    #: seconds per trial; a trial over it is FAIL "timeout" (trials then run in worker processes).
    trial_timeout: float | None
    #: ``False`` skips the study: the model defaults are trained (default ``True``).
    tuning_enabled: bool
    #: rows the deployed model is fitted on: "all" (default: the model scored on the test split is
    #: fitted on train+val; after that the deployed model is refit on train+val+test), "train+val"
    #: (every row but the test split) or "train" (exactly like holdout trials). Boosting round
    #: counts come from early stopping in the study, scaled to the rows of the final fit.
    refit: str
    #: seed of the split, the sampler and the models (default 42).
    seed: int
    #: fraction of rows in the test split (default 0.2).
    test_size: float
    #: fraction of rows in the validation split (default 0.2).
    val_size: float
    #: Optuna study name; default ``trainer-<run_id>`` (stable across a resume).
    study_name: str | None
    #: a named study that exists with other data, family, problem type, metric or scheme is refused
    #: (default); ``True`` starts a new study under the next free name ``NAME-2``... instead.
    new_study: bool
    #: seed a fresh study, after the defaults, with the best trials of earlier studies of the same
    #: family, problem type, metric and data (else the same columns and types) from the history
    #: database (``ModelTrainerContext.history``); default ``True``.
    warm_start: bool
    #: how many history trials a warm start seeds at most (default 5; 0 seeds none).
    warm_start_trials: int
    #: reuse stored results of identical configurations on the same data, scheme, metric and library
    #: versions instead of training them again (in the history database, else in memory); default ``True``.
    trial_cache: bool
    #: ``"random"``: after the study, a random search with the same budget on the same objective;
    #: the summary shows defaults vs random vs tuned (``hpo["comparison"]``). With a time bound the
    #: study and the baseline share the study's seconds, half each. Default ``None`` (no comparison).
    compare: str | None
    #: adaptive narrowing (:mod:`src.mlops.narrowing`): the study's budget in this many phases; after
    #: each, numeric ranges narrow around the best trial and widen where it sits on a bound.
    #: Default 1 (no narrowing); one model family only.
    phases: int
    #: search the preprocessing steps with the model (scaler, feature selection, imputation; params
    #: ``step__param``, :mod:`src.mlops.pipeline_steps`); default ``False``. A search space naming
    #: ``step__param`` searches those steps without it.
    pipeline_search: bool
    #: multi-objective tuning: the metric first, then costs to minimize -- ``"latency"`` (ms of predict
    #: per 1,000 validation rows) and/or ``"size"`` (bytes of the pickled model), e.g.
    #: ``["roc_auc", "latency", "size"]``. Default ``None``: the metric alone. No pruning then.
    objectives: list[str] | None
    #: which point of the Pareto front is trained: ``"fastest"`` (default with latency), ``"smallest"``
    #: (default without), ``"best_metric"``; among points within ``pick_tolerance`` of the best metric.
    pick_rule: str | None
    #: a fraction of the best metric, 0 <= tolerance < 1 (default 0.01 = 1 %).
    pick_tolerance: float | None
    #: id of the run (given, or set by ``load_data``); names the run directory
    #: ``<hpo_home>/runs/<run_id>`` and the default study.
    run_id: str


class ModelTrainerState(ModelTrainerInput, total=False):
    """The graph state: the inputs (:class:`ModelTrainerInput`) and the outputs of the nodes (each
    documented with its node)."""

    # ------------------------------------------------------------------ outputs
    #: prepared data: ``{"X": DataRef, "y": DataRef}`` (load_data).
    data_ref: dict[str, DataRef]
    #: JSON file of the fitted cleaning (:class:`~src.mlops.features.FeaturePreparer`) that turns raw
    #: rows into ``X``; the model artifacts copy it as ``preparer.json`` (load_data).
    preparer_path: str
    #: fingerprint of the prepared X and y (load_data).
    dataset_fingerprint: str
    #: ``{"name", "source", "n_rows", "n_features", "categorical_columns", "class_labels"}`` (load_data).
    dataset_info: dict[str, Any]
    #: column -> reason it was dropped (identifier, constant, free text, ...) (load_data).
    dropped_columns: dict[str, str]
    #: human-readable cleaning and split notes (load_data, split_data).
    data_notes: list[str]
    #: column -> why it alone predicts the target exactly: a likely leak, kept (load_data;
    #: :mod:`src.mlops.features._leaks`). The CLI prints each as a warning.
    leak_suspects: dict[str, str]
    #: references to the six split files (split_data).
    splits: SplitRefs
    #: ``{"train": n, "val": n, "test": n}`` (split_data).
    split_sizes: dict[str, int]
    #: "stratified" | "random" | "time" (split_data).
    split_strategy: str
    #: what the tuner did (hyperparameter_tuner).
    hpo: HPOSummary
    #: model defaults updated by the best params: what the final model is trained with (hyperparameter_tuner).
    merged_params: dict[str, Any]
    #: the defaults of the model family (hyperparameter_tuner), for the defaults baseline.
    default_params: dict[str, Any]
    #: directory of the deployed model artifact, model.skops + preparer.json + metadata.json
    #: (training_executor; replaced by final_refit with the model refit on all rows when ``refit="all"``).
    model_path: str
    #: directory of the model the test metrics belong to (fitted without the test rows) (training_executor).
    evaluated_model_path: str
    #: directory of the defaults model artifact (training_executor; equals ``model_path`` when
    #: tuning was disabled or the best params are the defaults).
    defaults_model_path: str
    #: ``{"refit", "best_iteration", "n_rounds", "fit_seconds", "defaults_best_iteration",
    #: "defaults_n_rounds", "defaults_fit_seconds", "fit_rows"}`` (training_executor): ``best_iteration`` is the
    #: round count found on validation, ``n_rounds`` the count of the evaluated model; final_refit
    #: adds ``"deployed": {"refit", "fit_rows", "n_rounds", "fit_seconds"}`` for the model refit on all rows.
    training: dict[str, Any]
    #: artifact directory -> {file name: SHA-256} of every model artifact this run wrote
    #: (training_executor, and any node that re-saves one; merged by key). Checked before a model
    #: file is read (``artifacts.load_run_artifact``): a file beside the model cannot vouch for it.
    artifact_digests: Annotated[dict[str, dict[str, str]], merge_artifact_digests]
    #: metrics of the tuned model on the validation split (model_evaluator).
    validation_metrics: dict[str, float | None]
    #: metrics of the tuned model on the test split, computed once (model_evaluator).
    test_metrics: dict[str, float | None]
    #: metrics of the defaults model on the test split (model_evaluator).
    defaults_test_metrics: dict[str, float | None]
    #: metric -> why it could not be computed (e.g. a class missing from the test split) (model_evaluator).
    metric_errors: dict[str, str]
    #: the MLflow parent run of this run, set as soon as it is opened (hyperparameter_tuner) so that
    #: a resumed run reopens it instead of losing its record (register_model).
    mlflow_parent_run_id: str | None
    #: parent MLflow run of the study (register_model; ``None`` without a tracker).
    mlflow_run_id: str | None
    #: URI of the model logged to MLflow (register_model).
    mlflow_model_uri: str | None
    #: MLflow writes dropped by the best-effort tracker (register_model).
    mlflow_dropped_writes: int | None
    #: why the MLflow record of a tracked run is incomplete (register_model; ``None`` when complete).
    mlflow_error: str | None
    #: set when a node refused its input; the graph then ends.
    error: ErrorInfo | None
    #: "running" while the graph runs, then "completed" | "failed", or "completed_untracked": the model
    #: was trained, evaluated and saved, but a tracker was given and the MLflow record (parent run
    #: and logged model) could not be written -- ``mlflow_error`` says why.
    status: Literal["running", "completed", "completed_untracked", "failed"]


# ---------------------------------------------------------------------- node updates
class LoadDataUpdate(TypedDict, total=False):
    run_id: str
    target: str
    problem_type: str
    algorithm: str
    metric: str
    time_column: str | None
    data_ref: dict[str, DataRef]
    preparer_path: str
    dataset_fingerprint: str
    dataset_info: dict[str, Any]
    dropped_columns: dict[str, str]
    data_notes: list[str]
    leak_suspects: dict[str, str]
    splits: SplitRefs | None
    split_sizes: dict[str, int] | None
    split_strategy: str | None
    hpo: HPOSummary | None
    merged_params: dict[str, Any] | None
    default_params: dict[str, Any] | None
    model_path: str | None
    evaluated_model_path: str | None
    defaults_model_path: str | None
    training: dict[str, Any] | None
    artifact_digests: dict[str, dict[str, str]] | None
    validation_metrics: dict[str, float | None] | None
    test_metrics: dict[str, float | None] | None
    defaults_test_metrics: dict[str, float | None] | None
    metric_errors: dict[str, str] | None
    mlflow_parent_run_id: str | None
    mlflow_run_id: str | None
    mlflow_model_uri: str | None
    mlflow_dropped_writes: int | None
    mlflow_error: str | None
    error: ErrorInfo | None
    status: str


class SplitDataUpdate(TypedDict, total=False):
    splits: SplitRefs
    split_sizes: dict[str, int]
    split_strategy: str
    data_notes: list[str]
    error: ErrorInfo
    status: str


class TunerUpdate(TypedDict, total=False):
    hpo: HPOSummary
    mlflow_parent_run_id: str | None
    merged_params: dict[str, Any]
    default_params: dict[str, Any]
    error: ErrorInfo
    status: str


class TrainingUpdate(TypedDict, total=False):
    model_path: str
    evaluated_model_path: str
    defaults_model_path: str
    training: dict[str, Any]
    artifact_digests: dict[str, dict[str, str]]
    error: ErrorInfo
    status: str


class EvaluatorUpdate(TypedDict, total=False):
    validation_metrics: dict[str, float | None]
    test_metrics: dict[str, float | None]
    defaults_test_metrics: dict[str, float | None]
    metric_errors: dict[str, str]
    #: the tuner's summary, completed by the evaluator: test scores in ``comparison`` (``compare="random"``)
    #: and a validation-test gap among its analysis' recommendations
    hpo: HPOSummary
    error: ErrorInfo
    status: str


class RefitUpdate(TypedDict, total=False):
    model_path: str
    training: dict[str, Any]
    artifact_digests: dict[str, dict[str, str]]
    error: ErrorInfo
    status: str


class RegisterUpdate(TypedDict, total=False):
    mlflow_run_id: str | None
    mlflow_model_uri: str | None
    mlflow_dropped_writes: int | None
    mlflow_error: str | None
    error: ErrorInfo
    status: str


#: Keys the nodes produce. ``load_data`` resets them at the start of a run.
OUTPUT_KEYS: tuple[str, ...] = (
    "splits", "split_sizes", "split_strategy", "hpo", "merged_params", "default_params", "model_path",
    "evaluated_model_path",
    "defaults_model_path", "training", "artifact_digests", "validation_metrics", "test_metrics",
    "defaults_test_metrics", "metric_errors", "mlflow_parent_run_id", "mlflow_run_id", "mlflow_model_uri",
    "mlflow_dropped_writes", "mlflow_error", "error",
)

def error_update(node: str, exc: BaseException) -> dict[str, Any]:
    """The update of a node that refused its input: ``{"error": {...}, "status": "failed"}``."""
    return {
        "error": ErrorInfo(node=node, type=type(exc).__name__, message=str(exc)),
        "status": "failed",
    }


def jsonable(value: Any) -> Any:
    """``value`` as plain data for the graph state (:func:`src.mlops.jsonutil.to_jsonable` with the
    state's policy): non-finite floats become ``None`` (JSON has no NaN); anything that is not plain
    data raises ``TypeError`` (a bug: only plain data may enter the state)."""
    return to_jsonable(value, non_finite="null", strict=True)


def is_bad_input(exc: BaseException) -> bool:
    """Errors that end a run with ``status="failed"`` (bad input), as opposed to infrastructure
    failures (database unreachable or timing out), which are raised so the run can be resumed."""
    from src.mlops.errors import DatabaseTimeoutError, DatabaseUnavailableError

    return isinstance(exc, MLOpsError) and not isinstance(exc, (DatabaseUnavailableError, DatabaseTimeoutError))


async def run_blocking(node: str, fn: Any, *args: Any) -> Any:
    """Run a node's blocking work off the event loop; bad input becomes the node's error update."""
    import asyncio

    try:
        return await asyncio.to_thread(fn, *args)
    except Exception as e:
        if is_bad_input(e):
            return error_update(node, e)
        raise
