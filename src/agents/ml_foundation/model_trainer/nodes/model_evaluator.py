"""``model_evaluator``: test metrics, computed once, here only.

This is the only node that scores on the test references (``final_refit`` later fits the deployed
model on them, after this node has scored a model that never saw them). It scores the evaluated
tuned model (``evaluated_model_path``: fitted on train+validation) on test, and the defaults model on test, with the run's metric first and a few standard ones. Validation
metrics: when the final model was fitted on the training split only (``refit="train"``) it is
scored on validation too; when it was fitted on train+val (the default), scoring it on rows it
has seen would flatter it, so ``validation_metrics`` holds the study's best validation score
(a fit on train, scored on validation) of the run's metric only. The standard metrics:

* binary: roc_auc, accuracy, f1, log_loss
* multiclass: accuracy, f1_macro, log_loss
* regression: rmse, mae, r2
* anomaly detection: roc_auc, average_precision, f1

Scores are computed like a trial's (labels encoded to 0..K-1 with the training classes, probability
metrics with every training class as a column). A metric that cannot be computed on a split (e.g.
roc_auc when the test split holds a single class) is ``None`` and its reason goes to
``metric_errors``. The metrics are written into each artifact's ``metadata.json`` too.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

from langgraph.runtime import Runtime

from src.mlops.analysis import gap_recommendations
from src.mlops.compare import record_test_scores
from src.mlops.metrics import get_metric, score_predictions
from src.mlops.problems import ANOMALY, BINARY, MULTICLASS, REGRESSION
from src.mlops.splits import load_frame_ref

from ..artifacts import load_run_artifact, update_artifact_metadata
from ..context import ModelTrainerContext, get_context
from ..settings import setting
from ..state import EvaluatorUpdate, ModelTrainerState, run_blocking

__all__ = ["model_evaluator", "STANDARD_METRICS", "score_model", "NODE"]

NODE = "model_evaluator"

log = logging.getLogger(__name__)

STANDARD_METRICS: dict[str, tuple[str, ...]] = {
    BINARY: ("roc_auc", "accuracy", "f1", "log_loss"),
    MULTICLASS: ("accuracy", "f1_macro", "log_loss"),
    REGRESSION: ("rmse", "mae", "r2"),
    ANOMALY: ("roc_auc", "average_precision", "f1"),
}


async def model_evaluator(state: ModelTrainerState, runtime: Runtime[ModelTrainerContext]) -> EvaluatorUpdate:
    """Score the tuned and defaults models (and the random search's best, with ``compare``); the one
    place the test split is read."""
    update = await run_blocking(NODE, _evaluate, state)
    comparison = (state.get("hpo") or {}).get("comparison")
    if "error" not in update and comparison and comparison.get("random_best_params") is not None:
        current = {**state, "hpo": update.get("hpo") or state.get("hpo")}  # with the analysis' gap, if any
        hpo = await run_blocking(NODE, _compare_on_test, current, get_context(runtime), update)
        if "error" in hpo:
            return hpo  # type: ignore[return-value]
        update["hpo"] = hpo
    return update  # type: ignore[no-any-return]


def _compare_on_test(state: Mapping[str, Any], ctx: ModelTrainerContext, update: Mapping[str, Any]) -> dict[str, Any]:
    """The study's summary with the comparison's test scores: the random search's best params are
    fitted exactly like the tuned model (same rows, round count from its trial), scored on test."""
    from .training_executor import final_objective

    hpo = dict(state["hpo"])
    comparison = dict(hpo["comparison"])
    objective = final_objective(state, ctx)
    params = {**dict(state.get("default_params") or objective.default_params), **comparison["random_best_params"]}
    attrs = comparison.get("random_best_user_attrs") or {}
    fit = objective.fit_final(params, refit=setting(state, "refit"), n_rounds=attrs.get("best_iteration"),
                              rounds_rows=attrs.get("fit_rows"))
    primary = setting(state, "metric")
    X_test, y_test = load_frame_ref(state["splits"]["test_X"]), load_frame_ref(state["splits"]["test_y"])
    scores, errors = score_model(fit.model, X_test, y_test, [primary], state["problem_type"])
    comparison.update(test_defaults=(update.get("defaults_test_metrics") or {}).get(primary),
                      test_random=scores.get(primary), test_tuned=(update.get("test_metrics") or {}).get(primary))
    if errors:
        comparison["test_random_error"] = next(iter(errors.values()))
    hpo["comparison"] = comparison
    try:  # the study keeps its comparison for `hpo report`; the run's result does not depend on it
        record_test_scores(ctx.optuna_storage, hpo["study_name"], comparison)
    except Exception as e:  # noqa: BLE001 - the report then shows the validation scores only
        log.warning("study %s: the comparison's test scores were not kept in the study (%s: %s)",
                    hpo.get("study_name"), type(e).__name__, e)
    return hpo


def score_model(model: Any, X: Any, y: Any, metric_names: Sequence[str], problem_type: str,
                ) -> tuple[dict[str, float | None], dict[str, str]]:
    """``({metric: score or None}, {metric: why it is None})`` of a fitted TunedModel on ``(X, y)``."""
    y_encoded = model.encode_labels(y)
    labels = list(range(len(model.classes))) if model.classes is not None else None
    predictions: dict[str, Any] = {}
    scores: dict[str, float | None] = {}
    errors: dict[str, str] = {}
    for name in metric_names:
        spec = get_metric(name, problem_type)
        if spec.needs == "proba" and not model.has_proba:
            scores[spec.name] = None
            errors[spec.name] = f"{model.algorithm!r} gives no class probabilities"
            continue
        try:
            if spec.needs not in predictions:
                predictions[spec.needs] = model.predict_for_metric(X, spec)
            score = score_predictions(spec, y_encoded, predictions[spec.needs], labels=labels)
        except ValueError as e:  # undefined on this data (one class present, ...)
            scores[spec.name], errors[spec.name] = None, str(e)
            continue
        if math.isfinite(score):
            scores[spec.name] = float(score)
        else:
            scores[spec.name], errors[spec.name] = None, f"not a finite number ({score}) on {len(y_encoded)} rows"
    return scores, errors


def _evaluate(state: Mapping[str, Any]) -> EvaluatorUpdate:
    problem_type = state["problem_type"]
    primary = setting(state, "metric")
    names = list(dict.fromkeys([primary, *STANDARD_METRICS.get(problem_type, ())]))
    splits = state["splits"]
    model_path = state.get("evaluated_model_path") or state["model_path"]
    defaults_path = state["defaults_model_path"]
    # the splits hold prepared features: score the bare TunedModels (``.model``), not the raw-row wrappers
    tuned = load_run_artifact(state, model_path)[0].model
    baseline = tuned if defaults_path == model_path else load_run_artifact(state, defaults_path)[0].model

    X_test, y_test = load_frame_ref(splits["test_X"]), load_frame_ref(splits["test_y"])
    if (state.get("training") or {}).get("refit", "train") == "train":
        X_val, y_val = load_frame_ref(splits["val_X"]), load_frame_ref(splits["val_y"])
        val_metrics, val_errors = score_model(tuned, X_val, y_val, names, problem_type)
    else:  # the final model has seen the validation rows: only the study's score is honest
        hpo = state.get("hpo") or {}
        val_metrics = {primary: hpo.get("best_value")} if hpo.get("enabled") else {}
        val_errors = {}
    test_metrics, test_errors = score_model(tuned, X_test, y_test, names, problem_type)
    if baseline is tuned:
        defaults_metrics, defaults_errors = dict(test_metrics), dict(test_errors)
    else:
        defaults_metrics, defaults_errors = score_model(baseline, X_test, y_test, names, problem_type)
    errors = {f"validation.{k}": v for k, v in val_errors.items()}
    errors.update({f"test.{k}": v for k, v in test_errors.items()})
    errors.update({f"defaults_test.{k}": v for k, v in defaults_errors.items()})

    update_artifact_metadata(model_path, {
        "validation_metrics": val_metrics, "test_metrics": test_metrics,
        "defaults_test_metrics": defaults_metrics,
    })
    if defaults_path != model_path:
        update_artifact_metadata(defaults_path, {"test_metrics": defaults_metrics})
    update: EvaluatorUpdate = {
        "validation_metrics": val_metrics,
        "test_metrics": test_metrics,
        "defaults_test_metrics": defaults_metrics,
        "metric_errors": errors,
    }
    hpo = state.get("hpo") or {}
    analysis = hpo.get("analysis")
    if hpo.get("enabled") and isinstance(analysis, dict) and "error" not in analysis:
        gaps = gap_recommendations(get_metric(primary, problem_type).direction, metric=primary,
                                   validation=hpo.get("best_value"), test=test_metrics.get(primary),
                                   scheme=hpo.get("scheme"), test_rows=len(y_test),
                                   defaults_selected=hpo.get("best_trial_number") == 0)
        if gaps:
            kept = [r for r in analysis.get("recommendations") or [] if r.get("kind") != "validation_test_gap"]
            update["hpo"] = {**hpo, "analysis": {**analysis, "recommendations": gaps + kept}}  # type: ignore[typeddict-item]
    return update
