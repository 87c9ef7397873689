"""Method comparison (SPEC F28): the study against the defaults and a random-search baseline.

``run_hyperparameter_optimization(compare="random")`` runs, after the study, a random search on the
*same objective* (same data, folds, metric, pruner, search space) with the same budget: as many
trials as the study ran, and -- when the study was bounded by time -- no more seconds than it took.
The baseline starts from the sampler's random points only (no defaults, no portfolio, no history);
it lives in memory (no history rows, no MLflow runs) and shares the study's trial cache, whose
results are the objective's own. :func:`comparison` puts the three validation numbers side by side.
"""

from __future__ import annotations

import uuid
from typing import Any

import optuna

from .errors import ConfigurationError
from .types import OptimizationResult

__all__ = ["COMPARE_ATTR", "COMPARE_METHODS", "check_compare", "random_baseline", "comparison", "record_comparison",
           "record_test_scores"]

#: the baselines ``compare`` knows
COMPARE_METHODS = ("random",)
#: the study's user attribute that keeps the comparison (validation; test scores added by ``hpo train``)
COMPARE_ATTR = "hpo.comparison"


def check_compare(compare: Any) -> str | None:
    """``None`` or a method of :data:`COMPARE_METHODS`; raises ConfigurationError naming the rule."""
    if compare is None:
        return None
    if not isinstance(compare, str) or compare.strip().lower() not in COMPARE_METHODS:
        raise ConfigurationError(f"compare must be one of {list(COMPARE_METHODS)} or None, but got {compare!r}")
    return compare.strip().lower()


async def random_baseline(objective: Any, *, n_trials: int, timeout: float | None, seed: int | None,
                          pruner: Any, pruner_options: Any, n_jobs: int = 1, trial_timeout: float | None = None,
                          trial_cache: Any = None) -> OptimizationResult:
    """A random search of ``objective`` with ``n_trials`` trials (and ``timeout`` seconds), in memory."""
    from .optimizer import OptunaOptimizer  # the optimizer module is the heavier one

    async with OptunaOptimizer() as opt:  # no listeners: the baseline is not a study of the history
        study = await opt.create_study(
            study_name=f"random-baseline-{uuid.uuid4().hex[:8]}", direction=objective.direction, sampler="random",
            pruner=pruner, pruner_options=pruner_options, storage=optuna.storages.InMemoryStorage(),
            seed=None if seed is None else seed + 1, search_space=objective.search_space)
        return await opt.optimize(study, objective, n_trials=n_trials, timeout=timeout, n_jobs=n_jobs,
                                  trial_timeout=trial_timeout, enqueue_defaults=False, enqueue_portfolio=False,
                                  trial_cache=trial_cache)


def comparison(result: OptimizationResult, baseline: OptimizationResult, *, method: str,
               timeout: float | None) -> dict[str, Any]:
    """Defaults vs ``method`` vs tuned on validation (the study's own scores), with both budgets."""
    return {
        "method": method,
        "metric": result.metric,
        "direction": result.direction,
        "scored_on": "validation" if "fold_scores" not in result.best_user_attrs else "cross-validation",
        "defaults": result.defaults_value,
        method: baseline.best_value,
        "tuned": result.best_value,
        f"{method}_best_params": dict(baseline.best_params),
        f"{method}_best_user_attrs": {k: v for k, v in baseline.best_user_attrs.items()
                                      if k in ("best_iteration", "fit_rows", "fit_seconds")},
        f"{method}_trials": baseline.n_trials,
        f"{method}_completed": baseline.n_completed,
        f"{method}_cached": baseline.n_cached,
        f"{method}_seconds": baseline.duration_s,
        "tuned_trials": result.n_trials,
        "tuned_seconds": result.duration_s,
        "budget": f"{result.n_trials} trials" + (f", at most {timeout:.1f} s" if timeout is not None else ""),
    }


def record_comparison(study: optuna.Study, comparison: dict[str, Any]) -> None:
    """Keep ``comparison`` in the study (user attribute :data:`COMPARE_ATTR`) for ``hpo report``:
    the numbers only (the baseline's params stay in the run's summary)."""
    from .jsonutil import to_jsonable

    kept = {k: v for k, v in comparison.items() if not k.endswith(("_best_params", "_best_user_attrs"))}
    study.set_user_attr(COMPARE_ATTR, to_jsonable(kept, non_finite="null"))


def record_test_scores(storage: Any, study_name: str, comparison: dict[str, Any]) -> None:
    """Replace the comparison kept in the study ``study_name`` of ``storage`` (a URL or an Optuna
    storage; ``None``: an in-memory study, nothing kept) by ``comparison``, which has the test scores
    ``hpo train`` adds (``test_defaults``, ``test_random``, ``test_tuned``). Blocking."""
    if storage is None:
        return
    from ._storages import resolve_storage

    store = resolve_storage(storage)
    try:
        record_comparison(optuna.load_study(study_name=study_name, storage=store), comparison)
    finally:
        if isinstance(storage, str) and hasattr(store, "close"):
            store.close()
