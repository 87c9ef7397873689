"""``hyperparameter_tuner``: validation-only HPO of the chosen model family (SPEC F21).

* Loads the train and validation references only — the test split is never read here, so it
  cannot reach an objective — and refuses train/validation splits that share rows.
* Scores trials by the evaluation scheme of ``state["scheme"]`` (default ``auto``: the rule of
  :mod:`src.mlops.schemes` picks holdout, k-fold or repeated k-fold CV over train+validation from
  the data; time-ordered data gets time-ordered folds). When the rule picks CV and the study is
  bounded by time, a probe fit checks that enough CV trials fit (else the holdout; ``scheme_probe``
  in the summary). The summary records the scheme and why.
* With ``state["time_budget"]`` the study gets what the whole-run budget leaves after the final
  fits, evaluation and registration (:mod:`..budget`).
* ``tuning_enabled=False``: no study; the family's defaults become ``merged_params`` (with
  ``algorithm="auto"`` or a list: the first family's).
* ``algorithm="auto"`` or a list of families searches the family too
  (:mod:`src.mlops.family_search`); the summary's ``algorithm`` / ``chosen_family`` name the family the
  final fits use, ``family_best`` the best score each family reached, ``families`` its record.
* Otherwise :func:`~src.mlops.optuna_optimizer.run_hyperparameter_optimization` runs a study named
  ``state["study_name"]`` or ``trainer-<run_id>`` in ``ModelTrainerContext.optuna_storage``. The
  name is stable across a resume (``run_id`` is checkpointed), and a named study in a persistent
  storage resumes, so a re-executed node continues the same study instead of starting over.
* Per-trial progress goes to the custom stream (``graph.astream(..., stream_mode="custom")``)::

      {"event": "study_start", "study_name", "n_trials", "n_done", "best_value"}
      {"event": "trial", "number", "state", "value", "best_value", "n_done", "n_trials", "fail_reason"}
      {"event": "study_end", "study_name", "best_value", "n_completed", "n_pruned", "n_failed", "stop_reason"}

* A fresh study is seeded with the best trials of earlier studies of the same data from
  ``ModelTrainerContext.history`` (``warm_start``, ``warm_start_trials``); identical configurations
  are served from the trial cache (``trial_cache``; in the history database, else in memory);
  ``compare="random"`` runs a random-search baseline after the study (``hpo["comparison"]``).
* Bad input (data, search space, options; a study without a completed trial) ends the run with
  ``error`` in state; every option is checked before the study is created. An unreachable or timing
  out database is raised instead (the node is retried, and the run can be resumed later).
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Callable, Mapping
from typing import Any

import optuna
import pandas as pd
from langgraph.runtime import Runtime

from src.mlops.errors import DataValidationError
from src.mlops.ensemble import averages_well, ensemble_members
from src.mlops.family_search import family_names, is_family_search, probe_extra_trials, select_family, split_family_params
from src.mlops.metrics import default_metric, get_metric
from src.mlops.models import ModelSpec, get_model_spec
from src.mlops.optimizer import uses_budget
from src.mlops.optuna_optimizer import run_hyperparameter_optimization
from src.mlops.problems import CLASSIFICATION
from src.mlops.objectives import ModelObjective
from src.mlops.schemes import EvaluationScheme, afford_scheme, parse_scheme, resolve_scheme, tuning_frames
from src.mlops.splits import load_frame_ref
from src.mlops.types import (
    FAIL_REASON_ATTR,
    OptimizationResult,
    StudyContext,
    TrialListener,
)

from ..budget import (
    POST_STUDY_KEY,
    WRAPUP_KEY,
    WRAPUP_RESERVE_S,
    PostStudyReserve,
    measured_fit_ratio,
    measured_seconds,
    per_fit_seconds,
    record_seconds,
    table_rows,
    run_deadline,
    study_timeout,
    swap_slack,
    unmeasured_after_study,
)
from ..context import ModelTrainerContext, get_context, run_directory
from ..settings import setting, validate_settings
from ..state import (
    HPOSummary,
    ModelTrainerState,
    TunerUpdate,
    error_update,
    is_bad_input,
    jsonable,
)

__all__ = ["hyperparameter_tuner", "StreamProgressListener", "study_name_for", "scheme_for", "NODE", "TUNING_SPLITS"]

NODE = "hyperparameter_tuner"
#: The only split references this node reads.
TUNING_SPLITS = ("train_X", "train_y", "val_X", "val_y")
#: the scheme a run's study uses when a probe decided it, in the run's directory (kept for a resume)
SCHEME_FILE = "scheme.json"


def study_name_for(state: Mapping[str, Any]) -> str:
    """``state["study_name"]`` or ``trainer-<run_id>``."""
    return setting(state, "study_name") or f"trainer-{state['run_id']}"


def _finished_in_budget(trial: optuna.trial.FrozenTrial) -> bool:
    return trial.state.is_finished() and uses_budget(trial)


class StreamProgressListener:
    """A :class:`~src.mlops.types.TrialListener` writing progress events to LangGraph's custom stream.

    ``n_done`` counts the finished trials that use the budget (``n_trials`` is the study's total),
    including those of an earlier run of a resumed study; a trial failed as "cancelled" or "stale"
    (retried, free) does not count.
    """

    def __init__(self, writer: Callable[[Any], None], n_trials: int | None) -> None:
        self.writer = writer
        self.n_trials = n_trials
        self.n_done = 0
        self.best_value: float | None = None
        self._maximize = True

    def _better(self, value: float) -> bool:
        return self.best_value is None or (value > self.best_value if self._maximize else value < self.best_value)

    def _emit(self, event: dict[str, Any]) -> None:
        try:
            self.writer(event)
        except Exception:  # noqa: BLE001 - progress reporting must never stop a study
            pass

    async def on_study_start(self, study: optuna.Study, context: StudyContext) -> None:
        self._maximize = context.direction == "maximize"
        trials = await asyncio.to_thread(study.get_trials, False)  # storage I/O off the loop
        for t in trials:
            if _finished_in_budget(t):
                self.n_done += 1
                if t.state == optuna.trial.TrialState.COMPLETE and len(study.directions) == 1 and self._better(t.value):
                    self.best_value = float(t.value)
        self._emit({"event": "study_start", "study_name": context.study_name, "n_trials": self.n_trials,
                    "n_done": self.n_done, "best_value": self.best_value})

    async def on_trial_finished(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        self.n_done += int(_finished_in_budget(trial))
        value = None
        if trial.state == optuna.trial.TrialState.COMPLETE and trial.values is not None and len(trial.values) == 1:
            value = float(trial.values[0])
            if math.isfinite(value) and self._better(value):
                self.best_value = value
        self._emit({
            "event": "trial", "number": trial.number, "state": trial.state.name, "value": value,
            "best_value": self.best_value, "n_done": self.n_done, "n_trials": self.n_trials,
            "fail_reason": trial.user_attrs.get(FAIL_REASON_ATTR),
        })

    async def on_study_end(self, study: optuna.Study, result: OptimizationResult) -> None:
        self._emit({"event": "study_end", "study_name": result.study_name, "best_value": result.best_value,
                    "n_completed": result.n_completed, "n_pruned": result.n_pruned, "n_failed": result.n_failed,
                    "stop_reason": result.stop_reason})


def _load_tuning_data(splits: Mapping[str, Any]) -> dict[str, pd.DataFrame | pd.Series]:
    data = {key: load_frame_ref(splits[key]) for key in TUNING_SPLITS}
    overlap = data["train_X"].index.intersection(data["val_X"].index)
    if len(overlap):
        raise DataValidationError(
            f"the training and validation splits overlap in {len(overlap)} rows (index labels such as "
            f"{[str(v) for v in overlap[:5]]}); validation data must be disjoint from training data, "
            "otherwise tuning scores are optimistic — re-run split_data instead of reusing references"
        )
    return data


def scheme_for(state: Mapping[str, Any], y_train: pd.Series, y_val: pd.Series, n_features: int) -> EvaluationScheme:
    """The evaluation scheme of this run's trials (:func:`~src.mlops.schemes.resolve_scheme` on the
    state's settings; the time budget the rule weighs is ``time_budget`` or ``timeout``)."""
    return resolve_scheme(
        scheme=setting(state, "scheme"), cv=setting(state, "cv"), y_train=y_train, y_val=y_val, n_features=n_features,
        classification=state["problem_type"] in CLASSIFICATION,
        time_ordered=setting(state, "time_column") is not None,
        time_budget=setting(state, "time_budget") or setting(state, "timeout"),
    )


def _automatic_scheme(state: Mapping[str, Any]) -> bool:
    """The rule chose the scheme (the user asked for none)."""
    return setting(state, "cv") is None and parse_scheme(setting(state, "scheme")) is None


def _afforded_scheme(state: Mapping[str, Any], ctx: ModelTrainerContext, scheme: EvaluationScheme,
                     data: Mapping[str, Any], family: str, metric: str, study_seconds: float | None,
                     extra_trials: int) -> tuple[EvaluationScheme, dict[str, Any] | None]:
    """The rule's CV scheme, or the holdout when a probe fit shows a CV trial would cost too much of
    the study's time (:func:`~src.mlops.schemes.afford_scheme`). The decision is kept in the run's
    directory, so a re-executed tuner (a resume) continues its study under the same scheme."""
    if not scheme.uses_cv or study_seconds is None:
        return scheme, None
    path = run_directory(ctx, state["run_id"]) / SCHEME_FILE
    try:
        kept = json.loads(path.read_text(encoding="utf-8"))
        return EvaluationScheme.from_dict(kept["scheme"]), kept.get("probe")
    except (OSError, ValueError, KeyError, TypeError):
        pass
    probe = ModelObjective(family, state["problem_type"], data["train_X"], data["train_y"], data["val_X"],
                           data["val_y"], metric=metric, seed=setting(state, "seed"),
                           early_stopping_rounds=ctx.early_stopping_rounds)
    chosen, probed = afford_scheme(scheme, probe=probe, study_seconds=study_seconds,
                                   rows_trainval=len(data["train_y"]) + len(data["val_y"]), extra_trials=extra_trials)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps({"scheme": chosen.to_dict(), "probe": probed}), encoding="utf-8")
    tmp.replace(path)
    return chosen, probed


