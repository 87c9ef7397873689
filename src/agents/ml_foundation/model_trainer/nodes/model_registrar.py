"""``register_model``: log the final model to MLflow (when a tracker is given) and finish the run.

With ``ModelTrainerContext.tracker`` the tuned model is logged under the study's parent run with a
signature inferred from a training sample, together with the validation/test metrics and the
final params (``final.<param>``); the parent run is then ended. MLflow is best-effort: a broken or
unreachable tracking server never fails the run — ``mlflow_dropped_writes`` counts what was lost.
Without a tracker the step only marks the run completed (the local artifact already exists).
The MLflow model is the bare TunedModel: it takes prepared features (the signature's columns); the
local artifact (``load_model_artifact(state["model_path"])``) also takes raw rows. The artifact's
``preparer.json`` (the cleaning of raw rows, :meth:`FeaturePreparer.from_dict`) and
``metadata.json`` are logged to the same run under ``model_files/``.
The tracker is owned by the caller, who closes it (``await tracker.aclose()``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from langgraph.runtime import Runtime

from src.mlops.splits import load_frame_ref

from ..artifacts import (
    METADATA_FILE,
    PREPARER_FILE,
    load_model_artifact,
    update_artifact_metadata,
)
from ..budget import record_seconds
from ..context import ModelTrainerContext, get_context
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


def _load(state: Mapping[str, Any]) -> tuple[Any, Any]:
    model, _ = load_model_artifact(state["model_path"])
    sample = load_frame_ref(state["splits"]["train_X"]).head(_SAMPLE_ROWS)
    return model.model, sample  # the TunedModel, as the sample holds prepared features


async def register_model(state: ModelTrainerState, runtime: Runtime[ModelTrainerContext]) -> RegisterUpdate:
    """Log the model to MLflow (if tracked), end the parent run, mark the run completed."""
    ctx = get_context(runtime)
    tracker = ctx.tracker
    if tracker is None:
        return {"mlflow_run_id": None, "mlflow_model_uri": None, "mlflow_dropped_writes": None, "status": "completed"}
    try:
        model, sample = await asyncio.to_thread(_load, state)
    except Exception as e:
        if is_bad_input(e):
            return error_update(NODE, e)  # type: ignore[return-value]
        raise
    params = {f"final.{k}": v for k, v in (state.get("merged_params") or {}).items()}
    model_dir = Path(state["model_path"])
    files = [model_dir / name for name in (PREPARER_FILE, METADATA_FILE) if (model_dir / name).is_file()]
    started = time.monotonic()
    uri = await tracker.log_final_model(
        model, sample, metrics=_metrics(state), params=params, registered_model_name=ctx.registered_model_name,
        files=files,
    )
    await tracker.end_run("FINISHED")
    # the next run's time budget keeps this much for the upload (see budget.py)
    await asyncio.to_thread(record_seconds, ctx.hpo_home, "mlflow_model_upload", time.monotonic() - started)
    run_id = tracker.parent_run_id
    if run_id is not None:
        await asyncio.to_thread(update_artifact_metadata, state["model_path"],
                                {"mlflow_run_id": run_id, "mlflow_model_uri": uri})
    return {
        "mlflow_run_id": run_id,
        "mlflow_model_uri": uri,
        "mlflow_dropped_writes": int(tracker.dropped_writes),
        "status": "completed",
    }
