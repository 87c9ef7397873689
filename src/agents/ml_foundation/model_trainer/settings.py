"""The run settings of the model-trainer graph: their defaults, how a node reads one, and the one
check of them all (:func:`validate_settings`) that runs before any work.

The settings are the input keys of :class:`~.state.ModelTrainerState` (documented there); a key the
caller leaves out (or sets to ``None``, where ``None`` means nothing) takes its value from
:data:`DEFAULTS`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from src.mlops.errors import ConfigurationError
from src.mlops.objectives import REFIT_MODES

#: the most configurations a final model averages (``ensemble_size``).
MAX_ENSEMBLE = 10

__all__ = ["DEFAULTS", "setting", "validate_settings", "model_family"]


#: Values of the inputs the caller leaves out.
DEFAULTS: dict[str, Any] = {
    "algorithm": "lightgbm",
    "metric": None,
    "n_trials": 50,
    "timeout": None,
    "sampler": "tpe",
    "pruner": "median",
    "search_space": None,
    "scheme": "auto",
    "cv": None,
    "time_budget": None,
    "n_jobs": 1,
    "trial_timeout": None,
    "tuning_enabled": True,
    "refit": "all",
    "seed": 42,
    "test_size": 0.2,
    "val_size": 0.2,
    "study_name": None,
    "new_study": False,
    "warm_start": True,
    "warm_start_trials": 5,
    "trial_cache": True,
    "compare": None,
    "phases": 1,
    "pipeline_search": False,
    "objectives": None,
    "pick_rule": None,
    "pick_tolerance": None,
    "pruner_options": None,
    "enqueue": None,
    "patience": None,
    "min_improvement": 0.0,
    "max_failures": None,
    "selection": "best",
    "ensemble_size": 3,
    "time_column": None,
    "drop_columns": None,
    "problem_type": None,
    "target": None,
}


def setting(state: Mapping[str, Any], key: str) -> Any:
    """The input ``key`` of ``state``, or its default. A key set to ``None`` counts as absent, except
    where ``None`` means something (``n_trials=None``: bounded by ``timeout`` only; ``pruner=None``:
    no pruning; ``metric=None``: the default metric; ...)."""
    if key in state and (state[key] is not None or key in _NONE_IS_A_VALUE):
        return state[key]
    return DEFAULTS.get(key)


def model_family(state: Mapping[str, Any]) -> str:
    """The one family the final fits use: the study's (with ``algorithm="auto"`` or a list, the family
    the study chose, named by the ``hpo`` summary), else the ``algorithm`` setting."""
    return (state.get("hpo") or {}).get("algorithm") or setting(state, "algorithm")


_NONE_IS_A_VALUE = frozenset({
    "n_trials", "timeout", "cv", "time_budget", "trial_timeout", "study_name", "metric", "time_column", "problem_type", "pruner",
    "compare",
})


def _positive(name: str, value: Any, *, integer: bool, allow_none: bool = True) -> None:
    if value is None:
        if allow_none:
            return
        raise ConfigurationError(f"{name} is required")
    bad = isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and int(value) != value)
    if bad or value <= 0 or (isinstance(value, float) and not math.isfinite(value)):
        kind = "a positive integer" if integer else "a positive number of seconds"
        raise ConfigurationError(f"{name} must be {kind}, but got {value!r}")


def validate_settings(state: Mapping[str, Any]) -> None:
    """Check the tuning inputs before any work is done (no study is created for bad input).

    Raises :class:`~src.mlops.errors.MLOpsError` subclasses with a message naming the input.
    """
    from src.mlops.compare import check_compare
    from src.mlops.narrowing import check_phases
    from src.mlops.factories import PrunerFactory
    from src.mlops.family_search import check_family_params, is_family_search
    from src.mlops.models import get_model_spec
    from src.mlops.pipeline_steps import check_step_space, check_step_values
    from src.mlops.multi_objective import check_multi_settings
    from src.mlops.schemes import parse_scheme
    from src.mlops.search_space import parse_search_space
    from src.mlops.selection import SELECTION_RULES

    algorithm = setting(state, "algorithm")
    # "auto" or several families: names checked here, support for the problem type once it is known
    families = is_family_search(algorithm)
    spec = None if families else get_model_spec(algorithm)
    n_trials, timeout = setting(state, "n_trials"), setting(state, "timeout")
    _positive("n_trials", n_trials, integer=True)
    _positive("timeout", timeout, integer=False)
    if setting(state, "tuning_enabled") and n_trials is None and timeout is None and setting(state, "time_budget") is None:
        raise ConfigurationError("give n_trials, timeout and/or time_budget: an unbounded study would never end")
    _positive("n_jobs", setting(state, "n_jobs"), integer=True, allow_none=False)
    _positive("trial_timeout", setting(state, "trial_timeout"), integer=False)
    _positive("time_budget", setting(state, "time_budget"), integer=False)
    cv = setting(state, "cv")
    if cv is not None and (isinstance(cv, bool) or not isinstance(cv, int) or cv < 2):
        raise ConfigurationError(f"cv must be an integer >= 2 (number of folds) or None, but got {cv!r}")
    requested = parse_scheme(setting(state, "scheme"))
    if cv is not None and requested is not None:
        raise ConfigurationError(
            f"give cv={cv} or scheme={state.get('scheme')!r}, not both (cv=K is shorthand for scheme='cv=K')"
        )
    drop = setting(state, "drop_columns")
    if drop is not None and (isinstance(drop, str) or not isinstance(drop, (list, tuple))
                             or not all(isinstance(c, str) and c.strip() for c in drop)):
        raise ConfigurationError(f"drop_columns must be a list of column names, but got {drop!r}")
    test_size, val_size = setting(state, "test_size"), setting(state, "val_size")
    for label, value in (("test_size", test_size), ("val_size", val_size)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < value < 1.0:
            raise ConfigurationError(f"{label} must be a fraction of the rows with 0 < {label} < 1, but got {value!r}")
    if test_size + val_size >= 1.0:
        raise ConfigurationError(
            f"test_size + val_size must be < 1 to leave rows for training, but got {test_size} + {val_size}"
        )
    seed = setting(state, "seed")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigurationError(f"seed must be an integer, but got {seed!r}")
    if not isinstance(setting(state, "tuning_enabled"), bool):
        raise ConfigurationError(f"tuning_enabled must be True or False, but got {state.get('tuning_enabled')!r}")
    space = setting(state, "search_space")
    if space is not None:
        if not isinstance(space, Mapping):
            raise ConfigurationError(
                f"search_space must be a dict {{param: spec}} (JSON), but got {type(space).__name__}"
            )
        parsed = parse_search_space(space)
        names = parsed.names
        check_step_space(parsed)  # the values of step__param specs (their names are checked next)
        if spec is None:
            check_family_params(algorithm, setting(state, "problem_type"), names)
        else:
            spec.check_params(names, _problem_type_of(spec, state))
    sampler = setting(state, "sampler")
    if not isinstance(sampler, str):
        raise ConfigurationError(f"sampler must be a sampler name such as 'tpe' or 'random', but got {sampler!r}")
    if setting(state, "refit") not in REFIT_MODES:
        raise ConfigurationError(f"refit must be one of {list(REFIT_MODES)}, but got {state.get('refit')!r}")
    pruner = setting(state, "pruner")
    if pruner is not None and not isinstance(pruner, str):
        raise ConfigurationError(f"pruner must be a pruner name such as 'median' or 'none', but got {pruner!r}")
    pruner_options = setting(state, "pruner_options")
    if pruner_options is not None and not isinstance(pruner_options, Mapping):
        raise ConfigurationError(f"pruner_options must be a dict of the pruner's options, but got {pruner_options!r}")
    if pruner_options is None:
        pruner_options = PrunerFactory.tuning_defaults(pruner, cv=False)  # what the engine adds (checked alike)
    PrunerFactory.create(pruner, **dict(pruner_options or {}))  # unknown names and options fail before any study
    _positive("patience", setting(state, "patience"), integer=True)
    _positive("max_failures", setting(state, "max_failures"), integer=True)
    min_improvement = setting(state, "min_improvement")
    if isinstance(min_improvement, bool) or not isinstance(min_improvement, (int, float)) or not min_improvement >= 0:
        raise ConfigurationError(f"min_improvement must be a number >= 0, but got {min_improvement!r}")
    if setting(state, "selection") not in SELECTION_RULES:
        raise ConfigurationError(f"selection must be one of {list(SELECTION_RULES)}, but got {state.get('selection')!r}")
    _positive("ensemble_size", setting(state, "ensemble_size"), integer=True, allow_none=False)
    if setting(state, "ensemble_size") > MAX_ENSEMBLE:
        raise ConfigurationError(f"ensemble_size must be at most {MAX_ENSEMBLE}, but got {state.get('ensemble_size')!r}")
    enqueue = setting(state, "enqueue")
    if enqueue is not None:
        if not isinstance(enqueue, (list, tuple)) or not all(isinstance(c, Mapping) and c for c in enqueue):
            raise ConfigurationError(
                f"enqueue must be a list of configurations {{param: value}}, but got {str(enqueue)[:80]}")
        for config in enqueue:
            if spec is None:
                check_family_params(algorithm, setting(state, "problem_type"), config, what="enqueue")
            else:
                spec.check_params(config, _problem_type_of(spec, state), what="enqueue")
                check_step_values(config, what="enqueue")
    name = setting(state, "study_name")
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise ConfigurationError(f"study_name must be a non-empty string or None, but got {name!r}")
    for key in ("new_study", "warm_start", "trial_cache", "pipeline_search"):
        if not isinstance(setting(state, key), bool):
            raise ConfigurationError(f"{key} must be True or False, but got {state.get(key)!r}")
    n_warm = setting(state, "warm_start_trials")
    if isinstance(n_warm, bool) or not isinstance(n_warm, int) or n_warm < 0:
        raise ConfigurationError(f"warm_start_trials must be an integer >= 0, but got {n_warm!r}")
    check_compare(setting(state, "compare"))
    if check_phases(setting(state, "phases")) > 1 and families:
        raise ConfigurationError(f"phases (narrowing) needs one model family, but got algorithm={algorithm!r}")
    check_multi_settings(objectives=setting(state, "objectives"), problem_type=setting(state, "problem_type"),
                         metric=setting(state, "metric"), pick_rule=setting(state, "pick_rule"),
                         pick_tolerance=setting(state, "pick_tolerance"), sampler=sampler,
                         compare=setting(state, "compare"), patience=setting(state, "patience"))


def _problem_type_of(spec: Any, state: Mapping[str, Any]) -> str:
    """The run's problem type when given and supported by the family, else the family's first."""
    problem_type = setting(state, "problem_type")
    return problem_type if problem_type and spec.supports(problem_type) else next(iter(spec.problem_types))
