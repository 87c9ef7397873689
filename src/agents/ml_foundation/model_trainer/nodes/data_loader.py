"""``load_data``: read the input, clean it into model-ready X/y, store it by reference.

Sources (exactly one): ``state["data_path"]`` (CSV/Parquet file), ``state["dataset_name"]`` (a dataset
bundled with scikit-learn) or ``ModelTrainerContext.data`` (an in-memory DataFrame or ``(X, y)``).
The prepared frames are written as Parquet under ``<hpo_home>/runs/<run_id>/data/`` and only their
references enter the state; the cleaning itself (a :class:`~src.mlops.features.FeaturePreparer`,
which the model artifacts carry so that they predict on raw rows) is written there as JSON and its
path enters the state as ``preparer_path``. The algorithm and metric are checked against the problem type here, so
a bad choice fails before any split, study or fit.

This node starts a run: it sets ``run_id`` (kept when the state already has one for an unfinished
run), ``status="running"`` and clears the outputs of an earlier run on the same thread.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import os
import re
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from langgraph.runtime import Runtime

from src.mlops.datasets import BUNDLED_DATASETS, load_dataset
from src.mlops.errors import ConfigurationError, DataValidationError
from src.mlops.family_search import canonical_algorithm, family_names, is_family_search
from src.mlops.features import prepare_features, save_preparer
from src.mlops.fingerprint import dataset_fingerprint
from src.mlops.metrics import default_metric, get_metric
from src.mlops.models import get_model_spec
from src.mlops.objectives import check_metric_supported
from src.mlops.preprocessing import as_frame
from src.mlops.multi_objective import parse_objectives
from src.mlops.problems import ANOMALY, normalize_problem_type
from src.mlops.splits import save_frame_ref

from ..context import ModelTrainerContext, get_context, run_directory
from ..settings import setting, validate_settings
from ..state import (
    OUTPUT_KEYS,
    LoadDataUpdate,
    ModelTrainerState,
    error_update,
    is_bad_input,
    jsonable,
)

__all__ = ["load_data", "NODE"]

NODE = "load_data"
_RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def _new_run_id() -> str:
    """Sortable and unique: ``20261123T143000-1a2b3c4d``."""
    return f"{_dt.datetime.now(_dt.UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"


def _run_id(state: Mapping[str, Any]) -> str:
    """The state's ``run_id`` unless it belongs to a finished run on this thread (then a new one)."""
    run_id = state.get("run_id")
    if run_id is None or state.get("status") in ("completed", "completed_untracked", "failed"):
        return _new_run_id()
    if not isinstance(run_id, str) or not _RUN_ID_RE.match(run_id):
        raise ConfigurationError(
            f"run_id must be 1-100 characters of letters, digits, '_', '.', '-' (it names a directory), got {run_id!r}"
        )
    return run_id


async def load_data(state: ModelTrainerState, runtime: Runtime[ModelTrainerContext]) -> LoadDataUpdate:
    """Load, clean and store the input data; validate algorithm/metric for the problem type."""
    ctx = get_context(runtime)
    reset: dict[str, Any] = {key: None for key in OUTPUT_KEYS}
    try:
        run_id = _run_id(state)
    except ConfigurationError as e:
        return {**reset, "run_id": None, **error_update(NODE, e)}  # type: ignore[typeddict-item]
    try:
        validate_settings(state)
        update = await asyncio.to_thread(_load, state, ctx, run_id)
    except Exception as e:
        if is_bad_input(e):
            return {**reset, "run_id": run_id, **error_update(NODE, e)}  # type: ignore[typeddict-item]
        raise
    return {**reset, **update, "run_id": run_id, "status": "running"}  # type: ignore[typeddict-item]


# ----------------------------------------------------------------------------------------- work
def _source(state: Mapping[str, Any], ctx: ModelTrainerContext) -> tuple[Any, str | None]:
    """(what to pass to ``load_dataset``, target) for the single source given."""
    data_path, dataset_name, data = state.get("data_path"), state.get("dataset_name"), ctx.data
    given = [name for name, v in (("data_path", data_path), ("dataset_name", dataset_name),
                                  ("context.data", data)) if v is not None]
    if not given:
        raise DataValidationError(
            "no input data: give data_path (a CSV/Parquet file), dataset_name (one of "
            f"{sorted(BUNDLED_DATASETS)}) or an in-memory DataFrame / (X, y) tuple as ModelTrainerContext.data"
        )
    if len(given) > 1:
        raise DataValidationError(f"give exactly one data source, but got {given}")
    target = setting(state, "target")
    if data_path is not None:
        if not isinstance(data_path, (str, os.PathLike)):
            raise DataValidationError(f"data_path must be a file path, got {type(data_path).__name__}")
        path = Path(data_path).expanduser()
        if not path.is_file():
            raise DataValidationError(
                f"data_path {str(path.resolve())!r} is not an existing file; pass a CSV/Parquet file "
                "(or dataset_name for a bundled dataset)"
            )
        return path, target
    if dataset_name is not None:
        key = str(dataset_name).strip().lower().replace("-", "_")
        if key not in BUNDLED_DATASETS:
            raise DataValidationError(
                f"unknown dataset_name {dataset_name!r}: bundled datasets are {sorted(BUNDLED_DATASETS)}; "
                "pass a file as data_path instead"
            )
        return key, target
    name = target if target is not None else _memory_target(data)
    return _frame_from_memory(data, name), name