def _families(result: OptimizationResult) -> dict[str, Any]:
    """The family-search keys of the summary (none for a one-family study)."""
    if not result.families:
        return {}
    keep = ("n_trials", "n_complete", "n_pruned", "n_failed", "n_dropped", "best_value", "best_trial",
            "defaults_value", "defaults_trial", "fit_seconds", "dropped")
    return {"chosen_family": result.algorithm, "family_best": result.family_best,
            "families": {f: {k: s.get(k) for k in keep} for f, s in result.family_stats.items()}}


def _summary(result: OptimizationResult, scheme: EvaluationScheme, study_seconds: float | None) -> HPOSummary:
    defaults = result.defaults_user_attrs or {}
    return jsonable({
        **_families(result),
        "enabled": True,
        "study_name": result.study_name,
        "algorithm": result.algorithm,
        "metric": result.metric,
        "direction": result.direction,
        "best_params": result.best_params,
        "best_value": result.best_value,
        "defaults_value": result.defaults_value,
        "improvement_over_defaults": result.improvement_over_defaults,
        "best_trial_number": result.best_trial_number,
        "best_iteration": result.best_user_attrs.get("best_iteration"),
        "best_fit_rows": result.best_user_attrs.get("fit_rows"),
        "best_fit_seconds": per_fit_seconds(result.best_user_attrs),
        "defaults_best_iteration": defaults.get("best_iteration"),
        "defaults_fit_rows": defaults.get("fit_rows"),
        "n_trials": result.n_trials,
        "n_completed": result.n_completed,
        "n_pruned": result.n_pruned,
        "n_failed": result.n_failed,
        "duration_s": result.duration_s,
        "stop_reason": result.stop_reason,
        "failure_reasons": result.to_dict()["failure_reasons"],
        "scheme": scheme.label,
        "scheme_reason": scheme.reason,
        "study_timeout": None if study_seconds is None else round(study_seconds, 2),
        "n_cached": result.n_cached,
        "warm_start": result.warm_start,
        **({"phases": result.phases} if result.phases else {}),
        **({"comparison": result.comparison} if result.comparison is not None else {}),
        **({"objectives": result.objectives, "pareto_front": result.pareto_front, "pick": result.pick}
           if result.pick else {}),
        "finished_at": time.time(),
        "analysis": result.analysis,
    })


