"""What the tracker writes: trial snapshots, nested trial runs, study summaries, and MLflow-safe
names and values (redacted, length-limited).

Batching is MLflow's own: ``MlflowClient.log_batch`` splits params, tags and metrics into requests
within the server's limits (100 params/tags, 1000 entities per request), so we call it once. What
MLflow does not do, and we keep: it *refuses* over-long values and odd key characters instead of
shortening them, and it logs secrets as given; :func:`clean_key` / :func:`clean_value` make a value
loggable and redacted first.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..jsonutil import to_jsonable
from ..redaction import is_secret_key, redact_secrets
from ..types import FAIL_REASON_ATTR

__all__ = [
    "STUDY_TAG", "ROLE_TAG", "TRIAL_NUMBER_TAG", "PARENT_TAG", "TrialRecord", "snapshot_trial", "write_trial",
    "log_batch", "clean_key", "clean_value", "summarize", "MAX_TAG_VALUE",
]

STUDY_TAG = "hpo.study_name"
ROLE_TAG = "hpo.role"
TRIAL_NUMBER_TAG = "hpo.trial_number"
PARENT_TAG = "mlflow.parentRunId"

MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 8000
_MAX_KEY = 250
_MAX_INTERMEDIATE_POINTS = 500
_STATUS_BY_STATE = {"COMPLETE": "FINISHED", "PRUNED": "FINISHED", "FAIL": "FAILED"}


def clean_value(key: str, value: Any, limit: int, *, by_key: bool = True) -> str:
    """Redacted, length-limited text; with ``by_key`` a secret-looking key hides the whole value."""
    text = "***" if by_key and is_secret_key(key) else redact_secrets(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def clean_key(key: Any) -> str:
    """A name MLflow accepts for params, metrics and tags (alphanumerics, ``_ - . space``)."""
    text = re.sub(r"[^\w.\- ]", "_", str(key)).strip() or "_"
    if text.startswith("."):
        text = "_" + text
    return text[:_MAX_KEY]


@dataclass(frozen=True)
class TrialRecord:
    """A cheap, immutable snapshot of a finished trial, taken on the event loop."""

    number: int
    state: str
    params: dict[str, Any]
    values: tuple[float, ...] | None
    intermediate: tuple[tuple[int, float], ...]
    start_ms: int | None
    end_ms: int | None
    duration_s: float | None
    fail_reason: str | None
    user_attrs: dict[str, Any] = field(default_factory=dict)


def _ms(dt: Any) -> int | None:
    return int(dt.timestamp() * 1000) if dt is not None else None


def snapshot_trial(trial: Any) -> TrialRecord:
    """The :class:`TrialRecord` of an ``optuna.trial.FrozenTrial`` (intermediate values subsampled to 500)."""
    values = tuple(float(v) for v in trial.values) if trial.values is not None else None
    inter = sorted(trial.intermediate_values.items())
    if len(inter) > _MAX_INTERMEDIATE_POINTS:  # keep an even subsample, always the last point
        step = len(inter) / _MAX_INTERMEDIATE_POINTS
        inter = [inter[int(i * step)] for i in range(_MAX_INTERMEDIATE_POINTS - 1)] + [inter[-1]]
    duration = trial.duration.total_seconds() if trial.duration is not None else None
    reason = trial.user_attrs.get(FAIL_REASON_ATTR)
    return TrialRecord(
        number=int(trial.number),
        state=trial.state.name,
        params=dict(trial.params),
        values=values,
        intermediate=tuple((int(s), float(v)) for s, v in inter),
        start_ms=_ms(trial.datetime_start),
        end_ms=_ms(trial.datetime_complete),
        duration_s=duration,
        fail_reason=None if reason is None else str(reason),
        user_attrs={k: v for k, v in trial.user_attrs.items() if k != FAIL_REASON_ATTR},
    )


def log_batch(
    client: Any,
    run_id: str,
    *,
    params: Mapping[str, Any] | None = None,
    metrics: Sequence[tuple[str, float, int, int]] = (),
    tags: Mapping[str, Any] | None = None,
) -> None:
    """One ``log_batch`` (MLflow chunks it) of cleaned, redacted params, tags and metrics."""
    from mlflow.entities import Metric, Param, RunTag

    p = [Param(clean_key(k), clean_value(str(k), v, MAX_PARAM_VALUE, by_key=False)) for k, v in (params or {}).items()]
    t = [RunTag(str(k)[:_MAX_KEY], clean_value(str(k), v, MAX_TAG_VALUE)) for k, v in (tags or {}).items()]
    m = [Metric(clean_key(k), float(v), int(ts), int(step)) for k, v, ts, step in metrics]
    if p or t or m:
        client.log_batch(run_id, metrics=m, params=p, tags=t, synchronous=True)


def write_trial(client: Any, record: TrialRecord, *, exp_id: str, parent_run_id: str, study_name: str,
                metric_names: tuple[str, ...], log_intermediate: bool) -> None:
    """One nested run for one trial: ``create_run`` + ``log_batch`` + ``set_terminated``."""
    status = _STATUS_BY_STATE.get(record.state, "KILLED")
    tags = {
        PARENT_TAG: parent_run_id,
        STUDY_TAG: study_name,
        ROLE_TAG: "trial",
        TRIAL_NUMBER_TAG: str(record.number),
        "hpo.state": record.state,
    }
    if record.fail_reason:
        tags["hpo.fail_reason"] = record.fail_reason
    metrics: list[tuple[str, float, int, int]] = []
    now = record.end_ms or int(time.time() * 1000)
    if record.values is not None:
        if len(metric_names) == len(record.values):
            names = metric_names
        else:
            names = tuple(f"value_{i}" for i in range(len(record.values))) if len(record.values) > 1 else ("value",)
        metrics += [(name, v, now, 0) for name, v in zip(names, record.values)]
    if record.duration_s is not None:
        metrics.append(("duration_s", record.duration_s, now, 0))
    if log_intermediate:
        inter_name = f"intermediate_{metric_names[0]}" if len(metric_names) == 1 else "intermediate_value"
        metrics += [(inter_name, v, now, step) for step, v in record.intermediate]
    attrs_tags: dict[str, str] = {}
    for k, v in record.user_attrs.items():
        if isinstance(v, bool) or v is None:
            attrs_tags[f"hpo.attr.{clean_key(k)}"] = str(v)
        elif isinstance(v, (int, float)) and math.isfinite(float(v)):
            metrics.append((f"attr.{k}", float(v), now, 0))
        elif isinstance(v, str) and len(v) <= 500:
            attrs_tags[f"hpo.attr.{clean_key(k)}"] = v
    tags = {k: clean_value(k, v, MAX_TAG_VALUE) for k, v in tags.items()}
    run = client.create_run(exp_id, start_time=record.start_ms, tags=tags, run_name=f"trial-{record.number:04d}")
    run_id = run.info.run_id
    log_batch(client, run_id, params=record.params, metrics=metrics, tags=attrs_tags)
    client.set_terminated(run_id, status=status, end_time=record.end_ms)


def summarize(result: Any, metric_names: tuple[str, ...]) -> dict[str, Any]:
    """Plain data for the parent run, taken from an OptimizationResult on the event loop."""
    get = lambda name, default=None: getattr(result, name, default)  # noqa: E731
    metrics: dict[str, Any] = {
        "n_trials": get("n_trials"),
        "n_completed": get("n_completed"),
        "n_pruned": get("n_pruned"),
        "n_failed": get("n_failed"),
        "duration_s": get("duration_s"),
    }
    best_values = get("best_values")
    if best_values and len(best_values) > 1:
        names = metric_names if len(metric_names) == len(best_values) else tuple(f"value_{i}" for i in range(len(best_values)))
        for name, value in zip(names, best_values):
            metrics[f"best_{name}"] = value
    else:
        metrics[f"best_{metric_names[0] if metric_names else 'value'}"] = get("best_value")
    metrics["defaults_value"] = get("defaults_value")
    try:
        metrics["improvement_over_defaults"] = get("improvement_over_defaults")
    except Exception:  # pragma: no cover
        pass
    best_params = dict(get("best_params") or {})
    tags = {
        "hpo.best_params": json.dumps(to_jsonable(best_params), sort_keys=True),
        "hpo.stop_reason": str(get("stop_reason", "")),
        "hpo.best_trial_number": str(get("best_trial_number", "")),
    }
    if get("pareto_front"):
        tags["hpo.pareto_front_size"] = str(len(get("pareto_front")))
    pick = get("pick")
    if pick:  # multi-objective: the rule, its tolerance and the picked trial (best_<objective> are its values)
        tags.update({"hpo.pick_rule": str(pick["rule"]), "hpo.pick_tolerance": str(pick["tolerance"]),
                     "hpo.pick_trial_number": str(pick["number"]), "hpo.objectives": ",".join(pick["values"])})
    analysis = get("analysis") or None
    if analysis and "error" not in analysis:
        tags["hpo.convergence"] = str((analysis.get("convergence") or {}).get("status", ""))
        tags["hpo.recommendations"] = ",".join(r.get("kind", "") for r in analysis.get("recommendations") or [])
    if get("families"):  # a family search: the chosen family and each family's best score
        tags["hpo.chosen_family"] = str(get("algorithm"))
        for family, best in (get("family_best") or {}).items():
            metrics[f"family_best.{family}"] = best
    phases = get("phases") or []
    if phases:  # adaptive narrowing: each phase's best, and its ranges in phases.json
        tags["hpo.phases"] = str(len(phases))
        for p in phases:
            metrics[f"phase_{p['phase']}.best_value"] = p.get("best_value")
            metrics[f"phase_{p['phase']}.n_trials"] = p.get("n_trials")
    front = get("pareto_front")
    return {"metrics": metrics, "best_params": best_params, "tags": tags, "n_trials": get("n_trials"),
            "analysis": to_jsonable(analysis) if analysis else None,
            "phases": to_jsonable(phases, non_finite="null") if phases else None,
            "pareto": to_jsonable({"front": front, "pick": pick}) if front else None}