def _memory_target(data: Any) -> str:
    """Target name of in-memory data when ``state["target"]`` is absent: the name of a ``y`` Series,
    else "target"; a DataFrame needs an explicit target."""
    if isinstance(data, pd.DataFrame):
        raise DataValidationError(
            "an in-memory DataFrame needs state['target'] naming its target column "
            f"(columns: {[str(c) for c in data.columns][:10]})"
        )
    if isinstance(data, tuple) and len(data) == 2 and isinstance(data[1], pd.Series) and data[1].name is not None:
        return str(data[1].name)
    return "target"


def _frame_from_memory(data: Any, target: str) -> pd.DataFrame:
    """The DataFrame itself, or ``(X, y)`` joined into one frame (``y`` as column ``target``, by position)."""
    if isinstance(data, pd.DataFrame):
        return data
    if not (isinstance(data, tuple) and len(data) == 2):
        raise DataValidationError(
            f"ModelTrainerContext.data must be a pandas DataFrame or a tuple (X, y), got {type(data).__name__}"
        )
    X, y = data
    try:
        frame = as_frame(X)
    except ValueError as e:
        raise DataValidationError(f"ModelTrainerContext.data: X {e}") from e
    y_values = np.asarray(y)
    if y_values.ndim == 2 and 1 in y_values.shape:
        y_values = y_values.reshape(-1)
    if y_values.ndim != 1:
        raise DataValidationError(f"ModelTrainerContext.data: y must be one-dimensional, got shape {y_values.shape}")
    if len(y_values) != len(frame):
        raise DataValidationError(
            f"ModelTrainerContext.data: X has {len(frame)} rows but y has {len(y_values)}; they must match row for row"
        )
    if target in frame.columns:
        raise DataValidationError(
            f"ModelTrainerContext.data: the target name {target!r} is also a column of X; pass another state['target']"
        )
    frame = frame.copy(deep=False)
    frame[target] = y_values  # by position, as scikit-learn pairs X and y
    return frame


def _load(state: Mapping[str, Any], ctx: ModelTrainerContext, run_id: str) -> dict[str, Any]:
    source, target = _source(state, ctx)
    loaded = load_dataset(source, target=target)
    requested = setting(state, "problem_type")
    problem_type = normalize_problem_type(requested) if requested is not None else None
    prepared = prepare_features(loaded.frame, loaded.target, problem_type=problem_type,
                                time_column=setting(state, "time_column"),
                                drop_columns=setting(state, "drop_columns") or ())
    pt = prepared.problem_type
    # multi-objective: the first objective is the metric, and it must be one of the problem type's
    objectives = parse_objectives(setting(state, "objectives"), pt, metric=setting(state, "metric"))
    metric = get_metric(setting(state, "metric") or (objectives.metric if objectives else None) or default_metric(pt), pt)
    algorithm = setting(state, "algorithm")
    if is_family_search(algorithm):  # "auto" or a list: each family must take the problem and the metric
        family_names(algorithm, pt, metric.name)
        algorithm = canonical_algorithm(algorithm)
    else:
        spec = get_model_spec(algorithm, pt)
        check_metric_supported(spec, pt, metric)
        algorithm = spec.name

    X, y = prepared.X, prepared.y
    notes = prepared.describe()
    if not X.index.is_unique:  # the splits are told apart by index labels
        X, y = X.reset_index(drop=True), y.reset_index(drop=True)
        notes.append("the input index has duplicate labels: rows renumbered 0..n-1")
    data_dir = run_directory(ctx, run_id) / "data"
    refs = {"X": save_frame_ref(X, data_dir, "X"), "y": save_frame_ref(y, data_dir, "y")}
    assert prepared.preparer is not None  # prepare_features always fits one
    preparer_path = save_preparer(prepared.preparer, data_dir)
    info = {
        "name": loaded.name,
        "source": loaded.source,
        "n_rows": int(X.shape[0]),
        "n_features": int(X.shape[1]),
        "categorical_columns": list(prepared.categorical_columns),
        "n_numeric_columns": len(prepared.numeric_columns),
        "class_labels": prepared.class_labels,
        "n_dropped_rows": prepared.n_dropped_rows,
        "renamed_columns": dict(prepared.renamed_columns),
    }
    if pt == ANOMALY:
        info["n_anomalies"] = int((np.asarray(y) == 1).sum())
    return {
        "target": prepared.target,
        "problem_type": pt,
        "algorithm": algorithm,
        "metric": metric.name,
        "time_column": prepared.time_column,
        "data_ref": refs,
        "preparer_path": preparer_path,
        "dataset_fingerprint": dataset_fingerprint(X, y),
        "dataset_info": jsonable(info),
        "dropped_columns": {str(k): str(v) for k, v in prepared.dropped_columns.items()},
        "data_notes": [str(n) for n in notes],
        "leak_suspects": {str(k): str(v) for k, v in prepared.leak_suspects.items()},
    }
