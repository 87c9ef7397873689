"""``final_refit``: refit the deployed model on every row, after the test split has been scored.

With ``refit="all"`` (the default) the model ``model_evaluator`` scored was fitted on train+
validation, so its test metrics are honest; the model a user deploys should not waste a fifth of
their rows, so it is refit here with the same params on train+validation+test (boosting rounds
scaled from the study's early stopping to the larger data, as for the evaluated model). It is saved
as ``<hpo_home>/runs/<run_id>/model`` (``state["model_path"]``); the evaluated model stays at
``evaluated_model_path``. The metadata says which is which: the deployed model's
``test_metrics`` are those of the evaluated model (it has no test score of its own).

With ``refit="train+val"`` or ``"train"`` this node changes nothing (the evaluated model is deployed).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd
from langgraph.runtime import Runtime

from src.mlops.objectives import concat_rows
from src.mlops.splits import load_frame_ref

from ..artifacts import save_model_artifact
from ..context import ModelTrainerContext, get_context, run_directory
from ..settings import setting
from ..state import ModelTrainerState, RefitUpdate, run_blocking
from .training_executor import artifact_metadata, final_objective, with_members

__all__ = ["final_refit", "NODE", "TEST_METRICS_NOTE"]

NODE = "final_refit"
#: how the deployed model's metadata, the state and the CLI label the test metrics.
TEST_METRICS_NOTE = ("test metrics are those of the model fitted on train+validation (evaluated_model), "
                     "scored before the deployed model was refit on train+validation+test")


async def final_refit(state: ModelTrainerState, runtime: Runtime[ModelTrainerContext]) -> RefitUpdate:
    """Refit the deployed model on every row (``refit="all"``); otherwise a no-op."""
    if setting(state, "refit") != "all":
        return {}
    ctx = get_context(runtime)
    return await run_blocking(NODE, _refit, state, ctx)  # type: ignore[no-any-return]


def _refit(state: Mapping[str, Any], ctx: ModelTrainerContext) -> RefitUpdate:
    objective = final_objective(state, ctx)
    splits = state["splits"]
    X = concat_rows(concat_rows(load_frame_ref(splits["train_X"]), load_frame_ref(splits["val_X"])),
                    load_frame_ref(splits["test_X"]))
    y = pd.concat([load_frame_ref(splits[k]) for k in ("train_y", "val_y", "test_y")], ignore_index=True)
    merged = dict(state["merged_params"])
    hpo = state.get("hpo") or {}
    training = dict(state.get("training") or {})
    # the evaluated model's round count (found by early stopping, scaled to train+val) carries over
    n_rounds, rows = ((hpo.get("best_iteration"), hpo.get("best_fit_rows")) if hpo.get("enabled")
                      else (training.get("best_iteration"), None))
    deployed = objective.fit_rows(merged, X, y, n_rounds=n_rounds, rounds_rows=rows, label="train+val+test")
    # the same average as the evaluated model, refit on every row
    deployed = with_members(state, ctx, objective, deployed, lambda o, m: o.fit_rows(
        m["params"], X, y, n_rounds=m.get("best_iteration"), rounds_rows=m.get("fit_rows"), label="train+val+test"))
    metadata = artifact_metadata(state, "deployed", merged, deployed)
    metadata.update({
        "validation_metrics": state.get("validation_metrics"),
        "test_metrics": state.get("test_metrics"),
        "defaults_test_metrics": state.get("defaults_test_metrics"),
        "test_metrics_of": "evaluated_model",
        "test_metrics_note": TEST_METRICS_NOTE,
        "evaluated_model_path": state.get("evaluated_model_path"),
    })
    saved = save_model_artifact(deployed.model, run_directory(ctx, state["run_id"]) / "model", metadata,
                                preparer=state.get("preparer_path"))
    training["deployed"] = {"refit": deployed.refit, "fit_rows": deployed.fit_rows, "n_rounds": deployed.n_rounds,
                            "fit_seconds": round(deployed.fit_seconds, 4)}
    return {"model_path": str(saved.path), "training": training, "artifact_digests": saved.state_entry()}
