"""Multi-objective tuning (F7): the metric against prediction latency and model size, and a rule that
picks the one point of the Pareto front that is trained and registered.

``objectives=["roc_auc", "latency", "size"]``: the first objective is the metric (any metric of the
problem type); the others are costs, both minimized:

* ``latency`` -- milliseconds per 1,000 rows of ``model.predict`` (preprocessing included) on the
  validation rows: the median of :data:`LATENCY_REPEATS` timed calls after one warm-up call. Fewer
  than 1,000 validation rows are repeated up to 1,000 rows, more are cut at :data:`LATENCY_MAX_ROWS`,
  so a call is a batch of realistic size rather than a measure of per-call overhead. Under CV it is
  measured on the first fold's model. It is a measurement: it varies with the machine's load.
* ``size`` -- bytes of the pickled fitted model (preprocessing + estimator). The skops file the graph
  writes at registration holds the same object tree; its size is of the same order.

Pruning: Optuna cannot prune a multi-objective study (``trial.report`` raises), so the study gets
:class:`optuna.pruners.NopPruner` whatever pruner was asked for, and intermediate values are not
reported. The per-trial timeout still applies, and boosting fits still stop early on the validation
metric (early stopping is part of the fit, not a pruner). The trial cache and ``patience`` are
single-objective only.

The pick rule (:class:`ParetoPick`): among the front's points whose metric is within ``tolerance``
(a fraction of the best metric on the front, e.g. 0.01 = 1 %) of the best, ``fastest`` takes the
lowest latency, ``smallest`` the lowest size, ``best_metric`` the best metric. Latencies within
:data:`LATENCY_NOISE` (10 %) of the lowest count as ties (two timings of one model differ by that much
on a busy machine); ties go to the other cost, then to the better metric, then to the lower trial
number. The default rule is ``fastest`` when
latency is an objective, else ``smallest``.
"""

from __future__ import annotations

import math
import pickle
import statistics
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from .errors import ConfigurationError, IncompatibleMetricError, UnknownMetricError
from .metrics import get_metric, list_metrics
from .problems import normalize_problem_type

__all__ = [
    "COSTS",
    "PICK_RULES",
    "DEFAULT_TOLERANCE",
    "Objectives",
    "ParetoPick",
    "parse_objectives",
    "check_pick",
    "check_multi_settings",
    "measure_costs",
    "pareto_front",
    "pick_point",
    "apply_pick",
    "name_objectives",
]

#: the cost objectives, what they measure (both minimized)
COSTS: dict[str, str] = {"latency": "ms of predict per 1,000 validation rows (median of repeats)",
                         "size": "bytes of the pickled fitted model"}
PICK_RULES = ("fastest", "smallest", "best_metric")
DEFAULT_TOLERANCE = 0.01
LATENCY_REPEATS = 5
LATENCY_MIN_ROWS = 1_000
LATENCY_MAX_ROWS = 10_000
_RULE_COST = {"fastest": "latency", "smallest": "size"}
#: latencies within this fraction of the lowest are ties for the ``fastest`` rule (timing noise)
LATENCY_NOISE = 0.10


@dataclass(frozen=True)
class Objectives:
    """The study's objectives: the metric first, then the costs."""

    metric: str
    costs: tuple[str, ...]
    metric_direction: str

    @property
    def names(self) -> tuple[str, ...]:
        return (self.metric, *self.costs)

    @property
    def directions(self) -> tuple[str, ...]:
        return (self.metric_direction, *("minimize" for _ in self.costs))

    @property
    def is_multi(self) -> bool:
        return bool(self.costs)


