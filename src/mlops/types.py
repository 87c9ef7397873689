"""Domain types shared by the engine and its adapters (persistence, tracking, agents)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

import optuna

__all__ = ["StudyContext", "OptimizationResult", "TrialListener", "FAIL_REASON_ATTR", "WORKER_ATTR", "SOURCE_ATTR"]

#: user attribute of a FAIL trial holding its reason ("timeout", "stale", "cancelled", "exception: ...").
FAIL_REASON_ATTR = "fail_reason"
#: user attribute naming a worker (host:pid:token). The engine records who runs a trial in its trial
#: ledger (``hpo_trial_slots``), not in the trial; liveness is judged by leases, never by this name.
WORKER_ATTR = "worker_id"
#: user attribute telling where an enqueued trial's params came from: "defaults" (trial 0, the family's
#: defaults), "user" (``enqueue``), "history" (warm start: the best trials of earlier studies of the same
#: data, :mod:`src.mlops.warm_start`), "portfolio" (the family's known-good configurations) or "retry" (a
#: stale trial's params tried again; a retried defaults trial stays "defaults"). Absent: the sampler
#: proposed them (reports show "sampler").
SOURCE_ATTR = "source"


@dataclass(frozen=True)
class StudyContext:
    """What adapters (history database, MLflow) need to know about a study besides Optuna's own data."""

    study_name: str
    directions: tuple[str, ...]
    algorithm: str | None = None
    problem_type: str | None = None
    metric: str | None = None
    metric_names: tuple[str, ...] = ()
    sampler_name: str | None = None
    pruner_name: str | None = None
    search_space: dict[str, Any] | None = None
    n_trials: int | None = None
    dataset_fingerprint: str | None = None
    experiment_name: str | None = None
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def direction(self) -> str:
        return self.directions[0]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class OptimizationResult:
    """Outcome of :meth:`OptunaOptimizer.optimize` (and of ``run_hyperparameter_optimization``)."""

    study_name: str
    directions: tuple[str, ...]
    best_params: dict[str, Any]
    best_value: float | None
    best_values: list[float] | None
    best_trial_number: int | None
    n_trials: int
    n_completed: int
    n_pruned: int
    n_failed: int
    duration_s: float
    stop_reason: str
    #: epoch seconds at which the trial loop ended (before the analysis and what follows it)
    ended_at: float = 0.0
    merged_params: dict[str, Any] = field(default_factory=dict)
    default_params: dict[str, Any] = field(default_factory=dict)
    defaults_value: float | None = None
    best_user_attrs: dict[str, Any] = field(default_factory=dict)
    #: user attributes of the defaults trial (its boosting round count, fit time...), if it completed
    defaults_user_attrs: dict[str, Any] = field(default_factory=dict)
    pareto_front: list[dict[str, Any]] = field(default_factory=list)
    algorithm: str | None = None
    problem_type: str | None = None
    metric: str | None = None
    failure_reasons: dict[int, str] = field(default_factory=dict)
    #: the trial with the most reliable gain over the defaults on the same CV folds
    #: (:func:`src.mlops.selection.robust_choice`; ``None`` without fold scores)
    robust_choice: Any = None
    #: COMPLETE trials served from the trial cache (their objective was not called; :mod:`.trial_cache`)
    n_cached: int = 0
    #: the warm start from history: ``{"n_configs", "matched_by", "sources", "dropped"}`` (None: off)
    warm_start: dict[str, Any] | None = None
    #: ``--compare random``: defaults vs random search vs tuned (:mod:`.compare`; None: not asked)
    comparison: dict[str, Any] | None = None
    #: adaptive narrowing (``phases > 1``, :mod:`.narrowing`): per phase its ranges, trials and best
    phases: list[dict[str, Any]] = field(default_factory=list)
    #: what the study says (:func:`src.mlops.analysis.analyze_study`, as plain data): importances,
    #: convergence, per-family comparison, recommendations; ``{"error": ...}`` when it could not be made
    analysis: dict[str, Any] | None = None
    #: a family search (``algorithm="auto"`` or a list): the families searched; ``algorithm`` is then the
    #: chosen one (see :mod:`src.mlops.family_search`). Empty for a one-family study.
    families: list[str] = field(default_factory=list)
    #: per searched family: trial counts, best and defaults scores, mean fit seconds, dropped or not
    family_stats: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: a multi-objective study (:mod:`src.mlops.multi_objective`): the objectives' names (metric first)
    #: and the picked point of the front (rule, tolerance, trial number, values, params, family); the
    #: ``best_*`` fields are then the picked trial's
    objectives: list[str] = field(default_factory=list)
    pick: dict[str, Any] | None = None
    #: a single-objective study's best COMPLETE trials, best first, one per distinct configuration
    #: (:func:`src.mlops.ensemble.top_trials`): ``{"number", "value", "params", "user_attrs"}``, the
    #: candidates of an averaged final model
    top_trials: list[dict[str, Any]] = field(default_factory=list)
    #: a family search asked for a blend (``blend_members``, :mod:`src.mlops.blend`): its members'
    #: trial numbers and weights (``{"members": [{"number", "weight"}], "value", "single_value"}``)
    blend: dict[str, Any] | None = None

    @property
    def direction(self) -> str:
        return self.directions[0]

    @property
    def family_best(self) -> dict[str, float | None]:
        """The best score each searched family reached (``None``: no completed trial)."""
        return {f: s.get("best_value") for f, s in self.family_stats.items()}

    @property
    def improvement_over_defaults(self) -> float | None:
        """best_value - defaults_value, signed so that a positive number is always better."""
        if self.best_value is None or self.defaults_value is None:
            return None
        sign = 1.0 if self.direction == "maximize" else -1.0
        return sign * (self.best_value - self.defaults_value)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["failure_reasons"] = {str(k): v for k, v in self.failure_reasons.items()}
        return d


@runtime_checkable
class TrialListener(Protocol):
    """Observer of a running study. Called on the event loop, after ``study.tell``.

    Adapters (the history repository, the MLflow tracker, progress bars, graph stream writers)
    implement it. A listener must not raise for operational problems of its own backend
    (log and count them); an exception it raises is logged and the study goes on.
    """

    async def on_study_start(self, study: optuna.Study, context: StudyContext) -> None: ...

    async def on_trial_finished(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None: ...

    async def on_study_end(self, study: optuna.Study, result: OptimizationResult) -> None: ...
