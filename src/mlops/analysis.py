"""What a finished (or running) study says (SPEC F14): parameter importances, convergence, the
per-family comparison and plain-language recommendations, as plain data.

:func:`analyze_study` reads only the study (its trials and its user attributes ``search_space`` and
``hpo.recipe``); :func:`gap_recommendations` judges numbers the study cannot know (a test score, a
training score). Both are cheap: importances use Optuna's default evaluator (PED-ANOVA: no model
fit) on at most :data:`MAX_IMPORTANCE_TRIALS` trials, so a study of hundreds of trials is analysed
in a fraction of a second.

The rules, with their thresholds (module constants):

* **convergence** -- ``plateaued`` when the last :data:`PLATEAU_MIN_TRIALS` or more completed trials,
  and at least half of all completed trials, brought no improvement larger than
  :data:`MIN_REL_IMPROVEMENT` of the best value's size; ``improving`` otherwise;
  ``too_few_trials`` under :data:`MIN_TRIALS_FOR_CONVERGENCE` completed trials. The evidence comes
  with it: the trial of the last improvement, completed trials since, the gain of the last half.
* **range bound** -- a numeric param of the best trial, when the sampler proposed it (not an enqueued
  defaults/portfolio configuration), within :data:`BOUND_MARGIN` of its range's width (in log space
  for log ranges) from a bound: the optimum may lie beyond it. Not for a lower bound of 0 (or of a
  log range at most :data:`NATURAL_FLOOR`, or an integer range from 1: a count below 1 turns the step
  off), nor for an upper bound of 1 of a float range from 0 or above (a share such as
  ``feature_fraction``), nor for the upper bound of a round cap (:data:`ROUND_CAPS`) when the trial
  stopped early below it (its ``best_iteration``): early stopping, not the cap, chose its rounds.
* **mostly pruned** -- more than :data:`PRUNED_SHARE` of the finished trials pruned.
* **failures** -- more than :data:`FAILED_SHARE` of the trials failed (the reasons are named).
* **a family that never came close** -- with several model families in the space, a family whose
  best score (over at least 3 completed trials) is worse than the median of all completed trials.
* **gaps** -- validation better than test by more than :data:`VAL_TEST_GAP` (relative), or training
  better than validation by more than :data:`TRAIN_VAL_GAP` (relative).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import statistics
import time
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from .jsonutil import to_jsonable
from .search_space import ParamSpec, SearchSpace, parse_search_space
from .types import FAIL_REASON_ATTR, SOURCE_ATTR

__all__ = ["StudyAnalysis", "analyze_study", "gap_recommendations", "study_search_space", "internal_study",
           "FAMILY_PARAMS"]

log = logging.getLogger("src.mlops.analysis")

#: name prefix of the in-memory studies holding a copy of trials (importances, the report's plots)
_VIEW_PREFIX = "hpo-internal-view-"


class _QuietView(logging.Filter):
    """Drops Optuna's "A new study created in memory" line for our own (internal) view study."""

    def filter(self, record: logging.LogRecord) -> bool:
        return _VIEW_PREFIX not in record.getMessage()


for _name in ("optuna.storages._in_memory", "optuna.study.study"):  # where Optuna versions log it
    logging.getLogger(_name).addFilter(_QuietView())


def internal_study(directions: Any, purpose: str) -> optuna.Study:
    """An in-memory study for a copy of trials, created without Optuna's "new study" log line."""
    return optuna.create_study(directions=directions, study_name=f"{_VIEW_PREFIX}{purpose}")

#: names a searched model-family categorical goes by (SPEC F8).
FAMILY_PARAMS = ("algorithm", "model", "family", "estimator")
MIN_IMPORTANCE_TRIALS = 10
MAX_IMPORTANCE_TRIALS = 1000
MIN_TRIALS_FOR_CONVERGENCE = 10
PLATEAU_MIN_TRIALS = 10
MIN_REL_IMPROVEMENT = 1e-4
BOUND_MARGIN = 0.02
#: a log range starting at or below this is taken as starting at zero (no lower-bound warning)
NATURAL_FLOOR = 1e-6
#: boosting round counts that early stopping ends before: a cap, not the rounds a trial used
ROUND_CAPS = ("n_estimators", "max_iter", "iterations", "num_boost_round")
PRUNED_SHARE = 0.6
FAILED_SHARE = 0.2
VAL_TEST_GAP = 0.03
TRAIN_VAL_GAP = 0.10