def parse_objectives(objectives: str | Sequence[str] | None, problem_type: str, *, metric: str | None = None,
                     field: str = "objectives") -> Objectives | None:
    """Validate ``objectives`` (a list or ``"roc_auc,latency,size"``) for ``problem_type`` (``None`` ->
    ``None``; a lone metric gives a single-objective :class:`Objectives`, ``is_multi`` False).
    ``metric``, when given, must be the first objective. Errors are :class:`ConfigurationError`
    naming ``field``."""
    if objectives is None:
        return None
    items = objectives.split(",") if isinstance(objectives, str) else list(objectives)
    if not all(isinstance(o, str) for o in items):
        raise ConfigurationError(f"{field} must be a list of names (a metric, then latency and/or size), got {objectives!r}")
    names = [o.strip().lower() for o in items if o.strip()]
    if not names:
        raise ConfigurationError(f"{field} must name at least one objective, e.g. roc_auc,latency,size")
    pt = normalize_problem_type(problem_type) if problem_type else None  # None: not known yet (any metric)
    kinds = ", ".join(list_metrics(pt)) if pt else "e.g. roc_auc, rmse"
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigurationError(f"{field} must name each objective once; {', '.join(dupes)} is given more than once "
                                 f"in {','.join(names)}")
    first, costs = names[0], names[1:]
    if first in COSTS:
        raise ConfigurationError(
            f"{field} must start with a metric ({kinds}), got {first!r} first; e.g. "
            f"{list_metrics(pt)[0] if pt else 'roc_auc'},{first}")
    try:
        spec = get_metric(first, pt)
    except (UnknownMetricError, IncompatibleMetricError):
        raise ConfigurationError(f"{field} must start with a metric of {pt or 'the problem type'}: {first!r} is not "
                                 f"one (metrics: {kinds})") from None
    for c in costs:
        if c not in COSTS:
            kind = "a second metric" if c in list_metrics() else "unknown"
            raise ConfigurationError(
                f"{field} must list costs ({', '.join(COSTS)}) after the metric {first!r}; {c!r} is {kind}")
    if metric is not None and get_metric(metric).name != spec.name:
        raise ConfigurationError(f"{field} must start with the metric: its first objective {spec.name!r} differs "
                                 f"from metric {metric!r}; give the metric once, as the first objective")
    return Objectives(spec.name, tuple(costs), spec.direction)


@dataclass(frozen=True)
class ParetoPick:
    """The rule that picks the trained point of the front, and its tolerance (a fraction of the best metric)."""

    rule: str
    tolerance: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_pick(rule: str | None, tolerance: float | None, objectives: Objectives | None, *,
               rule_field: str = "pick_rule", tolerance_field: str = "pick_tolerance") -> ParetoPick | None:
    """The :class:`ParetoPick` of a multi-objective study (``None`` otherwise; a rule given to a
    single-objective study is an error). ``rule`` None: ``fastest`` with latency, else ``smallest``."""
    if objectives is None or not objectives.is_multi:
        if rule is not None or tolerance is not None:
            given = rule_field if rule is not None else tolerance_field
            raise ConfigurationError(f"{given} must be left out of a single-objective study (it picks a point of a "
                                     "Pareto front); add objectives such as latency or size, or drop it")
        return None
    if rule is None:
        rule = "fastest" if "latency" in objectives.costs else "smallest"
    key = str(rule).strip().lower()
    if key not in PICK_RULES:
        raise ConfigurationError(f"{rule_field} must be one of {list(PICK_RULES)}, got {rule!r}")
    need = _RULE_COST.get(key)
    if need is not None and need not in objectives.costs:
        raise ConfigurationError(f"{rule_field} must rank by an objective of the study: {key!r} needs {need!r} among "
                                 f"the objectives {list(objectives.names)}")
    tol = DEFAULT_TOLERANCE if tolerance is None else tolerance
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not math.isfinite(tol) or not 0 <= tol < 1:
        raise ConfigurationError(
            f"{tolerance_field} must be a fraction 0 <= tolerance < 1 of the best metric (0.01 = 1 %), got {tolerance!r}")
    return ParetoPick(key, float(tol))