async def hyperparameter_tuner(state: ModelTrainerState, runtime: Runtime[ModelTrainerContext]) -> TunerUpdate:
    """Tune on train/validation only; return the study summary and the merged params."""
    ctx = get_context(runtime)
    try:
        validate_settings(state)
        problem_type, algorithm = state["problem_type"], setting(state, "algorithm")
        objectives = setting(state, "objectives")
        first = (objectives.split(",") if isinstance(objectives, str) else objectives)[0].strip() if objectives else None
        metric = get_metric(setting(state, "metric") or first or default_metric(problem_type), problem_type)
        families = family_names(algorithm, problem_type, metric.name) if is_family_search(algorithm) else []
        spec = get_model_spec(families[0] if families else algorithm, problem_type)
        # which trials an averaged final model may join: the best one's family, boosters only
        family_of, averaged = _family_of(families), _averaged(families, spec, problem_type)
        data = await asyncio.to_thread(_load_tuning_data, state["splits"])
        seed = setting(state, "seed")
        if not setting(state, "tuning_enabled"):
            defaults = spec.default_params(problem_type, seed=seed)
            await _open_tracker_run(ctx, state, spec.name, metric.name, metric.direction)
            return {
                "hpo": HPOSummary(enabled=False, algorithm=spec.name, metric=metric.name, direction=metric.direction),
                "merged_params": jsonable(defaults),
                "default_params": jsonable(defaults),
                "mlflow_parent_run_id": await _parent_run_id(ctx),
            }
        n_trials = setting(state, "n_trials")
        deadline = run_deadline(state, ctx.started_at)
        rows = table_rows(state)
        # a family search keeps what any family took; the chosen family's excess is in the reserve
        fixed, upload = _after_study_seconds(ctx, rows, None if families else spec.name)
        # what the study leaves for the rest of the run, beyond the final fits (PostStudyReserve)
        held = fixed + upload + measured_seconds(ctx.hpo_home, WRAPUP_KEY, WRAPUP_RESERVE_S)
        scheme = scheme_for(state, data["train_y"], data["val_y"], data["train_X"].shape[1])
        probed = None
        if _automatic_scheme(state):  # a family search probes its first family, asking room for the others
            scheme, probed = await asyncio.to_thread(
                _afforded_scheme, state, ctx, scheme, data, spec.name, metric.name,
                study_timeout(deadline, setting(state, "timeout"), fixed_reserve=held),
                probe_extra_trials(len(families)))
        X_tr, y_tr, X_va, y_va = await asyncio.to_thread(
            tuning_frames, data["train_X"], data["train_y"], data["val_X"], data["val_y"], scheme)
        listeners: list[TrialListener] = [*ctx.listeners]
        if ctx.tracker is not None:
            listeners.append(ctx.tracker)
        listeners.append(StreamProgressListener(runtime.stream_writer, n_trials))
        reserve = None
        timeout = study_timeout(deadline, setting(state, "timeout"), fixed_reserve=held)
        compare = setting(state, "compare")
        if compare is not None and timeout is not None:
            timeout /= 2  # the baseline gets as many seconds as the study took: the two share the time
        if deadline is not None:
            sizes = state.get("split_sizes") or {}
            rows_trainval = len(data["train_y"]) + len(data["val_y"])
            reserve = PostStudyReserve(
                rows_trainval=rows_trainval,
                rows_all=rows_trainval + int(sizes.get("test", 0)) if setting(state, "refit") == "all" else None,
                default_fit_rows=len(y_tr) * (1.0 - 1.0 / scheme.folds) if scheme.folds else len(y_tr),
                fit_ratio=measured_fit_ratio(ctx.hpo_home), patience=ctx.early_stopping_rounds,
                study_end=deadline - held, slack=swap_slack(state.get("time_budget")), problem_type=problem_type,
                members=setting(state, "ensemble_size"), family_of=family_of, averaged=averaged, blend=bool(families),
                overheads={f: max(0.0, sum(_after_study_seconds(ctx, rows, f)) - fixed - upload) for f in families},
                # the extra members may take a tenth of the study's time at most (slow fits: the best alone)
                members_cap=None if timeout is None else ENSEMBLE_SHARE * timeout)
            listeners.append(reserve)
        result = await run_hyperparameter_optimization(
            algorithm=",".join(families) or spec.name,
            problem_type=problem_type,
            X_train=X_tr,
            y_train=y_tr,
            X_val=X_va,
            y_val=y_va,
            metric=metric.name,
            n_trials=n_trials,
            timeout=timeout,
            time_reserve=reserve,
            sampler=setting(state, "sampler"),
            pruner=setting(state, "pruner"),
            search_space=setting(state, "search_space"),
            **scheme.objective_options(),
            seed=seed,
            study_name=study_name_for(state),
            new_study=setting(state, "new_study"),
            storage=ctx.optuna_storage,
            n_jobs=setting(state, "n_jobs"),
            trial_timeout=setting(state, "trial_timeout"),
            pruner_options=setting(state, "pruner_options"),
            enqueue=setting(state, "enqueue") or (),
            max_failures=setting(state, "max_failures"),
            patience=setting(state, "patience"),
            min_improvement=float(setting(state, "min_improvement")),
            early_stopping_rounds=ctx.early_stopping_rounds,
            listeners=listeners,
            experiment_name=ctx.experiment_name,
            # the split files, so `hpo worker` processes can join this study (a path every worker reads)
            data_source={"kind": "frames", "refs": {k: state["splits"][k] for k in TUNING_SPLITS},
                         "scheme": scheme.to_dict()},
            history=ctx.history,
            warm_start=setting(state, "warm_start"),
            warm_start_trials=setting(state, "warm_start_trials"),
            trial_cache=setting(state, "trial_cache"),
            compare=compare,
            phases=setting(state, "phases"),
            pipeline=setting(state, "pipeline_search"),
            objectives=objectives,
            pick_rule=setting(state, "pick_rule"),
            pick_tolerance=setting(state, "pick_tolerance"),
            # a family search's final model may blend its best trials across families (see _ensemble);
            # one family keeps the average of its best configurations (a blend of them is not measured)
            blend_members=setting(state, "ensemble_size") if families else None,
        )
    except Exception as e:
        if is_bad_input(e):
            return error_update(NODE, e)  # type: ignore[return-value]
        raise
    if deadline is not None and result.ended_at:  # the next run's study keeps this much for its wrap-up
        await asyncio.to_thread(record_seconds, ctx.hpo_home, WRAPUP_KEY, max(0.0, time.time() - result.ended_at))
    selected = None
    choice = result.robust_choice
    if setting(state, "selection") == "robust" and choice is not None:
        selected = {"rule": "robust", "best_trial": result.best_trial_number, "used_trial": choice.number,
                    "gain": choice.gain, "gain_se": choice.gain_se, "reason": choice.reason}
        if choice.number != result.best_trial_number:
            _use_trial(result, choice.number, choice.params, {**choice.user_attrs, "_value": choice.value})
    swapped = None
    if reserve is not None and deadline is not None and (selected is None or selected["used_trial"] ==
                                                         selected["best_trial"]):
        left = deadline - time.time() - (fixed + upload)
        choice = reserve.affordable(left)
        if choice is not None:
            swapped = {"best_trial": result.best_trial_number, "used_trial": choice[0],
                       "reason": f"the best trial's final fits need about {reserve.best_seconds():.1f} s; "
                                 f"{max(0.0, left):.1f} s "
                                 "of the time budget remain"}
            _use_trial(result, *choice)
    summary = _summary(result, scheme, timeout)
    if swapped is None and (selected is None or selected["used_trial"] == selected["best_trial"]):
        left = None if deadline is None else deadline - time.time() - (fixed + upload)
        members, blend = _ensemble(result, setting(state, "ensemble_size"), families, reserve, left, family_of,
                                   averaged)
        if members:
            summary["ensemble"] = jsonable(members)
        if blend is not None:  # deployed, or not: its members' fits did not fit in the time left
            summary["blend"] = jsonable(blend)
    if probed is not None:
        summary["scheme_probe"] = jsonable(probed)
    if swapped is not None:
        summary["trial_for_time"] = jsonable(swapped)
    if selected is not None:
        summary["selection"] = jsonable(selected)
    return {
        "hpo": summary,
        "merged_params": jsonable(result.merged_params),
        "default_params": jsonable(result.default_params),
        "mlflow_parent_run_id": await _parent_run_id(ctx),  # reopened on resume
    }


