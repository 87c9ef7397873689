"""The trial cache (SPEC F12): a configuration already evaluated on the same data, by the same rules,
is not trained again -- in the same study or in any earlier one.

A trial's result is stored under a key that hashes everything the result depends on:

* the model family, problem type and metric;
* the evaluation scheme (holdout or CV folds, repeats, strategy, the seed that draws the folds) and
  the early-stopping patience;
* the content of the tuning data (:func:`~src.mlops.study_recipe.data_fingerprint`: train, and
  validation for a holdout);
* the versions of the libraries that fit and score (LightGBM, XGBoost, scikit-learn, numpy);
* the params actually fitted -- the model's defaults (with their seed) updated by the trial's params,
  after the search space's rounding (an ``int`` param as an int, a stepped param on its step, floats to
  12 significant digits, so a JSON round trip cannot tell two trials apart).

Change any of them and the key changes: a result is never reused across data, schemes, metrics or
library versions. A hit becomes a COMPLETE trial without calling the objective: its value, its user
attributes (fit seconds, fold scores, boosting round count) and its intermediate values are those of
the stored trial, and it is marked with the user attribute ``cached`` (``cached_from`` names the
trial it came from). Only COMPLETE single-objective trials are stored; the first result stored under a
key stays (two workers finishing the same configuration at once both train: a miss simply trains).

The store is the history database (:class:`~src.mlops.persistence.HistoryRepository` implements
:class:`TrialCacheStore`, table ``ml_hpo_trial_cache``) or :class:`InMemoryTrialCacheStore`. The cache
is best-effort: a store that fails is logged and treated as a miss, never as a failed trial.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import importlib.metadata
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import optuna
from optuna.trial import FrozenTrial

from .jsonutil import json_dumps, to_jsonable
from .search_space import SearchSpace
from .types import FAIL_REASON_ATTR, SOURCE_ATTR

__all__ = [
    "CACHED_ATTR",
    "CACHED_FROM_ATTR",
    "CachedTrial",
    "InMemoryTrialCacheStore",
    "TrialCache",
    "TrialCacheStore",
    "canonical_params",
    "library_versions",
]

log = logging.getLogger("src.mlops.trial_cache")

#: user attribute of a trial served from the cache (``True``)
CACHED_ATTR = "cached"
#: user attribute naming the trial a cached result came from: ``"<study>#<number>"``
CACHED_FROM_ATTR = "cached_from"
#: the distributions whose versions are part of the key
LIBRARIES = ("lightgbm", "xgboost", "scikit-learn", "numpy")
#: user attributes that describe a trial's run, not its result: never copied from the cache
_RUN_ATTRS = frozenset({SOURCE_ATTR, FAIL_REASON_ATTR, CACHED_ATTR, CACHED_FROM_ATTR, "worker_id", "retry_of"})


@functools.cache
def library_versions() -> dict[str, str]:
    """``{distribution: version}`` of :data:`LIBRARIES` (``"absent"`` for one not installed)."""
    out = {}
    for name in LIBRARIES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


@dataclass(frozen=True)
class CachedTrial:
    """One stored result."""

    key: str
    value: float
    params: dict[str, Any]
    user_attrs: dict[str, Any] = field(default_factory=dict)
    intermediate_values: dict[int, float] = field(default_factory=dict)
    #: what the key was made of, without the params (fingerprint, scheme, metric, versions): for people
    key_parts: dict[str, Any] = field(default_factory=dict)
    study_name: str | None = None
    trial_number: int | None = None


@runtime_checkable
class TrialCacheStore(Protocol):
    """Where cached results live. Both history repositories implement it."""

    async def get_cached_trial(self, key: str) -> CachedTrial | None:
        """The result stored under ``key``, or ``None``."""

    async def put_cached_trial(self, entry: CachedTrial) -> None:
        """Store ``entry`` unless its key is stored already (the first result stays)."""


class InMemoryTrialCacheStore:
    """A :class:`TrialCacheStore` in a dict (runs without a database; the in-memory repository)."""

    def __init__(self) -> None:
        self._entries: dict[str, CachedTrial] = {}

    def __len__(self) -> int:
        return len(self._entries)

    async def get_cached_trial(self, key: str) -> CachedTrial | None:
        found = self._entries.get(key)
        return None if found is None else copy.deepcopy(found)

    async def put_cached_trial(self, entry: CachedTrial) -> None:
        self._entries.setdefault(entry.key, copy.deepcopy(entry))


def _significant(x: float, digits: int = 12) -> float:
    if x == 0 or not math.isfinite(x):
        return x
    return round(x, digits - 1 - int(math.floor(math.log10(abs(x)))))


def canonical_params(space: SearchSpace, params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` as the search space rounds them: ints as ints, stepped values on their step, floats
    to 12 significant digits (params outside the space are kept as JSON)."""
    out: dict[str, Any] = {}
    for name, value in params.items():
        spec = space[name] if name in space else None
        if spec is not None and spec.type != "categorical" and isinstance(value, (int, float)) \
                and not isinstance(value, bool):
            if spec.step is not None:
                value = spec.low + round((value - spec.low) / spec.step) * spec.step
            value = int(round(value)) if spec.type == "int" else _significant(float(value))
        elif isinstance(value, float):
            value = _significant(value)
        out[str(name)] = value
    return to_jsonable(out)