def check_multi_settings(*, objectives: Any, problem_type: str | None, metric: str | None = None,
                         pick_rule: str | None = None, pick_tolerance: float | None = None, sampler: Any = None,
                         compare: str | None = None, patience: int | None = None,
                         names: Mapping[str, str] | None = None) -> tuple[Objectives | None, ParetoPick | None]:
    """Every check of the multi-objective settings, before any study exists: the objectives for the
    problem type (``None``: not known yet), the pick rule and tolerance, and what a multi-objective
    study cannot take (a single-objective sampler, ``compare``, ``patience``). ``names`` maps the
    setting names to how the caller spells them (``{"pick_tolerance": "--pick-tolerance"}``)."""
    n = {"objectives": "objectives", "pick_rule": "pick_rule", "pick_tolerance": "pick_tolerance",
         "sampler": "sampler", "compare": "compare", "patience": "patience", **(names or {})}
    objs = parse_objectives(objectives, problem_type, metric=metric, field=n["objectives"]) if objectives else None
    pick = check_pick(pick_rule, pick_tolerance, objs, rule_field=n["pick_rule"], tolerance_field=n["pick_tolerance"])
    if objs is not None and objs.is_multi:
        from .factories import SamplerFactory

        if isinstance(sampler, str) and sampler.strip().lower() in SamplerFactory.SINGLE_OBJECTIVE:
            raise ConfigurationError(f"{n['sampler']} must drive several objectives: {sampler!r} is single-objective; "
                                     "use tpe (the default), nsga2, nsga3 or random")
        for key, value in (("compare", compare), ("patience", patience)):
            if value:
                raise ConfigurationError(f"{n[key]} applies to single-objective studies only; drop it or the cost "
                                         f"objectives ({', '.join(objs.costs)})")
    return objs, pick


# ---------------------------------------------------------------------------------------------
# measuring the costs of a fitted model
# ---------------------------------------------------------------------------------------------
def _latency_rows(X: pd.DataFrame) -> pd.DataFrame:
    n = len(X)
    if n == 0:
        raise ConfigurationError("latency needs validation rows to time predictions on")
    if n < LATENCY_MIN_ROWS:
        reps = -(-LATENCY_MIN_ROWS // n)
        return pd.concat([X] * reps, ignore_index=True).iloc[:LATENCY_MIN_ROWS]
    return X.iloc[:LATENCY_MAX_ROWS]


def measure_costs(costs: Sequence[str], model: Any, X: pd.DataFrame, *, repeats: int = LATENCY_REPEATS) -> dict[str, float]:
    """``{"latency": ms per 1,000 rows, "size": bytes}`` (those in ``costs``) of a fitted model."""
    out: dict[str, float] = {}
    for cost in costs:
        if cost == "latency":
            rows = _latency_rows(X)
            model.predict(rows)  # warm-up: caches, lazy initialisation
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                model.predict(rows)
                times.append(time.perf_counter() - t0)
            out["latency"] = round(statistics.median(times) * 1000.0 * 1000.0 / len(rows), 6)
        elif cost == "size":
            out["size"] = float(len(pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)))
        else:
            raise ConfigurationError(f"unknown cost objective {cost!r}; known: {list(COSTS)}")
    return out


# ---------------------------------------------------------------------------------------------
# the front and the pick
# ---------------------------------------------------------------------------------------------
def _dominates(a: Sequence[float], b: Sequence[float], signs: Sequence[float]) -> bool:
    """``a`` is at least as good as ``b`` on every objective and better on one (signs: +1 minimize)."""
    better = False
    for x, y, s in zip(a, b, signs):
        if s * x > s * y:
            return False
        better = better or s * x < s * y
    return better