def _after_study_seconds(ctx: ModelTrainerContext, rows: int | None, family: str | None) -> tuple[float, float]:
    """(saving, checking and evaluating; the MLflow upload): seconds earlier runs took after the
    study beyond the fits (``family``'s runs first: a forest's models are larger than a booster's)."""
    fixed, upload = unmeasured_after_study(rows)  # until measured in this home
    measured_upload = measured_seconds(ctx.hpo_home, "mlflow_model_upload", upload, rows=rows,
                                       family=family) if ctx.tracker else 0.0
    return measured_seconds(ctx.hpo_home, POST_STUDY_KEY, fixed, rows=rows, family=family), measured_upload


#: the share of the study's time the extra members of an averaged final model may reserve for their fits.
ENSEMBLE_SHARE = 0.1


def _family_of(families: list[str]) -> Callable[[Mapping[str, Any]], str] | None:
    return (lambda params: split_family_params(params)[0]) if families else None


def _averaged(families: list[str], spec: ModelSpec, problem_type: str) -> Callable[[Mapping[str, Any]], bool]:
    """Whether the final model may average the best configurations of the family of these params."""
    if not families:
        return lambda params: averages_well(spec)
    return lambda params: averages_well(get_model_spec(split_family_params(params)[0], problem_type))


def _ensemble(result: OptimizationResult, size: int, families: list[str], reserve: PostStudyReserve | None,
              left: float | None, family_of: Callable[[Mapping[str, Any]], str] | None,
              averaged: Callable[[Mapping[str, Any]], bool]) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """The trials the final model averages (``ensemble_size`` > 1), best first, with the params the
    final fits use, their family and weight (``[]`` for the best alone), and the study's blend, if any
    (``{"value", "single_value", "deployed"}``, with the seconds its fits needed and had under a time
    budget). The blend (:mod:`src.mlops.blend`) is deployed when its fits fit in the time left, else
    the best configurations of the best trial's family are averaged, equally weighted
    (:func:`ensemble_members`). Under a time budget, only those whose final fits the reserve kept
    time for and that still fit in the ``left`` seconds."""
    if size < 2 or result.objectives or not result.top_trials:
        return [], None
    members, blend = _blend_members(result, reserve, left)
    if members is None:
        members = ensemble_members(result.top_trials, size, direction=result.direction,
                                   defaults_value=result.defaults_value, same_family=family_of, averaged=averaged)
        if not members or members[0]["number"] != result.best_trial_number:
            return [], blend
        if reserve is not None and left is not None:
            allowed = set(reserve.ensemble(left))
            members = [members[0], *(m for m in members[1:] if m["number"] in allowed)]
        members = [{**m, "weight": 1.0 / len(members)} for m in members]
    if len(members) < 2:
        return [], blend
    out = []
    for m in members:
        family, params = split_family_params(m["params"]) if families else (result.algorithm, m["params"])
        defaults = (result.family_stats.get(family) or {}).get("default_params", {}) if families else {}
        out.append({"number": m["number"], "value": m["value"], "algorithm": family, "weight": round(m["weight"], 6),
                    "params": {**result.default_params, **params} if family == result.algorithm else {**defaults, **params},
                    "best_iteration": m["user_attrs"].get("best_iteration"), "fit_rows": m["user_attrs"].get("fit_rows")})
    return out, blend