@dataclass
class StudyAnalysis:
    """Plain, JSON-able data (:meth:`to_dict`); the field docs say what each holds."""

    study_name: str
    directions: list[str]
    metric: str | None
    n_trials: int
    n_complete: int
    n_pruned: int
    n_failed: int
    best_value: float | None
    best_trial: int | None
    #: param -> importance (sums to 1), most important first; empty when they could not be computed.
    importances: dict[str, float] = field(default_factory=dict)
    #: "PED-ANOVA on N complete trials", or why there are none.
    importance_note: str = ""
    #: status ("improving" | "plateaued" | "too_few_trials" | "multi_objective") and its evidence.
    convergence: dict[str, Any] = field(default_factory=dict)
    #: one row per model family (when the space searches several): name, trials, best, gap to the best.
    families: list[dict[str, Any]] = field(default_factory=list)
    #: ``{"kind", "message", ...}``, most pressing first.
    recommendations: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(asdict(self), non_finite="null")


def study_search_space(study: optuna.Study) -> SearchSpace | None:
    """The space the study records (user attribute ``search_space``, else its recipe's), or ``None``."""
    attrs = study.user_attrs
    spec = attrs.get("search_space")
    if not spec:
        recipe = attrs.get("hpo.recipe") or {}
        spec = (recipe.get("objective") or {}).get("search_space") if isinstance(recipe, Mapping) else None
    if not spec:
        return None
    try:
        return parse_search_space(spec)
    except (ValueError, TypeError) as e:
        log.warning("study %r: its stored search space does not parse (%s); range checks skipped",
                    study.study_name, e)
        return None


def analyze_study(study: optuna.Study, *, metric: str | None = None) -> StudyAnalysis:
    """Analyse ``study`` (single- or multi-objective; any storage). Never trains anything."""
    started = time.perf_counter()
    trials = study.get_trials(deepcopy=False)
    directions = [d.name.lower() for d in study.directions]
    multi = len(directions) > 1
    complete = [t for t in trials if t.state == TrialState.COMPLETE and _finite_values(t)]
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    failed = [t for t in trials if t.state == TrialState.FAIL]
    recipe = study.user_attrs.get("hpo.recipe") or {}
    metric = metric or ((recipe.get("objective") or {}).get("metric") if isinstance(recipe, Mapping) else None)
    best = None if multi or not complete else _best(complete, directions[0])
    out = StudyAnalysis(
        study_name=study.study_name, directions=directions, metric=metric,
        n_trials=sum(1 for t in trials if t.state != TrialState.WAITING), n_complete=len(complete),
        n_pruned=len(pruned), n_failed=len(failed), best_value=None if best is None else float(best.value),
        best_trial=None if best is None else best.number)
    out.importances, out.importance_note = _importances(study, complete, multi)
    out.convergence = ({"status": "multi_objective", "pareto_size": len(study.best_trials) if complete else 0}
                       if multi else _convergence(complete, directions[0]))
    if not multi:
        out.families = _families(complete, directions[0])
    out.recommendations = _recommendations(out, study, best, failed)
    out.seconds = round(time.perf_counter() - started, 3)
    return out


# ---------------------------------------------------------------------------------------- pieces

def _finite_values(t: FrozenTrial) -> bool:
    return t.values is not None and all(v is not None and math.isfinite(v) for v in t.values)


def _better(a: float, b: float, direction: str) -> bool:
    return a > b if direction == "maximize" else a < b


def _best(complete: list[FrozenTrial], direction: str) -> FrozenTrial:
    pick = max if direction == "maximize" else min
    return pick(complete, key=lambda t: t.value)