def pareto_front(trials: Iterable[FrozenTrial], names: Sequence[str], directions: Sequence[str]) -> list[dict[str, Any]]:
    """The non-dominated COMPLETE trials as ``{"number", "values": {name: value}, "params", "family",
    "source"}``, best metric first (points with identical values all stay)."""
    signs = [1.0 if d == "minimize" else -1.0 for d in directions]
    done = [t for t in trials if t.state == TrialState.COMPLETE and t.values is not None
            and len(t.values) == len(signs)]
    front = [t for t in done if not any(_dominates(o.values, t.values, signs) for o in done if o is not t)]
    front.sort(key=lambda t: (signs[0] * t.values[0], *(s * v for s, v in zip(signs[1:], t.values[1:])), t.number))
    return [{"number": t.number, "values": dict(zip(names, (float(v) for v in t.values))), "params": dict(t.params),
             "family": t.params.get("model", t.user_attrs.get("family")), "source": t.user_attrs.get("source", "sampler")}
            for t in front]


def pick_point(front: Sequence[Mapping[str, Any]], objectives: Objectives, pick: ParetoPick) -> dict[str, Any]:
    """The point of ``front`` (from :func:`pareto_front`) that ``pick`` chooses, with ``"within"``: the
    numbers of the points within the tolerance, and ``"threshold"``: the worst metric allowed."""
    if not front:
        raise ConfigurationError("the Pareto front is empty: no trial completed")
    m = objectives.metric
    sign = -1.0 if objectives.metric_direction == "maximize" else 1.0  # sign * metric: lower is better
    best = min(sign * p["values"][m] for p in front)
    allowed = best + pick.tolerance * abs(best)
    within = [p for p in front if sign * p["values"][m] <= allowed + 1e-12]
    cost = _RULE_COST.get(pick.rule)
    others = [c for c in objectives.costs if c != cost]
    if pick.rule == "best_metric":
        key = lambda p: (sign * p["values"][m], *(p["values"][c] for c in others), p["number"])  # noqa: E731
        chosen = dict(min(within, key=key))
    else:
        # latency is a measurement: points within LATENCY_NOISE of the fastest are ties, decided by the
        # other cost, then by the metric (size is exact: no band)
        lowest = min(p["values"][cost] for p in within)
        band = lowest * (1 + LATENCY_NOISE) if cost == "latency" else lowest
        ties = [p for p in within if p["values"][cost] <= band + 1e-12]
        key = lambda p: (*(p["values"][c] for c in others), sign * p["values"][m], p["values"][cost], p["number"])  # noqa: E731
        chosen = dict(min(ties, key=key))
    chosen["within"] = [p["number"] for p in within]
    chosen["threshold"] = sign * allowed
    return chosen


def name_objectives(study: Any, objectives: Objectives) -> None:
    """Give the study its objectives' names (Optuna's ``metric_names``: the dashboard's and the report's axes)."""
    import warnings

    import optuna

    if study.metric_names is None:
        with warnings.catch_warnings():  # experimental since Optuna 3.2, stable in use
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(list(objectives.names))


def apply_pick(result: Any, trials: Sequence[FrozenTrial], objectives: Objectives, pick: ParetoPick) -> None:
    """Record the front and the picked point in ``result`` (an :class:`~src.mlops.types.OptimizationResult`):
    ``pareto_front`` (named values, params, family), ``pick`` (rule, tolerance, the point, the points within
    the tolerance, the best metric on the front), and ``best_*`` = the picked trial's, so that what reads the
    best trial (final fits, history, MLflow) uses the picked point."""
    front = pareto_front(trials, objectives.names, objectives.directions)
    result.pareto_front = front
    result.objectives = list(objectives.names)
    if not front:
        return
    chosen = pick_point(front, objectives, pick)
    trial = next(t for t in trials if t.number == chosen["number"])
    best_metric = front[0]["values"][objectives.metric]
    result.pick = {**pick.to_dict(), "number": chosen["number"], "values": chosen["values"],
                   "params": chosen["params"], "family": chosen["family"], "within_tolerance": chosen["within"],
                   "metric_threshold": chosen["threshold"], "best_metric": best_metric,
                   "best_metric_number": front[0]["number"]}
    result.best_params = dict(trial.params)
    result.best_values = [float(v) for v in trial.values]
    result.best_value = float(trial.values[0])
    result.best_trial_number = trial.number
    result.best_user_attrs = dict(trial.user_attrs)
