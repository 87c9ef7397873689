"""``register_model``: log the final model to MLflow (when a tracker is given) and finish the run.

With ``ModelTrainerContext.tracker`` the model is logged under the run's MLflow parent run as a
portable pyfunc that takes the user's *raw* rows (the cleaning of ``preparer.json`` + the model; see
:mod:`src.mlops.tracking`), with the validation/test metrics and the final params
(``final.<param>``); the parent run is then ended. The artifact's digests (``artifact_digests``) are
checked before its files are read, and recorded in the history database (``ModelTrainerContext.history``).

Resuming: the parent run id is checkpointed (``mlflow_parent_run_id``, set by the tuner when the run
opens), so a run resumed in a new process reopens the same MLflow run instead of losing its record.

Never silent: when a tracker was given but the record could not be written (MLflow unreachable, no
parent run, a failed upload), the run ends ``status="completed_untracked"`` with ``mlflow_error``
saying why -- the model is trained, evaluated and saved locally either way. Without a tracker the
run is ``"completed"``. The tracker is owned by the caller, who closes it (``await tracker.aclose()``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
from langgraph.runtime import Runtime

from src.mlops.datasets import load_dataset
from src.mlops.preprocessing import as_frame

from ..artifacts import (
    METADATA_FILE,
    MODEL_FILE,
    PREPARER_FILE,
    load_run_artifact,
    update_artifact_metadata,
)
from ..budget import POST_STUDY_KEY, record_seconds, table_rows
from ..context import ModelTrainerContext, get_context
from ..settings import model_family
from ..state import ModelTrainerState, RegisterUpdate, error_update, is_bad_input

__all__ = ["register_model", "NODE"]

NODE = "register_model"
_SAMPLE_ROWS = 100


def _metrics(state: Mapping[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    for prefix, key in (("val", "validation_metrics"), ("test", "test_metrics"), ("defaults_test", "defaults_test_metrics")):
        for name, value in (state.get(key) or {}).items():
            if value is not None:
                out[f"{prefix}_{name}"] = float(value)
    return out


def _raw_sample(state: Mapping[str, Any], ctx: ModelTrainerContext) -> pd.DataFrame | None:
    """A few raw training rows (the pyfunc signature's column types), or ``None`` when the source
    cannot be read again (the signature then types the raw columns as "any")."""
    try:
        if ctx.data is not None:
            data = ctx.data[0] if isinstance(ctx.data, tuple) else ctx.data
            return as_frame(data).head(_SAMPLE_ROWS)
        source = state.get("data_path") or state.get("dataset_name")
        return None if source is None else load_dataset(source, target=state.get("target")).frame.head(_SAMPLE_ROWS)
    except Exception:  # noqa: BLE001 - the signature is then less precise, nothing else changes
        return None


def _check_and_sample(state: Mapping[str, Any], ctx: ModelTrainerContext) -> pd.DataFrame | None:
    load_run_artifact(state, state["model_path"])  # the recorded digests, before MLflow reads the files
    return _raw_sample(state, ctx)


def _record_post_study_overhead(state: Mapping[str, Any], ctx: ModelTrainerContext) -> None:
    """What the steps between the study and the registration took beyond their fits (saving and
    checking artifacts, evaluation, checkpoints): the next run's time budget keeps this much."""
    hpo, training = state.get("hpo") or {}, state.get("training") or {}
    finished = hpo.get("finished_at")
    if not isinstance(finished, (int, float)):
        return
    fits = [training.get("fit_seconds"), (training.get("deployed") or {}).get("fit_seconds")]
    if state.get("defaults_model_path") != state.get("evaluated_model_path"):
        fits.append(training.get("defaults_fit_seconds"))
    elapsed = time.time() - float(finished) - sum(f for f in fits if isinstance(f, (int, float)))
    if elapsed > 0:
        record_seconds(ctx.hpo_home, POST_STUDY_KEY, elapsed, rows=table_rows(state), family=model_family(state))


async def register_model(state: ModelTrainerState, runtime: Runtime[ModelTrainerContext]) -> RegisterUpdate:
    """Log the model to MLflow (if tracked), end the parent run, mark the run completed."""
    ctx = get_context(runtime)
    await asyncio.to_thread(_record_post_study_overhead, state, ctx)
    if ctx.history is not None:  # the digests outlive the run's checkpoints: load_recorded_artifact
        for path, digests in (state.get("artifact_digests") or {}).items():
            await ctx.history.record_artifact(path, digests, run_id=state["run_id"],
                                              study_name=(state.get("hpo") or {}).get("study_name"))
    tracker = ctx.tracker
    if tracker is None:
        return {"mlflow_run_id": None, "mlflow_model_uri": None, "mlflow_dropped_writes": None, "mlflow_error": None,
                "status": "completed"}
    try:
        raw = await asyncio.to_thread(_check_and_sample, state, ctx)
    except Exception as e:
        if is_bad_input(e):
            return error_update(NODE, e)  # type: ignore[return-value]
        raise
    parent = state.get("mlflow_parent_run_id")
    if tracker.parent_run_id is None and parent:
        await tracker.reopen_run(parent)  # a resumed run: same record, not a new one
    model_dir = Path(state["model_path"])
    preparer = model_dir / PREPARER_FILE
    ensemble = (state.get("hpo") or {}).get("ensemble") or []
    started = time.monotonic()
    uri = await tracker.log_final_model(
        model_dir / MODEL_FILE, preparer_file=preparer if preparer.is_file() else None, raw_sample=raw,
        files=[model_dir / METADATA_FILE], metrics=_metrics(state),
        params={"final.algorithm": model_family(state),
                **({"final.ensemble_trials": ",".join(str(m["number"]) for m in ensemble),
                    "final.ensemble_families": ",".join(str(m.get("algorithm")) for m in ensemble),
                    "final.ensemble_weights": ",".join(f"{float(m.get('weight', 0)):.4f}" for m in ensemble)}
                   if ensemble else {}),
                **{f"final.{k}": v for k, v in (state.get("merged_params") or {}).items()}},
        registered_model_name=ctx.registered_model_name,
    )
    ended = await tracker.end_run("FINISHED" if uri else "FAILED")
    # the next run's time budget keeps this much for the upload (see budget.py)
    await asyncio.to_thread(record_seconds, ctx.hpo_home, "mlflow_model_upload", time.monotonic() - started,
                            rows=table_rows(state), family=model_family(state))
    run_id = tracker.parent_run_id
    error = None
    if uri is None or not ended:
        error = tracker.last_error or "the MLflow tracker could not record the run"
    if run_id is not None:
        await asyncio.to_thread(update_artifact_metadata, model_dir, {"mlflow_run_id": run_id, "mlflow_model_uri": uri})
    return {
        "mlflow_run_id": run_id,
        "mlflow_model_uri": uri,
        "mlflow_dropped_writes": int(tracker.dropped_writes),
        "mlflow_error": error,
        "status": "completed" if error is None else "completed_untracked",
    }
