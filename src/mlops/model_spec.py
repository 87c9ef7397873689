"""What the engine knows about one model family, as data: :class:`ModelSpec` (estimators, defaults,
search space, portfolio) and how its params reach the estimator (checks, search-friendly encodings).
The families themselves are declared in :mod:`.models`."""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import SearchSpaceError, UnknownModelError
from .pipeline_steps import check_step_names, is_step_param, split_step_params, step_param_names
from .problems import normalize_problem_type
from .search_space import SearchSpace, parse_search_space

__all__ = ["ModelSpec"]


@dataclass(frozen=True)
class ModelSpec:
    """Everything the engine needs to know about one model family, as data.

    - ``estimators``: problem type -> "module:Class" (imported lazily).
    - ``defaults``: the params trial 0 evaluates (library defaults, made explicit, plus quiet/seed
      settings); ``problem_defaults`` adds per-problem ones.
    - ``space``: the default search space (dict format); ``problem_space`` adds per-problem params.
    - ``kind``: "lightgbm" | "xgboost" (per-round reports + early stopping), "sklearn", "anomaly".
    - ``native_categorical``: takes pandas ``category`` columns and NaN as they are; otherwise the
      preprocessing imputes and one-hot encodes. ``needs_scaling``: standardize numeric columns.
    """

    name: str
    aliases: tuple[str, ...]
    estimators: Mapping[str, str]
    defaults: Mapping[str, Any]
    space: Mapping[str, Any]
    kind: str = "sklearn"
    native_categorical: bool = False
    needs_scaling: bool = False
    seed_param: str | None = "random_state"
    n_jobs_param: str | None = None
    problem_defaults: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    problem_space: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    description: str = ""
    #: robust configurations tried right after the defaults (source "portfolio"), before the
    #: sampler's own proposals: on a short budget the sampler's first trials are random, and these
    #: known-good settings give it a strong start. Keys outside the search space are ignored.
    portfolio: tuple[Mapping[str, Any], ...] = ()
    #: params of the default space that only act on ``category`` features: left out of the search
    #: when the data has none (:class:`~src.mlops.objectives.ModelObjective`).
    categorical_params: tuple[str, ...] = ()

    @property
    def problem_types(self) -> tuple[str, ...]:
        return tuple(self.estimators)

    @property
    def is_boosting(self) -> bool:
        return self.kind in ("lightgbm", "xgboost")

    def supports(self, problem_type: str) -> bool:
        return normalize_problem_type(problem_type) in self.estimators

    def _check(self, problem_type: str) -> str:
        pt = normalize_problem_type(problem_type)
        if pt not in self.estimators:
            from .models import list_models  # the registry is built from specs: imported when needed

            raise UnknownModelError(
                f"model {self.name!r} does not support problem type {pt!r}; it supports "
                f"{list(self.estimators)}. Models for {pt}: {list_models(pt)}"
            )
        return pt

    def estimator_class(self, problem_type: str) -> type:
        module, _, cls = self.estimators[self._check(problem_type)].partition(":")
        return getattr(importlib.import_module(module), cls)

    def default_params(self, problem_type: str, *, seed: int | None = None) -> dict[str, Any]:
        """The family's defaults for ``problem_type`` (what trial 0 evaluates)."""
        pt = self._check(problem_type)
        params = dict(self.defaults)
        params.update(self.problem_defaults.get(pt, {}))
        if self.seed_param and seed is not None:
            params[self.seed_param] = seed
        return params

    def search_space(self, problem_type: str) -> SearchSpace:
        pt = self._check(problem_type)
        spec = dict(self.space)
        spec.update(self.problem_space.get(pt, {}))
        return parse_search_space(spec)

    def documented_params(self, problem_type: str) -> frozenset[str]:
        """The estimator's constructor params and the family's own names (what an error lists)."""
        names = set(self.estimator_class(problem_type)().get_params(deep=False))
        names |= set(self.defaults) | set(self.space) | _ENCODINGS
        for extra in (*self.problem_defaults.values(), *self.problem_space.values()):
            names |= set(extra)
        return frozenset(names)

    def accepted_params(self, problem_type: str) -> frozenset[str]:
        """The param names a search space or a fixed config may use for this family: the documented
        ones and, for LightGBM, every native parameter and alias (its scikit-learn wrapper passes
        them on)."""
        names = self.documented_params(problem_type)
        return names | _lightgbm_native_params() if self.kind == "lightgbm" else names

    def check_params(self, names: Iterable[str], problem_type: str, *, what: str = "search space") -> None:
        """Refuse param names the family's estimator does not take (a misspelling would otherwise
        vary a setting the library ignores), naming the unknown ones and the accepted ones. Pipeline
        params ``step__param`` (:mod:`.pipeline_steps`) must name a step of this family and a param
        of that step."""
        names = [str(n) for n in names]
        check_step_names(self, problem_type, names, what=what)
        unknown = sorted(set(n for n in names if not is_step_param(n)) - self.accepted_params(problem_type))
        if unknown:
            hint = " (and LightGBM's native parameter names and aliases)" if self.kind == "lightgbm" else ""
            steps = step_param_names(self, problem_type)
            raise SearchSpaceError(
                f"{what}: {self.name} does not take {', '.join(map(repr, unknown))}; it takes "
                f"{', '.join(sorted(self.documented_params(problem_type)))}{hint}"
                + (f"; its pipeline steps take {', '.join(steps)}" if steps else "")
            )

    def build(self, params: Mapping[str, Any], problem_type: str, *, n_threads: int | None = None) -> Any:
        """An unfitted estimator for ``params`` (already merged with the defaults; pipeline params
        ``step__param`` configure the preprocessing, not the estimator, and are left out here)."""
        p = _translate(self, split_step_params(params)[0])
        if self.n_jobs_param and n_threads is not None and self.n_jobs_param not in params:
            p[self.n_jobs_param] = n_threads
        return self.estimator_class(problem_type)(**p)


#: search-friendly encodings that ``_translate`` turns into estimator params.
_ENCODINGS = frozenset({"dart_rounds"})


def _lightgbm_native_params() -> frozenset[str]:
    """LightGBM's own parameter names and their aliases, from LightGBM's alias table (a private
    helper of lightgbm.basic; if a release drops it, only the scikit-learn names are accepted)."""
    try:
        from lightgbm.basic import _ConfigAliases

        table = _ConfigAliases._get_all_param_aliases()
    except (ImportError, AttributeError):  # pragma: no cover - depends on the LightGBM release
        return frozenset()
    names = set(table)
    for aliases in table.values():
        names |= set(aliases)
    return frozenset(names)


def _translate(spec: ModelSpec, p: dict[str, Any]) -> dict[str, Any]:
    """Map search-friendly param encodings onto what the estimator accepts."""
    dart_rounds = p.pop("dart_rounds", None)
    if spec.kind == "lightgbm" and p.get("boosting_type") == "dart" and dart_rounds is not None:
        p["n_estimators"] = dart_rounds  # dart cannot stop early: its round count is searched apart
    if spec.kind == "lightgbm" and p.get("boosting_type") == "goss":
        # LightGBM 4: GOSS is a data-sampling strategy on top of gbdt, and it excludes bagging.
        p["boosting_type"] = "gbdt"
        p["data_sample_strategy"] = "goss"
        p.pop("bagging_fraction", None)
        p.pop("bagging_freq", None)
    if "hidden_layer_sizes" in p and isinstance(p["hidden_layer_sizes"], str):
        p["hidden_layer_sizes"] = tuple(int(x) for x in p["hidden_layer_sizes"].split("-"))
    return p