class TrialCache:
    """The cache of one objective: a store and the identity of everything a result depends on.

    Built by :meth:`for_objective`; the optimizer calls :meth:`lookup` before a trial's fit and
    :meth:`store` after a COMPLETE trial. ``hits``, ``stored`` and ``errors`` count what happened.
    """

    def __init__(self, store: TrialCacheStore, *, identity: Mapping[str, Any], space: SearchSpace,
                 defaults: Mapping[str, Any]) -> None:
        self.store = store
        self.identity = to_jsonable(dict(identity))
        self.space = space
        self.defaults = dict(defaults)
        self.hits = 0
        self.stored = 0
        self.errors = 0

    @classmethod
    def for_objective(cls, store: TrialCacheStore, objective: Any, *, data_fingerprint: str) -> TrialCache:
        """The cache of a :class:`~src.mlops.objectives.ModelObjective` on data ``data_fingerprint``."""
        identity = {
            "algorithm": objective.spec.name,
            "problem_type": objective.problem_type,
            "metric": objective.metric.name,
            "scheme": objective.scheme,
            "cv_strategy": objective.cv_strategy if objective.cv is not None else None,
            "fold_seed": objective.seed if objective.cv is not None else None,
            "early_stopping_rounds": objective.early_stopping_rounds,
            "data": data_fingerprint,
            "libraries": library_versions(),
        }
        return cls(store, identity=identity, space=objective.search_space, defaults=objective.default_params)

    def key(self, params: Mapping[str, Any]) -> str:
        """The key of a trial with (sampled) ``params``: the identity and the fitted params, hashed."""
        fitted = canonical_params(self.space, {**self.defaults, **dict(params)})
        return hashlib.sha256(json_dumps({"identity": self.identity, "params": fitted}).encode()).hexdigest()

    async def lookup(self, params: Mapping[str, Any]) -> CachedTrial | None:
        """The stored result of ``params``, or ``None`` (also when the store fails)."""
        try:
            found = await self.store.get_cached_trial(self.key(params))
        except Exception as e:  # noqa: BLE001 - the cache is best-effort: a miss trains
            self.errors += 1
            log.warning("trial cache: lookup failed (%s: %s); the trial is trained", type(e).__name__, e)
            return None
        if found is not None:
            self.hits += 1
        return found

    @staticmethod
    def apply(trial: optuna.Trial, hit: CachedTrial) -> None:
        """Give ``trial`` the stored result's attributes and intermediate values (before it is told)."""
        if len(trial.study.directions) == 1:
            for step in sorted(hit.intermediate_values):
                value = hit.intermediate_values[step]
                if value is not None and math.isfinite(value):
                    trial.report(float(value), int(step))
        for k, v in hit.user_attrs.items():
            if k not in _RUN_ATTRS:
                trial.set_user_attr(k, v)
        trial.set_user_attr(CACHED_FROM_ATTR, f"{hit.study_name}#{hit.trial_number}")
        trial.set_user_attr(CACHED_ATTR, True)  # last: a trial that failed to get here is trained

    async def store_trial(self, study_name: str, trial: FrozenTrial) -> None:
        """Store a COMPLETE single-objective trial that was trained (not one served from the cache)."""
        if (trial.state != optuna.trial.TrialState.COMPLETE or trial.values is None or len(trial.values) != 1
                or trial.user_attrs.get(CACHED_ATTR) or not math.isfinite(trial.values[0])):
            return
        entry = CachedTrial(
            key=self.key(trial.params), value=float(trial.values[0]), params=to_jsonable(dict(trial.params)),
            user_attrs=to_jsonable({k: v for k, v in trial.user_attrs.items() if k not in _RUN_ATTRS}),
            intermediate_values={int(k): float(v) for k, v in trial.intermediate_values.items()},
            key_parts=self.identity, study_name=study_name, trial_number=trial.number)
        try:
            await self.store.put_cached_trial(entry)
            self.stored += 1
        except Exception as e:  # noqa: BLE001 - the cache is best-effort
            self.errors += 1
            log.warning("trial cache: could not store trial %d (%s: %s)", trial.number, type(e).__name__, e)
