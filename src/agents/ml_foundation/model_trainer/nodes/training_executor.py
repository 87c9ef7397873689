"""``training_executor``: fit the model that the test split will score, and the defaults baseline.

The model is fitted with the same ``fit_model`` code as a trial (:meth:`ModelObjective.fit_final`),
on the rows the study could see: train+validation (``refit="all"``, the default, and
``"train+val"``), or, with ``refit="train"``, exactly like a holdout trial (training split, early
stopping on validation). Boosting families take their round count from the study (the best
trial's early-stopped count, scaled to the rows of the fit). The family's defaults are fitted the
same way for comparison (once only when they equal the merged params). The test split is not read
here: ``model_evaluator`` scores these models, then ``final_refit`` refits the deployed model on
every row (``refit="all"``).

Artifacts (``model.skops`` + ``preparer.json`` + ``metadata.json``; their digests go to ``artifact_digests``): with ``refit="all"`` the
evaluated model goes to ``<hpo_home>/runs/<run_id>/evaluated_model`` (``final_refit`` writes the
deployed ``model``); otherwise to ``.../model``, which is then also the deployed model. The
defaults model goes to ``.../defaults_model``. Fits run in a worker thread, never on the event loop.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from langgraph.runtime import Runtime

from src.mlops.objectives import FitResult, ModelObjective, average_fits
from src.mlops.schemes import EvaluationScheme, parse_scheme, tuning_frames
from src.mlops.splits import load_frame_ref

from ..artifacts import save_model_artifact
from ..budget import final_fit_estimate, record_fit_ratio
from ..context import ModelTrainerContext, get_context, run_directory
from ..settings import model_family, setting
from ..state import ModelTrainerState, TrainingUpdate, run_blocking

__all__ = ["training_executor", "final_objective", "artifact_metadata", "NODE"]

NODE = "training_executor"


async def training_executor(state: ModelTrainerState, runtime: Runtime[ModelTrainerContext]) -> TrainingUpdate:
    """Fit and save the tuned model and the defaults model."""
    ctx = get_context(runtime)
    return await run_blocking(NODE, _train, state, ctx)  # type: ignore[no-any-return]


def final_objective(state: Mapping[str, Any], ctx: ModelTrainerContext, family: str | None = None) -> ModelObjective:
    """The objective the final fits go through: the study's family (with ``algorithm="auto"`` or a list,
    the family it chose; ``family``: another one, an averaged model's member), metric, seed and scheme (its
    rows: train+validation), so a final fit is built exactly like a trial. ``refit="train"`` keeps
    the holdout (train, early stopping on validation) whatever the study's scheme."""
    hpo = state.get("hpo") or {}
    scheme = parse_scheme(hpo.get("scheme")) if hpo.get("enabled") else None
    if scheme is None or setting(state, "refit") == "train":
        scheme = EvaluationScheme("holdout")
    splits = state["splits"]
    X_tr, y_tr, X_va, y_va = tuning_frames(load_frame_ref(splits["train_X"]), load_frame_ref(splits["train_y"]),
                                           load_frame_ref(splits["val_X"]), load_frame_ref(splits["val_y"]), scheme)
    return ModelObjective(
        family or model_family(state), state["problem_type"], X_tr, y_tr, X_va, y_va,
        metric=setting(state, "metric"), seed=setting(state, "seed"),
        early_stopping_rounds=ctx.early_stopping_rounds, **scheme.objective_options(),
    )


def with_members(state: Mapping[str, Any], ctx: ModelTrainerContext, objective: ModelObjective, best: FitResult,
                 fit: Callable[[ModelObjective, Mapping[str, Any]], FitResult]) -> FitResult:
    """``best`` (the best trial's final fit) averaged with the final fits of the other members of the
    study's ensemble (``hpo.ensemble``; ``fit(objective, member)``, each through its family's objective),
    weighted as the ensemble says; ``best`` alone without one."""
    members = (state.get("hpo") or {}).get("ensemble") or []
    if len(members) < 2:
        return best
    objectives = {model_family(state): objective}
    fits = [best]
    for m in members[1:]:
        family = m.get("algorithm") or model_family(state)
        if family not in objectives:
            objectives[family] = final_objective(state, ctx, family)
        fits.append(fit(objectives[family], m))
    return average_fits(fits, [float(m.get("weight", 1.0)) for m in members])


