"""A study's recipe: what a worker on another machine needs to rebuild its objective (SPEC F24, F25).

``run_hyperparameter_optimization`` records, in the Optuna study's user attribute ``hpo.recipe``
(one JSON object, written once by the study's creator):

* ``algorithm``, ``problem_type`` and ``objective``: the keyword options the objective is built with
  (metric, search space, overrides, fixed params, seed, early stopping, cv, cv_strategy, ...: a
  plain dict, so a new option of the objective travels with it);
* ``study``: the study's budget ``n_trials`` (fixed at creation: workers never exceed it), sampler,
  pruner and their options, ``trial_timeout``, and the creator's ``warm_start`` / ``warm_start_trials`` /
  ``trial_cache`` settings (a worker given the history database uses the trial cache and, when it is
  the first to start the study, seeds the same warm start as ``hpo tune`` would);
* ``data``: where the data is -- a location every worker can read -- and ``fingerprint``: what it
  held. ``data`` is one of::

      {"kind": "file", "path": "/shared/churn.csv", "target": "Churn", "problem_type": null,
       "time_column": null, "split": {"seed": 42, "rare_classes": "train"},
       "scheme": {"kind": "cv", "folds": 5, "repeats": 2, ...}}                 # hpo tune --data
      {"kind": "dataset", "name": "breast_cancer", ...same keys...}            # hpo tune --dataset
      {"kind": "frames", "refs": {"train_X": DataRef, "train_y": ..., "val_X": ..., "val_y": ...},
       "scheme": {...}}                                                        # the graph

  ``scheme`` (an :class:`~src.mlops.schemes.EvaluationScheme`) says how the splits became the
  objective's data (under CV: train + validation joined, :func:`~src.mlops.schemes.tuning_frames`).

:func:`join_study` (``hpo worker --study NAME``) reads the recipe, loads the data again, refuses data
whose fingerprint differs, and runs trials of the same objective until the study's budget is used.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna

from .errors import ConfigurationError, DataValidationError, StudyMismatchError, StudyNotFoundError
from .fingerprint import dataset_fingerprint
from .search_space import SearchSpace
from .trial_slots import uses_budget
from .types import OptimizationResult, TrialListener

__all__ = [
    "RECIPE_ATTR",
    "check_same_study",
    "TuningData",
    "build_recipe",
    "data_fingerprint",
    "join_study",
    "load_data_source",
    "read_recipe",
    "recipe_identity",
    "study_progress",
    "write_recipe",
]

log = logging.getLogger("src.mlops.study_recipe")

RECIPE_ATTR = "hpo.recipe"
RECIPE_VERSION = 1
_DATA_KINDS = ("file", "dataset", "frames")
_FRAME_KEYS = ("train_X", "train_y", "val_X", "val_y")


@dataclass
class TuningData:
    """The train and validation data of a study (no test split: tuning never sees it)."""

    X_train: Any
    y_train: Any
    X_val: Any = None
    y_val: Any = None
    problem_type: str | None = None
    time_column: str | None = None
    dropped_columns: dict[str, str] = field(default_factory=dict)
    #: column -> why it alone predicts the target exactly (:mod:`.features._leaks`; a likely leak)
    leak_suspects: dict[str, str] = field(default_factory=dict)


def data_fingerprint(X_train: Any, y_train: Any, X_val: Any = None, y_val: Any = None) -> str:
    """``train`` or ``train/validation`` content fingerprints (:func:`dataset_fingerprint`)."""
    fp = dataset_fingerprint(X_train, y_train)
    return fp if X_val is None else f"{fp}/{dataset_fingerprint(X_val, y_val)}"


def _jsonable(value: Any, what: str) -> Any:
    """``value`` as plain JSON data (tuples become lists); raises ConfigurationError otherwise."""
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as e:
        raise ConfigurationError(f"{what} cannot be recorded as JSON for other workers: {e}") from e


def build_recipe(*, algorithm: str, problem_type: str, objective: Mapping[str, Any], n_trials: int | None,
                 sampler: Any, pruner: Any, sampler_options: Mapping[str, Any] | None,
                 pruner_options: Mapping[str, Any] | None, trial_timeout: float | None,
                 data: Mapping[str, Any] | None, fingerprint: str, warm_start: bool = True,
                 warm_start_trials: int = 5, trial_cache: bool = True) -> dict[str, Any]:
    """The recipe of a study (see the module docstring). A sampler or pruner given as an object is
    recorded as ``None``: workers then use the defaults. Raises ConfigurationError when an option
    cannot be written as JSON, or ``data`` is malformed. (``pruner=None`` is recorded as "none".)"""
    if data is not None:
        _check_data_source(data)
    return {
        "version": RECIPE_VERSION,
        "algorithm": algorithm,
        "problem_type": problem_type,
        "objective": _jsonable({k: v.to_dict() if isinstance(v, SearchSpace) else v for k, v in objective.items()},
                               "the objective's options"),
        "study": {
            "n_trials": n_trials,
            "sampler": sampler if isinstance(sampler, str) else None,
            "pruner": "none" if pruner is None else pruner if isinstance(pruner, str) else None,
            "sampler_options": _jsonable(dict(sampler_options or {}), "sampler_options"),
            "pruner_options": _jsonable(dict(pruner_options or {}), "pruner_options"),
            "trial_timeout": trial_timeout,
            "warm_start": bool(warm_start),
            "warm_start_trials": int(warm_start_trials),
            "trial_cache": bool(trial_cache),
        },
        "data": _jsonable(dict(data), "data_source") if data is not None else None,
        "fingerprint": fingerprint,
    }


def write_recipe(study: optuna.Study, options: Mapping[str, Any]) -> None:
    """Record ``build_recipe(**options)`` in ``study`` unless it has a recipe already (the creator's
    stays: a resumed run does not rewrite it). A study that has one must be the same study: a run whose
    data (fingerprint), family, problem type, metric or evaluation scheme differs is refused
    (:class:`StudyMismatchError`, naming both values), so one study never mixes scores of different
    data or rules. Options that cannot be written as JSON leave the study without a recipe (logged:
    workers cannot join it); a malformed ``data`` source is an error."""
    existing = study.user_attrs.get(RECIPE_ATTR)
    if isinstance(existing, dict):
        check_same_study(study.study_name, existing, options)
        return
    if options.get("data") is not None:
        _check_data_source(options["data"])
    try:
        recipe = build_recipe(**options)
    except ConfigurationError as e:
        log.warning("study %s gets no worker recipe: %s", study.study_name, e)
        return
    study.set_user_attr(RECIPE_ATTR, recipe)


def _scheme_of(objective: Mapping[str, Any]) -> str:
    cv = objective.get("cv")
    if cv is None:
        return "holdout (validation split)"
    repeats = objective.get("cv_repeats") or 1
    strategy = objective.get("cv_strategy") or "auto"
    return f"cv={cv}" + (f"x{repeats}" if repeats != 1 else "") + (f" {strategy}" if strategy != "auto" else "")


def recipe_identity(recipe: Mapping[str, Any]) -> dict[str, str]:
    """What makes two runs the same study: the data, the family, the problem, the metric, the scheme,
    whether the preprocessing steps are searched (pipeline search)."""
    objective = recipe.get("objective") or {}
    return {"dataset fingerprint": str(recipe.get("fingerprint")), "algorithm": str(recipe.get("algorithm")),
            "problem type": str(recipe.get("problem_type")), "metric": str(objective.get("metric")),
            "evaluation scheme": _scheme_of(objective),
            "pipeline search": "on" if objective.get("pipeline") else "off"}


def check_same_study(name: str, existing: Mapping[str, Any], options: Mapping[str, Any]) -> None:
    """Raise :class:`StudyMismatchError` when a run with ``options`` (``build_recipe``'s keywords)
    would add trials of other data or rules to the study ``name`` recorded by ``existing``."""
    before = recipe_identity(existing)
    now = recipe_identity({"fingerprint": options.get("fingerprint"), "algorithm": options.get("algorithm"),
                           "problem_type": options.get("problem_type"), "objective": options.get("objective") or {}})
    differ = [f"{key} {before[key]!r} in the study, {now[key]!r} in this run"
              for key in before if before[key] != now[key]]
    if differ:
        raise StudyMismatchError(
            f"study {name!r} exists with other data or rules: {'; '.join(differ)}. Its trials would be mixed "
            "with this run's: give another study name, or ask for a new study (new_study=True, `--new-study`), "
            "which keeps the old one and starts the next free name"
        )


def read_recipe(study: optuna.Study) -> dict[str, Any]:
    """The study's recipe; ConfigurationError naming the study when it has none."""
    recipe = study.user_attrs.get(RECIPE_ATTR)
    if not isinstance(recipe, dict) or recipe.get("version") != RECIPE_VERSION:
        raise ConfigurationError(
            f"study {study.study_name!r} has no worker recipe (user attribute {RECIPE_ATTR!r}, version "
            f"{RECIPE_VERSION}): only studies created by `hpo tune`, `hpo train --study-name` or "
            "run_hyperparameter_optimization(data_source=...) can be joined by `hpo worker`"
        )
    if recipe.get("data") is None:
        raise ConfigurationError(
            f"study {study.study_name!r} does not record where its data is (it was created from in-memory data "
            "without data_source=...); workers cannot rebuild its objective"
        )
    return recipe


def _check_data_source(source: Mapping[str, Any]) -> None:
    kind = source.get("kind")
    if kind not in _DATA_KINDS:
        raise ConfigurationError(f"data_source kind must be one of {list(_DATA_KINDS)}, got {kind!r}")
    if kind == "file" and not source.get("path"):
        raise ConfigurationError("a data_source of kind 'file' needs a 'path' every worker can read")
    if kind == "dataset" and not source.get("name"):
        raise ConfigurationError("a data_source of kind 'dataset' needs a 'name'")
    if kind == "frames" and not {"train_X", "train_y"} <= set(source.get("refs") or {}):
        raise ConfigurationError("a data_source of kind 'frames' needs 'refs' with at least train_X and train_y")
    if source.get("scheme") is not None:
        from .schemes import EvaluationScheme

        try:
            EvaluationScheme.from_dict(source["scheme"])
        except (KeyError, TypeError) as e:
            raise ConfigurationError(f"data_source scheme {source['scheme']!r} is not an evaluation scheme: {e}") from e


def describe_source(source: Mapping[str, Any]) -> str:
    """Where the data of ``source`` is, for messages."""
    if source.get("kind") == "file":
        return f"file {source['path']!r}"
    if source.get("kind") == "dataset":
        return f"bundled dataset {source['name']!r}"
    refs = source.get("refs") or {}
    return f"split files {[str((refs.get(k) or {}).get('path')) for k in _FRAME_KEYS if k in refs]}"


def load_data_source(source: Mapping[str, Any]) -> TuningData:
    """Load the data a recipe's ``data`` names: the train/validation splits (what ``hpo tune`` does
    with its flags), then, when ``source`` has a ``scheme``, the objective's data under it."""
    from .datasets import load_dataset
    from .features import prepare_features
    from .schemes import EvaluationScheme, tuning_frames
    from .splits import load_frame_ref, split_dataset

    _check_data_source(source)
    if source["kind"] == "frames":
        refs = source["refs"]
        frames = {k: load_frame_ref(refs[k]) if refs.get(k) else None for k in _FRAME_KEYS}
        data = TuningData(frames["train_X"], frames["train_y"], frames["val_X"], frames["val_y"])
    else:
        loaded = load_dataset(source["path"] if source["kind"] == "file" else source["name"],
                              target=source.get("target"))
        prepared = prepare_features(loaded.frame, loaded.target, problem_type=source.get("problem_type"),
                                    time_column=source.get("time_column"),
                                    drop_columns=source.get("drop_columns") or ())
        splits = split_dataset(prepared.X, prepared.y, problem_type=prepared.problem_type,
                               time_column=prepared.time_column, **dict(source.get("split") or {}))
        data = TuningData(splits.X_train, splits.y_train, splits.X_val, splits.y_val,
                          problem_type=prepared.problem_type, time_column=prepared.time_column,
                          dropped_columns=dict(prepared.dropped_columns),
                          leak_suspects=dict(prepared.leak_suspects))
    if source.get("scheme") is not None:
        scheme = EvaluationScheme.from_dict(source["scheme"])
        data.X_train, data.y_train, data.X_val, data.y_val = tuning_frames(
            data.X_train, data.y_train, data.X_val, data.y_val, scheme)
    return data


def study_progress(study: optuna.Study) -> tuple[int, int | None]:
    """``(finished trials that use the budget, the study's budget)`` -- for progress bars of workers."""
    done = sum(1 for t in study.get_trials(deepcopy=False) if t.state.is_finished() and uses_budget(t))
    recipe = study.user_attrs.get(RECIPE_ATTR)
    return done, (recipe.get("study") or {}).get("n_trials") if isinstance(recipe, dict) else None


def _phase_options(study: optuna.Study, recipe: Mapping[str, Any]) -> dict[str, Any]:
    """The search space of the study's latest narrowing phase as objective options (none: no phases)."""
    from .narrowing import PHASES_ATTR

    records = study.user_attrs.get(PHASES_ATTR)
    if not isinstance(records, list) or len(records) < 2:
        return {}
    from .models import get_model_spec
    from .narrowing import phase_space
    from .search_space import parse_search_space

    options = recipe.get("objective") or {}
    base = (parse_search_space(options["search_space"]) if options.get("search_space") is not None
            else get_model_spec(recipe["algorithm"], recipe["problem_type"]).search_space(recipe["problem_type"]))
    if options.get("space_overrides"):
        base = base.with_overrides(options["space_overrides"])
    space = phase_space(study, base)
    return {} if space is None else {"search_space": space.to_dict(), "space_overrides": None}


async def join_study(
    study_name: str,
    *,
    storage: Any,
    n_trials: int | None = None,
    timeout: float | None = None,
    n_jobs: int = 1,
    listeners: Iterable[TrialListener] = (),
    callbacks: Sequence[Callable[[optuna.Study, optuna.trial.FrozenTrial], None]] | None = None,
    optimizer: Any = None,
    history: Any = None,
) -> OptimizationResult:
    """Run trials of an existing study, rebuilt from its recipe, until its budget is used.

    ``n_trials`` / ``timeout`` bound this worker's own share (at most that many trials, at most that
    long); the study never holds more trials than the budget recorded at its creation. Raises
    :class:`StudyNotFoundError` for an unknown study, :class:`ConfigurationError` for a study without
    a recipe, and :class:`DataValidationError` when the data is not what the study was created on.

    ``history`` (the history database) gives the worker what ``hpo tune`` has: the trial cache in the
    database, and the warm start when this worker is the first to start the study -- with the
    creator's settings (``warm_start``, ``warm_start_trials``, ``trial_cache`` in the recipe). A study
    tuned with narrowing phases is joined in the ranges of its latest recorded phase.
    """
    from .optimizer import OptunaOptimizer
    from .optuna_optimizer import run_hyperparameter_optimization

    opt = optimizer or OptunaOptimizer(listeners=listeners)
    try:
        store = opt.open_storage(storage)
        try:
            study = await asyncio.to_thread(optuna.load_study, study_name=study_name, storage=store)
        except KeyError:
            raise StudyNotFoundError(
                f"no study named {study_name!r} in this database; create it first with `hpo tune --study-name "
                f"{study_name}` (or `hpo train --study-name`), then start workers"
            ) from None
        recipe = read_recipe(study)
        data = await asyncio.to_thread(load_data_source, recipe["data"])
        found = data_fingerprint(data.X_train, data.y_train, data.X_val, data.y_val)
        if found != recipe["fingerprint"]:
            raise DataValidationError(
                f"study {study_name!r} was created on data with fingerprint {recipe['fingerprint']}, but "
                f"{describe_source(recipe['data'])} now gives fingerprint {found}: the data changed (or this "
                "worker sees another copy); a worker only joins a study on the very same data"
            )
        settings = recipe["study"]
        budget = settings.get("n_trials")
        if budget is None and n_trials is None and timeout is None:
            raise ConfigurationError(
                f"study {study_name!r} has no trial budget (it was created with a timeout only); give this "
                "worker --n-trials or --timeout"
            )
        from .factories import SamplerFactory

        # each worker samples with its own random seed: same-seeded workers would propose the same trials
        sampler = SamplerFactory.create(settings.get("sampler") or "tpe", seed=None,
                                        **dict(settings.get("sampler_options") or {}))
        objective_options = {**recipe["objective"], "n_jobs": n_jobs, **_phase_options(study, recipe)}
        return await run_hyperparameter_optimization(
            recipe["algorithm"], recipe["problem_type"], data.X_train, data.y_train, data.X_val, data.y_val,
            **objective_options, n_trials=budget if budget is not None else n_trials,
            max_trials=n_trials if budget is not None else None, timeout=timeout, sampler=sampler,
            pruner=settings.get("pruner") or "median", pruner_options=settings.get("pruner_options") or None,
            trial_timeout=settings.get("trial_timeout"), study_name=study_name, storage=store,
            callbacks=callbacks, optimizer=opt, data_source=recipe["data"], history=history,
            warm_start=bool(settings.get("warm_start", True)),
            warm_start_trials=int(settings.get("warm_start_trials", 5)),
            trial_cache=bool(settings.get("trial_cache", True)),
        )
    finally:
        if optimizer is None:
            await opt.aclose()

