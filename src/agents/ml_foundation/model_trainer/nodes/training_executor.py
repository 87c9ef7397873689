"""``training_executor``: fit the final model with the merged params, and the defaults baseline.

The final model is fitted with the same ``fit_model`` code as a trial
(:meth:`ModelObjective.fit_final`). With ``refit="train+val"`` (the default) it is fitted on the
training and validation splits together -- every row but the test split, as FLAML and most AutoML
tools do; boosting families take their round count from early stopping on validation (the best
trial's, scaled to the larger data). With ``refit="train"`` it is fitted exactly like a trial: on
the training split, with early stopping on the validation split. The family's defaults are fitted
the same way for comparison (once only when they equal the merged params). Both are saved as artifacts
(``model.skops`` + ``preparer.json`` + ``metadata.json``) under ``<hpo_home>/runs/<run_id>/model`` and
``.../defaults_model``; the state keeps the paths and the files' digests (``artifact_digests``).
Fits run in a worker thread, never on the event loop. The test split is not read here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from langgraph.runtime import Runtime

from src.mlops.objectives import FitResult, ModelObjective
from src.mlops.splits import load_frame_ref

from ..artifacts import save_model_artifact
from ..context import ModelTrainerContext, get_context, run_directory
from ..state import ModelTrainerState, TrainingUpdate, run_blocking, setting

__all__ = ["training_executor", "NODE"]

NODE = "training_executor"


async def training_executor(state: ModelTrainerState, runtime: Runtime[ModelTrainerContext]) -> TrainingUpdate:
    """Fit and save the tuned model and the defaults model."""
    ctx = get_context(runtime)
    return await run_blocking(NODE, _train, state, ctx)  # type: ignore[no-any-return]


def _metadata(state: Mapping[str, Any], kind: str, params: Mapping[str, Any], fit: FitResult) -> dict[str, Any]:
    model = fit.model
    hpo = state.get("hpo") or {}
    return {
        "kind": kind,
        "run_id": state["run_id"],
        "algorithm": model.algorithm,
        "problem_type": model.problem_type,
        "metric": setting(state, "metric"),
        "target": state.get("target"),
        "params": dict(params),
        "best_iteration": fit.best_iteration,
        "fit_seconds": round(fit.fit_seconds, 4),
        "feature_names": list(model.feature_names or []),
        "classes": model.classes,
        "dataset_fingerprint": state.get("dataset_fingerprint"),
        "split_sizes": state.get("split_sizes"),
        "seed": setting(state, "seed"),
        "study_name": hpo.get("study_name"),
        "hpo": {k: hpo.get(k) for k in ("enabled", "best_value", "defaults_value", "n_trials", "n_completed",
                                         "n_pruned", "n_failed", "scheme") if k in hpo},
    }


def _train(state: Mapping[str, Any], ctx: ModelTrainerContext) -> TrainingUpdate:
    splits = state["splits"]
    objective = ModelObjective(
        setting(state, "algorithm"),
        state["problem_type"],
        load_frame_ref(splits["train_X"]),
        load_frame_ref(splits["train_y"]),
        load_frame_ref(splits["val_X"]),
        load_frame_ref(splits["val_y"]),
        metric=setting(state, "metric"),
        seed=setting(state, "seed"),
        early_stopping_rounds=ctx.early_stopping_rounds,
    )
    merged = dict(state["merged_params"])
    defaults = dict(state.get("default_params") or objective.default_params)
    run_dir = run_directory(ctx, state["run_id"])

    refit = setting(state, "refit")
    hpo = state.get("hpo") or {}
    tuned = objective.fit_final(merged, refit=refit, n_rounds=hpo.get("best_iteration") if hpo.get("enabled") else None)
    saved = save_model_artifact(tuned.model, run_dir / "model", _metadata(state, "tuned", merged, tuned),
                                preparer=state.get("preparer_path"))
    training: dict[str, Any] = {"refit": refit, "best_iteration": tuned.best_iteration, "n_rounds": tuned.n_rounds,
                                "fit_seconds": round(tuned.fit_seconds, 4)}
    if objective.params_for(defaults) == objective.params_for(merged):
        defaults_saved, baseline = saved, tuned
    else:
        baseline = objective.fit_final(defaults, refit=refit)
        defaults_saved = save_model_artifact(baseline.model, run_dir / "defaults_model",
                                             _metadata(state, "defaults", defaults, baseline),
                                             preparer=state.get("preparer_path"))
    training.update(defaults_best_iteration=baseline.best_iteration, defaults_n_rounds=baseline.n_rounds,
                    defaults_fit_seconds=round(baseline.fit_seconds, 4))
    return {"model_path": str(saved.path), "defaults_model_path": str(defaults_saved.path), "training": training,
            "artifact_digests": {**saved.state_entry(), **defaults_saved.state_entry()}}