def artifact_metadata(state: Mapping[str, Any], kind: str, params: Mapping[str, Any], fit: FitResult) -> dict[str, Any]:
    """The ``metadata.json`` content of a model the run saves (``kind``: tuned, defaults, deployed)."""
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
        "n_rounds": fit.n_rounds,
        "fitted_on": fit.refit,
        "fit_rows": fit.fit_rows,
        "fit_seconds": round(fit.fit_seconds, 4),
        "feature_names": list(model.feature_names or []),
        "classes": model.classes,
        "dataset_fingerprint": state.get("dataset_fingerprint"),
        # columns that alone predicted the target when it was trained (likely leaks: load_data)
        "leak_suspects": dict(state.get("leak_suspects") or {}),
        "split_sizes": state.get("split_sizes"),
        "seed": setting(state, "seed"),
        "study_name": hpo.get("study_name"),
        "hpo": {k: hpo.get(k) for k in ("enabled", "best_value", "defaults_value", "n_trials", "n_completed",
                                         "n_pruned", "n_failed", "scheme", "chosen_family", "family_best",
                                         "objectives", "pick", "ensemble")
                if k in hpo},
    }


def _record_fit_ratio(ctx: ModelTrainerContext, hpo: Mapping[str, Any], fit: FitResult, problem_type: str) -> None:
    """Measure how long the final fit took against the time budget's estimate from the best trial,
    so that later runs reserve what this machine needs (:func:`~..budget.record_fit_ratio`)."""
    per_fit, rows = hpo.get("best_fit_seconds"), hpo.get("best_fit_rows")
    if not hpo.get("enabled") or not per_fit or not rows or fit.fit_seconds <= 0:
        return
    estimate = final_fit_estimate({"fit_seconds": per_fit, "fit_rows": rows, "best_iteration": hpo.get("best_iteration")},
                                  fit.fit_rows, rows, patience=ctx.early_stopping_rounds, problem_type=problem_type)
    if estimate > 0.05:  # tiny fits measure mostly noise
        record_fit_ratio(ctx.hpo_home, fit.fit_seconds / estimate)


def _train(state: Mapping[str, Any], ctx: ModelTrainerContext) -> TrainingUpdate:
    objective = final_objective(state, ctx)
    merged = dict(state["merged_params"])
    defaults = dict(state.get("default_params") or objective.default_params)
    run_dir = run_directory(ctx, state["run_id"])
    refit = setting(state, "refit")
    hpo = state.get("hpo") or {}
    tuned_rounds = (hpo.get("best_iteration"), hpo.get("best_fit_rows")) if hpo.get("enabled") else (None, None)
    tuned = objective.fit_final(merged, refit=refit, n_rounds=tuned_rounds[0], rounds_rows=tuned_rounds[1])
    _record_fit_ratio(ctx, hpo, tuned, objective.problem_type)
    members = hpo.get("ensemble") or []
    tuned = with_members(state, ctx, objective, tuned, lambda o, m: o.fit_final(
        m["params"], refit=refit, n_rounds=m.get("best_iteration"), rounds_rows=m.get("fit_rows")))
    evaluated_dir = run_dir / ("evaluated_model" if refit == "all" else "model")
    saved = save_model_artifact(tuned.model, evaluated_dir, artifact_metadata(state, "tuned", merged, tuned),
                                preparer=state.get("preparer_path"))
    training: dict[str, Any] = {"refit": refit, "best_iteration": tuned.best_iteration, "n_rounds": tuned.n_rounds,
                                "fit_seconds": round(tuned.fit_seconds, 4), "fit_rows": tuned.fit_rows,
                                "fitted_on": tuned.refit}
    if objective.params_for(defaults) == objective.params_for(merged) and len(members) < 2:
        defaults_saved, baseline = saved, tuned
    else:
        defaults_rounds = (hpo.get("defaults_best_iteration"), hpo.get("defaults_fit_rows"))
        baseline = objective.fit_final(defaults, refit=refit, n_rounds=defaults_rounds[0], rounds_rows=defaults_rounds[1])
        defaults_saved = save_model_artifact(baseline.model, run_dir / "defaults_model",
                                             artifact_metadata(state, "defaults", defaults, baseline),
                                             preparer=state.get("preparer_path"))
    training.update(defaults_best_iteration=baseline.best_iteration, defaults_n_rounds=baseline.n_rounds,
                    defaults_fit_seconds=round(baseline.fit_seconds, 4))
    return {"model_path": str(saved.path), "evaluated_model_path": str(saved.path),
            "defaults_model_path": str(defaults_saved.path), "training": training,
            "artifact_digests": {**saved.state_entry(), **defaults_saved.state_entry()}}