def _importances(study: optuna.Study, complete: list[FrozenTrial], multi: bool) -> tuple[dict[str, float], str]:
    if len(complete) < MIN_IMPORTANCE_TRIALS:
        return {}, (f"not computed: {len(complete)} complete trial(s); importances need at least "
                    f"{MIN_IMPORTANCE_TRIALS}")
    used = sorted(complete, key=lambda t: t.number)[-MAX_IMPORTANCE_TRIALS:]
    varied = {name for name in {p for t in used for p in t.params}
              if len({repr(t.params[name]) for t in used if name in t.params}) > 1}
    if not varied:
        return {}, "not computed: no param took more than one value"
    # a param whose distribution changed within the study (a narrowed or edited space) cannot be
    # compared across trials: keep the distribution of the latest trials
    latest: dict[str, Any] = {}
    for t in reversed(used):
        for name, dist in t.distributions.items():
            latest.setdefault(name, dist)
    used = [t for t in used if all(t.distributions[n] == latest[n] for n in t.params if n in latest)]
    if len(used) == len(complete) == len(study.get_trials(deepcopy=False)):
        view = study
    else:
        view = internal_study(study.directions, "importances")
        view.add_trials(used)
    target = (lambda t: t.values[0]) if multi else None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the evaluator's experimental/quantile warnings
            values = optuna.importance.get_param_importances(view, target=target, params=sorted(varied))
    except (ValueError, RuntimeError, ZeroDivisionError) as e:  # e.g. every value equal
        return {}, f"not computed: {type(e).__name__}: {e}"
    objective = " (first objective)" if multi else ""
    note = f"PED-ANOVA{objective} on {len(used)} complete trials"
    if len(complete) > len(used):
        note += f" (the latest {len(used)} of {len(complete)})"
    return {k: round(float(v), 4) for k, v in values.items()}, note