def _blend_members(result: OptimizationResult, reserve: PostStudyReserve | None,
                   left: float | None) -> tuple[list[dict[str, Any]] | None, dict[str, Any] | None]:
    """The members of the study's blend (top trials with a ``weight``, the best trial first, then by
    weight; ``None`` when it has none, it does not start with the trial the final fits use, or the
    members' final fits do not fit in the time left, with the slack the best trial gets), and what
    the summary records of it."""
    blend = result.blend
    if not blend:
        return None, None
    by_number = {t["number"]: t for t in result.top_trials}
    weights = {m["number"]: float(m["weight"]) for m in blend["members"]}
    info: dict[str, Any] = {"value": blend["value"], "single_value": blend["single_value"], "deployed": False}
    if result.best_trial_number not in weights or any(n not in by_number for n in weights):
        return None, info
    extras = sorted((n for n in weights if n != result.best_trial_number), key=lambda n: (-weights[n], n))
    if reserve is not None and left is not None:
        needed = reserve.blend_seconds(extras)
        info.update(needed_s=None if needed is None else round(needed, 2), left_s=round(left, 2))
        if needed is None or needed > left + reserve.slack:
            return None, info
    info["deployed"] = True
    return [{**by_number[n], "weight": weights[n]} for n in [result.best_trial_number, *extras]], info


