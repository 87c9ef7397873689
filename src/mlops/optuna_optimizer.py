"""Public face of the HPO engine.

>>> from src.mlops.optuna_optimizer import run_hyperparameter_optimization
>>> result = await run_hyperparameter_optimization(
...     algorithm="lightgbm", problem_type="binary_classification",
...     X_train=X_tr, y_train=y_tr, X_val=X_va, y_val=y_va, metric="roc_auc", n_trials=30, seed=0)
>>> result.best_value, result.merged_params   # merged_params = defaults updated by best_params

There is deliberately no parameter for test data anywhere here: tuning sees train and validation
data only.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import optuna

from .errors import ConfigurationError, StudyFailedError, StudyMismatchError
from .factories import PrunerFactory, SamplerFactory
from .compare import check_compare, comparison, random_baseline, record_comparison
from .family_search import FamilySearchObjective, canonical_algorithm, family_names, is_family_search, select_family
from .fingerprint import dataset_fingerprint, schema_fingerprint
from .metrics import default_metric, get_metric
from .models import get_model_class, get_model_spec, list_models
from .narrowing import Narrowing, check_phases
from .multi_objective import check_multi_settings, name_objectives
from .objectives import ModelObjective, TunedModel
from .optimizer import OptunaOptimizer
from .problems import normalize_problem_type
from .search_space import SearchSpace, parse_search_space
from .ensemble import top_trials
from .selection import robust_choice
from .study_outcome import check_search_ran
from .study_recipe import data_fingerprint, write_recipe
from .trial_cache import InMemoryTrialCacheStore, TrialCache, TrialCacheStore
from .trial_slots import SEEDED_ATTR
from .types import SOURCE_ATTR, OptimizationResult, StudyContext, TrialListener
from .warm_start import SCHEMA_TAG, WarmStart, history_configs

log = logging.getLogger("src.mlops.optuna_optimizer")

__all__ = [
    "OptunaOptimizer",
    "SamplerFactory",
    "PrunerFactory",
    "get_model_class",
    "get_model_spec",
    "list_models",
    "run_hyperparameter_optimization",
    "OptimizationResult",
    "ModelObjective",
    "FamilySearchObjective",
    "TunedModel",
    "SearchSpace",
    "parse_search_space",
]


#: how many names ``NAME-2``, ``NAME-3``... ``new_study=True`` tries before giving up.
_MAX_NEW_STUDY_NAMES = 100


async def run_hyperparameter_optimization(
    algorithm: str | Sequence[str] = "lightgbm",
    problem_type: str = "binary_classification",
    X_train: Any = None,
    y_train: Any = None,
    X_val: Any = None,
    y_val: Any = None,
    metric: str | None = None,
    n_trials: int | None = 50,
    timeout: float | None = None,
    sampler: str | optuna.samplers.BaseSampler = "tpe",
    pruner: str | optuna.pruners.BasePruner | None = "median",
    search_space: Mapping[str, Any] | SearchSpace | None = None,
    cv: int | None = None,
    seed: int | None = 42,
    *,
    study_name: str | None = None,
    storage: Any = None,
    n_jobs: int = 1,
    trial_timeout: float | None = None,
    max_failures: int | None = None,
    patience: int | None = None,
    min_improvement: float = 0.0,
    cv_strategy: str = "auto",
    cv_repeats: int = 1,
    space_overrides: Mapping[str, Any] | None = None,
    fixed_params: Mapping[str, Any] | None = None,
    enqueue_defaults: bool = True,
    enqueue: Iterable[Mapping[str, Any]] = (),
    enqueue_portfolio: bool = True,
    early_stopping_rounds: int | None = 50,
    sampler_options: Mapping[str, Any] | None = None,
    pruner_options: Mapping[str, Any] | None = None,
    listeners: Iterable[TrialListener] = (),
    callbacks: Sequence[Callable[[optuna.Study, optuna.trial.FrozenTrial], None]] | None = None,
    optimizer: OptunaOptimizer | None = None,
    experiment_name: str | None = None,
    time_reserve: Callable[[], float] | None = None,
    data_source: Mapping[str, Any] | None = None,
    max_trials: int | None = None,
    new_study: bool = False,
    history: Any = None,
    warm_start: bool = True,
    warm_start_trials: int = 5,
    trial_cache: bool | TrialCacheStore = True,
    compare: str | None = None,
    phases: int = 1,
    narrow_shrink: float = 0.5,
    pipeline: bool = False,
    objectives: str | Sequence[str] | None = None,
    pick_rule: str | None = None,
    pick_tolerance: float | None = None,
    blend_members: int | None = None,
) -> OptimizationResult:
    """Tune ``algorithm`` on validation data (or CV folds of the training data) and return the result.

    ``metric`` defaults by problem type (roc_auc for binary, log_loss for multiclass, rmse for
    regression). ``cv=k`` scores each trial on k folds drawn from ``X_train`` (``cv_repeats``
    shuffles of them; ``cv_strategy="timeseries"`` for time-ordered folds). ``search_space`` replaces the family's default space; ``space_overrides`` patches
    it (a spec per param, ``None`` removes one). With ``cv`` the validation data is not needed.
    The model's defaults are trial 0 (``enqueue_defaults``), so ``best_value`` is never worse
    than the defaults' validation score; the family's portfolio of robust configurations follows
    (``enqueue_portfolio``, default space only). A named study in a persistent ``storage`` resumes.
    Raises :class:`StudyFailedError` when no trial completed (the reasons are in the message).

    The study records its recipe (:mod:`.study_recipe`): the objective's options, the budget, and
    ``data_source`` -- where the data is, for workers on other machines (``hpo worker``); e.g.
    ``{"kind": "file", "path": ..., "target": ..., "split": {...}}``. ``max_trials``: this call
    starts at most that many trials (the study still holds at most ``n_trials``).

    ``algorithm="auto"`` or several families (``"lightgbm,xgboost"`` or a list) searches the family too
    (:mod:`.family_search`: every family's defaults first, cheapest first; families that trail the
    leader are dropped). The result's ``algorithm`` is then the chosen family, ``merged_params`` its
    defaults updated by the best trial's unprefixed params, ``families`` / ``family_stats`` /
    ``family_best`` the per-family record; ``best_params`` are the study's (``model``, ``<family>__<param>``).

    A named study that exists must be the same study: other data (fingerprint), family, problem type,
    metric, direction or evaluation scheme raise :class:`StudyMismatchError` naming both values, unless
    ``new_study=True``: then the first free name ``NAME-2``, ``NAME-3``... is used (the result's
    ``study_name``), and the old study is kept as it is.

    ``history`` (a :class:`~src.mlops.persistence.HistoryRepository`) gives a fresh study a warm start
    (``warm_start``, :mod:`.warm_start`): up to ``warm_start_trials`` best configurations of earlier
    studies of the same family, problem type, metric and data (else the same columns and types),
    enqueued after the defaults as ``source="history"``; ``result.warm_start`` says what was seeded.
    ``trial_cache`` (:mod:`.trial_cache`): ``True`` keeps results in ``history`` (or, without one, in
    memory for this call), ``False`` trains every trial, or a :class:`TrialCacheStore`;
    ``result.n_cached`` counts the trials served from it. ``compare="random"`` (:mod:`.compare`) then
    runs a random search with the same budget; ``result.comparison`` holds defaults vs random vs tuned
    (also kept in the study's user attribute ``hpo.comparison`` for the report).

    ``phases > 1`` (:mod:`.narrowing`, one family only) splits the budget into that many phases; after
    each, the numeric ranges narrow around the best trial (to ``narrow_shrink`` of their width) and
    widen where it sits on a bound; ``result.phases`` records each phase's ranges, trials and best.

    ``blend_members=k``: ``result.blend`` is the greedy blend of at most k of the best trials (of any
    family in a family search) by their predictions on the rows that scored them (:mod:`.blend`), when
    it scores above the best trial alone; the caller may deploy it as a weighted average of those
    trials' final fits.

    ``pipeline=True`` searches the preprocessing steps with the model (:mod:`.pipeline_steps`: scaler,
    feature selection, imputation; params ``step__param``); a search space naming ``step__param``
    searches those steps without it. A study whose trials other than the defaults all failed raises
    :class:`StudyFailedError` naming their error (:mod:`.study_outcome`).

    ``objectives=["roc_auc", "latency", "size"]`` (:mod:`.multi_objective`): a multi-objective study
    (the metric first, then prediction latency and/or model size, minimized; multi-objective TPE, no pruning).
    ``result.pareto_front`` holds the front; ``pick_rule`` (``fastest``, ``smallest``, ``best_metric``)
    and ``pick_tolerance`` (a fraction of the best metric, default 0.01) choose the point that becomes
    ``best_params`` / ``merged_params`` (``result.pick`` says which and why).
    """
    pt = normalize_problem_type(problem_type)
    compare = check_compare(compare)
    objs, pick = check_multi_settings(objectives=objectives, problem_type=pt, metric=metric, pick_rule=pick_rule,
                                      pick_tolerance=pick_tolerance, sampler=sampler, compare=compare, patience=patience)
    multi = objs is not None and objs.is_multi
    metric_spec = get_metric(metric or (objs.metric if objs else None) or default_metric(pt), pt)
    if isinstance(warm_start_trials, bool) or not isinstance(warm_start_trials, int) or warm_start_trials < 0:
        raise ConfigurationError(f"warm_start_trials must be an integer >= 0, but got {warm_start_trials!r}")
    families = family_names(algorithm, pt, metric_spec.name) if is_family_search(algorithm) else []
    if check_phases(phases, narrow_shrink) > 1 and families:
        raise ConfigurationError(f"phases={phases} (narrowing) needs one model family, but got {algorithm!r}; "
                                 "give one family or phases=1")
    if phases > 1 and multi:
        raise ConfigurationError(f"phases={phases} (narrowing) needs a single-objective study (it narrows around the "
                                 f"best trial), but objectives={list(objs.names)}; give phases=1")  # type: ignore[union-attr]
    # what the study records as its algorithm (history, MLflow, the recipe a worker rebuilds it from)
    single = canonical_algorithm(algorithm) if isinstance(algorithm, (list, tuple)) else algorithm
    label = ",".join(families) if families else get_model_spec(single, pt).name
    name_label = "auto" if str(algorithm).strip().lower() == "auto" else "+".join(families) or label
    name_label += "+pipeline" if pipeline else ""  # a default-named study never mixes the two searches
    options = dict(metric=metric_spec.name, search_space=search_space, space_overrides=space_overrides,
                   fixed_params=fixed_params, seed=seed, early_stopping_rounds=early_stopping_rounds, n_jobs=n_jobs,
                   **({"pipeline": True} if pipeline else {}))
    if multi:
        options["objectives"] = list(objs.names)  # type: ignore[union-attr]
    directions = objs.directions if multi else (metric_spec.direction,)  # type: ignore[union-attr]
    metric_names = objs.names if multi else (metric_spec.name,)  # type: ignore[union-attr]
    mo_tags = {"hpo.objectives": ",".join(metric_names), "hpo.pick_rule": pick.rule,  # type: ignore[union-attr]
               "hpo.pick_tolerance": str(pick.tolerance)} if multi else {}  # type: ignore[union-attr]
    if pruner_options is None:
        pruner_options = PrunerFactory.tuning_defaults(pruner, cv=cv is not None)
    opt = optimizer or OptunaOptimizer(listeners=listeners)

    def build() -> tuple[ModelObjective | FamilySearchObjective, str, str, str]:
        """The objective and the data's fingerprints (encoding and hashing the data: off the loop)."""
        if cv is not None:
            built = opt.create_cv_objective(label, pt, X_train, y_train, cv=cv, cv_strategy=cv_strategy,
                                            cv_repeats=cv_repeats, **options)
        else:
            built = opt.create_validation_objective(label, pt, X_train, y_train, X_val, y_val, **options)
        return (built, dataset_fingerprint(built.X_train, y_train), schema_fingerprint(built.X_train, y_train),
                data_fingerprint(X_train, y_train, X_val, y_val))

    try:
        objective, fingerprint, schema, data_fp = await asyncio.to_thread(build)
        blending = blend_members is not None and blend_members > 1 and not multi
        if blending:
            objective.remember_predictions()  # the candidates of result.blend (blend.py)
        name = study_name or f"{name_label}-{pt}-{'+'.join(metric_names)}-{fingerprint}"
        context = StudyContext(
            study_name=name, directions=tuple(directions), algorithm=label, problem_type=pt,
            metric=metric_spec.name, metric_names=tuple(metric_names),
            sampler_name=sampler if isinstance(sampler, str) else type(sampler).__name__,
            pruner_name=(pruner if isinstance(pruner, str) or pruner is None else type(pruner).__name__) or "none",
            search_space=objective.search_space.to_dict(), n_trials=n_trials, dataset_fingerprint=fingerprint,
            experiment_name=experiment_name, tags={SCHEMA_TAG: schema, **({"hpo.families": label} if families else {}), **mo_tags},
        )
        recipe = dict(
            algorithm=label, problem_type=pt,
            objective={**options, "cv": cv, "cv_strategy": cv_strategy, "cv_repeats": cv_repeats},
            n_trials=n_trials, sampler=sampler, pruner=pruner, sampler_options=sampler_options,
            pruner_options=pruner_options, trial_timeout=trial_timeout, data=data_source,
            fingerprint=data_fp, warm_start=warm_start, warm_start_trials=warm_start_trials,
            trial_cache=trial_cache is not False)
        warm = WarmStart()
        if warm_start and history is not None and warm_start_trials > 0:
            warm = await history_configs(
                history, algorithm=label, problem_type=pt, metric=metric_spec.name, dataset_fingerprint=fingerprint,
                schema_fingerprint=schema, space=objective.search_space, limit=warm_start_trials, exclude_study=name,
                skip=[objective.defaults_trial_params() if enqueue_defaults else {}, *enqueue])
        # A warm-started study's sampler gets a seed of its own (derived from the seed and the history
        # it starts from): with the run's seed it would replay the earlier study's start-up points.
        sampler_seed = seed if seed is None or not warm.configs else _derived_seed(seed, warm.sources)
        candidate = name
        for attempt in range(2, _MAX_NEW_STUDY_NAMES + 2):
            try:
                study = await opt.create_study(
                    study_name=candidate, directions=list(directions), sampler=sampler, pruner=pruner,
                    storage=storage, seed=sampler_seed, search_space=objective.search_space, sampler_options=sampler_options,
                    pruner_options=pruner_options, context=context,
                )
                await asyncio.to_thread(write_recipe, study, recipe)
                break
            except StudyMismatchError:
                if not new_study or attempt > _MAX_NEW_STUDY_NAMES:
                    raise
                candidate = f"{name}-{attempt}"
        if multi:
            await asyncio.to_thread(name_objectives, study, objs)
        if candidate != name:
            log.info("study %r exists with other data or rules: this run's new study is %r", name, candidate)
        name = candidate
        if warm.configs and not await asyncio.to_thread(_is_fresh, study):
            warm = WarmStart()  # a resumed study was seeded when it began
        cache = None
        if trial_cache is not False and len(study.directions) == 1 and not families:  # one-family studies
            store = trial_cache if not isinstance(trial_cache, bool) else (
                history if isinstance(history, TrialCacheStore) else InMemoryTrialCacheStore())
            # reads the installed libraries' metadata (files) the first time: not on the event loop
            cache = await asyncio.to_thread(TrialCache.for_objective, store, objective, data_fingerprint=data_fp)
        narrowing = Narrowing(objective, phases=phases, n_trials=n_trials, timeout=timeout,
                              shrink=narrow_shrink) if phases > 1 else None
        if narrowing is not None:
            await asyncio.to_thread(narrowing.begin, study)
            callbacks = [*(callbacks or ()), narrowing]
        try:
            result = await opt.optimize(
                study, objective, n_trials=n_trials, timeout=timeout, n_jobs=n_jobs, callbacks=callbacks,
                trial_timeout=trial_timeout, max_failures=max_failures, patience=patience,
                min_improvement=min_improvement, enqueue_defaults=enqueue_defaults, enqueue=enqueue,
                enqueue_portfolio=enqueue_portfolio, time_reserve=time_reserve, max_trials=max_trials,
                warm_start=warm.configs, trial_cache=cache, pick=pick,
            )
        finally:
            if narrowing is not None:
                narrowing.restore(study)  # the baseline and the final fits use the study's own space
        if result.n_completed == 0:
            reasons = sorted(set(result.failure_reasons.values()))[:3]
            raise StudyFailedError(
                f"study {name!r} ended without a COMPLETE trial ({result.n_failed} failed, {result.n_pruned} pruned); "
                f"failure reasons: {reasons}"
            )
        await asyncio.to_thread(check_search_ran, name, study.get_trials(deepcopy=False))
        result.problem_type, result.metric = pt, metric_spec.name
        complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        if len(study.directions) == 1:
            result.robust_choice = robust_choice(complete, result.direction)
            result.top_trials = top_trials(complete, result.direction)
            if blending:
                blend = await asyncio.to_thread(objective.blend, result.top_trials, blend_members)
                result.blend = None if blend is None else blend.to_dict()
        if families:  # the optimizer recorded the families (annotate); the best trial's family is the chosen one
            select_family(result, result.best_params)
        else:
            result.algorithm = label
            result.default_params = dict(objective.default_params)
            result.merged_params = objective.params_for(result.best_params)
            defaults = [t for t in complete if t.user_attrs.get("source") == "defaults"]
            result.defaults_value = float(defaults[0].values[0]) if defaults else None
            result.defaults_user_attrs = dict(defaults[0].user_attrs) if defaults else {}
        seeded = [t for t in study.get_trials(deepcopy=False) if t.user_attrs.get(SOURCE_ATTR) == "history"]
        result.warm_start = {"enabled": bool(warm_start and history is not None), "n_seeded": len(seeded),
                             **warm.to_dict(), "sampler_seed": sampler_seed}
        if compare is not None:
            budget = result.n_trials
            bound = result.duration_s if timeout is not None else None
            baseline = await random_baseline(
                objective, n_trials=max(1, budget), timeout=bound, seed=seed, pruner=pruner,
                pruner_options=pruner_options, n_jobs=n_jobs, trial_timeout=trial_timeout, trial_cache=cache)
            result.comparison = comparison(result, baseline, method=compare, timeout=bound)
            await asyncio.to_thread(record_comparison, study, result.comparison)
        return result
    finally:
        if optimizer is None:
            await opt.aclose()  # the connections it opened for a URL storage and its ledger


def _derived_seed(seed: int, sources: Sequence[str]) -> int:
    """A sampler seed from the run's ``seed`` and the history trials a warm start seeds (deterministic)."""
    digest = hashlib.sha256(json.dumps([seed, list(sources)]).encode()).hexdigest()
    return int(digest[:8], 16)


def _is_fresh(study: optuna.Study) -> bool:
    """The study has not been seeded yet (no trial, no seeding mark): a warm start applies."""
    return not study.user_attrs.get(SEEDED_ATTR) and not study.get_trials(deepcopy=False)
