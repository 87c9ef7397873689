"""The trials a fresh study starts with: the model's defaults, the user's configs, the history's best
configs and the family's portfolio -- in that order, once per study (F2, F11).

Kept apart from the optimizer loop (:mod:`.optimizer`), which calls :func:`seed_study` under the
study's lock so that many workers starting one study seed it once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import optuna

from .errors import ConfigurationError
from .family_search import FamilySearchObjective, check_family_params
from .objectives import ModelObjective
from .search_space import SearchSpace
from .trial_slots import SEEDED_ATTR
from .types import SOURCE_ATTR

#: the engine's own objectives: seeded with defaults and portfolio, runnable in worker processes
MODEL_OBJECTIVES = (ModelObjective, FamilySearchObjective)


def enqueue_config(study: optuna.Study, params: Mapping[str, Any], *, source: str = "user") -> None:
    """Queue a configuration to be evaluated before the sampler proposes its own (once per params)."""
    study.enqueue_trial(dict(params), user_attrs={SOURCE_ATTR: source}, skip_if_exists=True)


def check_enqueue(objective: Any, enqueue: Sequence[Mapping[str, Any]]) -> None:
    """Refuse user configs the objective would not run as given (a family's unknown params, params
    outside the search space: the trial would never suggest them)."""
    if isinstance(objective, FamilySearchObjective):
        for params in enqueue:
            check_family_params(objective.algorithm, objective.problem_type, params, what="enqueue")
    space = getattr(objective, "search_space", None)
    if isinstance(space, SearchSpace):
        for params in enqueue:
            outside = sorted(set(params) - set(space.names))
            if outside:
                raise ConfigurationError(
                    f"enqueue: {', '.join(map(repr, outside))} not in the search space ({', '.join(space.names)}); "
                    "enqueue values of searched params, or fix the others with fixed_params")


def seed_study(study: optuna.Study, objective: Any, *, n_trials: int | None, enqueue_defaults: bool,
               enqueue: Sequence[Mapping[str, Any]], enqueue_portfolio: bool,
               warm_start: Sequence[Mapping[str, Any]] = ()) -> None:
    """A fresh study gets the defaults, then the ``enqueue`` configs, then the history configs
    (``warm_start``), then the portfolio, as many as ``n_trials`` leaves room for. The user's
    ``enqueue`` configs are queued on every call (once per params). Run it under the study's lock."""
    seeded = bool(study.user_attrs.get(SEEDED_ATTR))
    fresh = not seeded and not study.get_trials(deepcopy=False)
    model = isinstance(objective, MODEL_OBJECTIVES)
    # a family search has one defaults trial per family, cheapest first
    defaults = ((objective.defaults_trials() if isinstance(objective, FamilySearchObjective)
                 else [objective.defaults_trial_params()]) if fresh and enqueue_defaults and model else [])
    for params in defaults:
        study.enqueue_trial(params, user_attrs={SOURCE_ATTR: "defaults"})
    for params in enqueue:
        enqueue_config(study, params)
    seeded_history = 0
    if fresh:
        room = None if n_trials is None else max(0, n_trials - len(defaults) - len(enqueue))
        for params in warm_start[:room]:
            enqueue_config(study, params, source="history")
            seeded_history += 1
    if fresh and enqueue_portfolio and model:
        room = None if n_trials is None else max(0, n_trials - len(defaults) - len(enqueue) - seeded_history)
        for config in objective.portfolio_trial_params()[:room]:
            enqueue_config(study, config, source="portfolio")
    if not seeded:
        study.set_user_attr(SEEDED_ATTR, True)