def _use_trial(result: OptimizationResult, number: int, params: dict[str, Any], attrs: dict[str, Any]) -> None:
    """Make trial ``number`` the one the final fits use (the best trial affordable in the time left)."""
    attrs = dict(attrs)
    value = attrs.pop("_value", None)
    result.best_trial_number, result.best_params, result.best_user_attrs = number, dict(params), attrs
    if result.families:  # its family's defaults, updated by its unprefixed params
        select_family(result, params)
    else:
        result.merged_params = {**result.default_params, **params}
    if value is not None:
        result.best_value = value


async def _parent_run_id(ctx: ModelTrainerContext) -> str | None:
    """The tracker's parent run id (its opening is queued by ``on_study_start``: wait for it)."""
    return None if ctx.tracker is None else await ctx.tracker.wait_started()


async def _open_tracker_run(ctx: ModelTrainerContext, state: Mapping[str, Any], algorithm: str, metric: str,
                            direction: str) -> None:
    """Without a study there is no ``on_study_start``: open the tracker's parent run ourselves so
    ``register_model`` has a run to log the model under."""
    if ctx.tracker is None or ctx.tracker.parent_run_id is not None:
        return
    context = StudyContext(
        study_name=study_name_for(state), directions=(direction,), algorithm=algorithm,
        problem_type=state["problem_type"], metric=metric, metric_names=(metric,), n_trials=0,
        dataset_fingerprint=state.get("dataset_fingerprint"), experiment_name=ctx.experiment_name,
        tags={"hpo.tuning": "disabled"},
    )
    # The tracker does not use the study argument to open the run (there is no study here).
    await ctx.tracker.on_study_start(None, context)  # type: ignore[arg-type]