def _convergence(complete: list[FrozenTrial], direction: str) -> dict[str, Any]:
    ordered = sorted(complete, key=lambda t: t.number)
    n = len(ordered)
    if n == 0:
        return {"status": "too_few_trials", "n_complete": 0}
    sign = 1.0 if direction == "maximize" else -1.0
    best_curve: list[float] = []
    best = ordered[0].value
    last_improvement = 0  # index into ordered
    tolerance = MIN_REL_IMPROVEMENT * max(abs(v.value) for v in ordered) or 1e-12
    for i, t in enumerate(ordered):
        if sign * (t.value - best) > tolerance:
            last_improvement = i
        if _better(t.value, best, direction):
            best = t.value
        best_curve.append(best)
    half = best_curve[(n - 1) // 2]
    gain_total = sign * (best_curve[-1] - ordered[0].value)
    gain_last_half = sign * (best_curve[-1] - half)
    since = n - 1 - last_improvement
    evidence = {
        "n_complete": n, "best_value": best_curve[-1], "first_value": ordered[0].value,
        "last_improvement_trial": ordered[last_improvement].number, "complete_trials_since_improvement": since,
        "gain_total": gain_total, "gain_last_half": gain_last_half,
        "share_of_gain_in_last_half": (gain_last_half / gain_total) if gain_total > 0 else None,
    }
    if n < MIN_TRIALS_FOR_CONVERGENCE:
        status = "too_few_trials"
        summary = f"{n} complete trials: too few to judge convergence (at least {MIN_TRIALS_FOR_CONVERGENCE})"
    elif since >= PLATEAU_MIN_TRIALS and since >= n / 2:
        status = "plateaued"
        summary = (f"plateaued: the best value was reached at trial {ordered[last_improvement].number}; the "
                   f"{since} complete trials since brought no improvement; the last half of the study gained "
                   f"{_fmt(gain_last_half)}")
    else:
        status = "improving"
        summary = (f"still improving: the last improvement came at trial {ordered[last_improvement].number} "
                   f"({since} complete trial{'' if since == 1 else 's'} ago); the last half of the study gained "
                   f"{_fmt(gain_last_half)}")
    return {"status": status, "summary": summary, **evidence}


def _family_param(complete: list[FrozenTrial]) -> str | None:
    for name in FAMILY_PARAMS:
        if len({str(t.params[name]) for t in complete if name in t.params}) > 1:
            return name
    return None


def _families(complete: list[FrozenTrial], direction: str) -> list[dict[str, Any]]:
    name = _family_param(complete)
    if name is None:
        return []
    groups: dict[str, list[FrozenTrial]] = {}
    for t in complete:
        if name in t.params:
            groups.setdefault(str(t.params[name]), []).append(t)
    overall = _best(complete, direction).value
    median = statistics.median(t.value for t in complete)
    sign = 1.0 if direction == "maximize" else -1.0
    rows = []
    for family, ts in groups.items():
        best = _best(ts, direction)
        rows.append({"param": name, "family": family, "n_complete": len(ts), "best_value": best.value,
                     "best_trial": best.number, "median_value": statistics.median(t.value for t in ts),
                     "gap_to_best": sign * (overall - best.value),
                     "never_close": len(ts) >= 3 and _better(median, best.value, direction)})
    rows.sort(key=lambda r: r["gap_to_best"])
    return rows


def _at_bound(spec: ParamSpec, value: Any) -> str | None:
    if spec.type == "categorical" or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    low, high, v = float(spec.low), float(spec.high), float(value)
    if spec.log and low > 0 and v > 0:
        low, high, v = math.log(low), math.log(high), math.log(v)
    width = high - low
    if width <= 0:
        return None
    margin = max(BOUND_MARGIN * width, 0.0)
    floor = float(spec.low) <= 0 or (spec.log and float(spec.low) <= NATURAL_FLOOR) or (
        spec.type == "int" and float(spec.low) <= 1)
    if v <= low + margin and not floor:
        return "lower"  # (a range from 0 or ~0, or a count from 1, has nothing below it worth trying)
    if v >= high - margin and not (spec.type == "float" and float(spec.low) >= 0 and float(spec.high) == 1.0):
        return "upper"  # (a share in [0, 1], e.g. feature_fraction, has nothing above 1)
    return None


def _stopped_below_cap(name: str, value: Any, trial: FrozenTrial) -> bool:
    """Whether ``name`` is a round cap that early stopping ended the trial well below (under 90 % of
    it: the mean over folds near the cap means some fold may have reached it)."""
    rounds = trial.user_attrs.get("best_iteration")
    base = name.rsplit("__", 1)[-1]  # a family search names it lightgbm__n_estimators
    return base in ROUND_CAPS and isinstance(rounds, (int, float)) and 0 < rounds < 0.9 * float(value)


def _recommendations(a: StudyAnalysis, study: optuna.Study, best: FrozenTrial | None,
                     failed: list[FrozenTrial]) -> list[dict[str, Any]]:
    recs: list[dict[str, Any]] = []
    finished = a.n_complete + a.n_pruned
    if a.n_complete == 0:
        recs.append({"kind": "no_complete_trial", "message": "No trial completed: there is nothing to analyse "
                     "yet; check the failure reasons of the trials."})
    if failed and len(failed) > FAILED_SHARE * max(a.n_trials, 1):
        reasons: dict[str, int] = {}
        for t in failed:
            r = str(t.user_attrs.get(FAIL_REASON_ATTR, "unknown")).split(":")[0]
            reasons[r] = reasons.get(r, 0) + 1
        top = ", ".join(f"{r} ({k})" for r, k in sorted(reasons.items(), key=lambda kv: -kv[1])[:3])
        recs.append({"kind": "many_failures", "n_failed": len(failed),
                     "message": f"{len(failed)} of {a.n_trials} trials failed ({top}): fix the cause (a tight "
                                "--trial-timeout, a search-space region the model cannot fit) before spending "
                                "more trials."})
    if a.n_pruned >= 5 and a.n_pruned > PRUNED_SHARE * finished:
        recs.append({"kind": "mostly_pruned", "n_pruned": a.n_pruned,
                     "message": f"{a.n_pruned} of {finished} finished trials were pruned: the pruner may stop "
                                "promising trials early on a noisy metric. Compare with --pruner none, or give it "
                                "more warm-up (--pruner-options '{\"n_warmup_steps\": 20}')."})
    space = study_search_space(study)
    # an enqueued configuration (defaults, portfolio, user) was not searched: its values sit on
    # bounds by design, so only a trial the sampler proposed says where the optimum lies
    sampled = best is not None and best.user_attrs.get(SOURCE_ATTR, "sampler") == "sampler"
    if sampled and space is not None:
        for name, value in best.params.items():
            if name not in space:
                continue
            spec = space[name]
            drawn = best.distributions.get(name)
            if spec.type != "categorical" and hasattr(drawn, "low") and hasattr(drawn, "high"):
                # the widest of the study's range and the one the trial was drawn from: adaptive narrowing
                # narrows ranges (a bound of a narrowed phase is not the study's) and widens some
                spec = dataclasses.replace(spec, low=min(spec.low, drawn.low), high=max(spec.high, drawn.high))
            side = _at_bound(spec, value)
            if side is None or (side == "upper" and _stopped_below_cap(name, value, best)):
                continue
            bound = spec.low if side == "lower" else spec.high
            direction = "below" if side == "lower" else "above"
            recs.append({"kind": "range_bound", "param": name, "side": side, "value": value,
                         "low": spec.low, "high": spec.high,
                         "message": f"The best trial's {name} = {_fmt(value)} sits on the {side} bound of its "
                                    f"range [{_fmt(spec.low)}, {_fmt(spec.high)}]: the optimum may lie {direction} "
                                    f"{_fmt(bound)}. Widen that side (--search-space) and tune again."})
    for row in a.families:
        if row["never_close"]:
            recs.append({"kind": "family_never_close", "family": row["family"],
                         "message": f"{row['param']} = {row['family']} never came close: its best "
                                    f"({_fmt(row['best_value'])} over {row['n_complete']} trials) is worse than "
                                    "the median trial of the study. Drop it from the families to spend the budget "
                                    "on the others."})
    status = a.convergence.get("status")
    if status == "improving":
        recs.append({"kind": "still_improving", "message": "The study was still improving when it stopped (last "
                     f"improvement at trial {a.convergence['last_improvement_trial']}): more trials are likely to "
                     "help; continue it with the same --study-name and a larger --n-trials."})
    elif status == "plateaued":
        recs.append({"kind": "plateaued", "message": "The study has plateaued "
                     f"({a.convergence['complete_trials_since_improvement']} complete trials without improvement): "
                     "more trials of this space are unlikely to help; --patience N stops such studies early."})
    return recs


def gap_recommendations(direction: str, *, validation: float | None = None, test: float | None = None,
                        train: float | None = None, metric: str | None = None, scheme: str | None = None,
                        test_rows: int | None = None, defaults_selected: bool = False) -> list[dict[str, Any]]:
    """Recommendations on a validation-test or a train-validation gap (scores of one model, same metric).

    A gap counts when the earlier score is better by more than :data:`VAL_TEST_GAP` (validation over
    test) or :data:`TRAIN_VAL_GAP` (train over validation) of the larger score's size. The advice on a
    validation-test gap depends on how the study scored (``scheme``: ``"holdout"`` or ``"cv=..."``),
    on the test split's size and on whether the study kept the defaults (then selection is not the cause)."""
    if direction not in ("maximize", "minimize"):
        raise ValueError(f"direction must be 'maximize' or 'minimize', got {direction!r}")
    sign = 1.0 if direction == "maximize" else -1.0
    name = metric or "the metric"
    recs: list[dict[str, Any]] = []

    def gap(a: float | None, b: float | None, share: float) -> float | None:
        if a is None or b is None or not (math.isfinite(a) and math.isfinite(b)):
            return None
        g = sign * (a - b)
        return g if g > share * max(abs(a), abs(b), 1e-12) else None

    small_test = f"the test split has only {test_rows} rows, so part of the gap is noise; " if (
        test_rows is not None and test_rows < 200) else ""
    if defaults_selected:
        val_advice = (f"{small_test}the study kept the defaults, so selecting among trials did not cause it: "
                      "the validation rows are easier than the test rows.")
    elif scheme and scheme.startswith("cv"):
        val_advice = (f"{small_test}the study may have fitted its CV folds. More repeats (--scheme cv=5x3) or "
                      "fewer trials per row make its estimate less optimistic.")
    else:
        val_advice = (f"{small_test}the study may have fitted the validation split. Use CV (--scheme cv=5x2) or "
                      "a larger validation split, and fewer trials per row.")
    checks = (  # (kind, earlier, later, threshold, the earlier's name, the later's name, advice)
        ("validation_test_gap", validation, test, VAL_TEST_GAP, "validation", "test", val_advice),
        ("train_validation_gap", train, validation, TRAIN_VAL_GAP, "train", "validation",
         "the model overfits. Favour stronger regularization (smaller trees, more min samples per leaf, "
         "larger penalties)."),
    )
    for kind, earlier, later, share, first, second, advice in checks:
        g = gap(earlier, later, share)
        if g is not None:
            where = "the training rows" if first == "train" else first
            recs.append({"kind": kind, first: earlier, second: later, "gap": g,
                         "message": f"{name} is {_fmt(g)} worse on {second} ({_fmt(later)}) than on {where} "
                                    f"({_fmt(earlier)}): {advice}"})
    return recs


def _fmt(v: Any) -> str:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, int):
        return str(v)
    return f"{v:.4g}" if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5) else f"{v:.4f}".rstrip("0").rstrip(".")
