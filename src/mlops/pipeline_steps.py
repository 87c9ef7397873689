"""Pipeline search (F9): the optional preprocessing steps searched together with the model, as data.

A trial's params may configure the steps between the raw features and the estimator; such a param is
named ``step__param``:

==========  ===============================================  ==========================================
step        params (values)                                  which families have it
==========  ===============================================  ==========================================
imputer     ``imputer__strategy`` (median, mean,              families that do not take missing values
            most_frequent, constant),                         (every family but LightGBM, XGBoost and
            ``imputer__add_indicator`` (True/False)           HistGradientBoosting, which take NaN as is)
scaler      ``scaler__method`` (standard, robust, minmax,     scale-sensitive families (linear models,
            none)                                             SVM, KNN, MLP, one-class SVM, LOF)
select      ``select__method`` (none, k_best, percentile),    every family of a supervised problem (the
            ``select__k`` (int >= 1, features kept),          scores are univariate F-tests against the
            ``select__percentile`` (0 < p <= 100)             target; anomaly detection has none)
==========  ===============================================  ==========================================

The steps run in this order after the family's fixed encoding (one-hot for categories; see
:mod:`.preprocessing`): impute and scale the numeric columns, then keep the selected features. Trees
have no scaler (a monotone rescaling of a column changes no split).

**When steps are searched.** ``pipeline=True`` (``--pipeline-search``) adds the family's default
pipeline space (:func:`pipeline_space`): ``scaler__method`` over all four choices where the family has
a scaler, ``imputer__strategy`` over median/mean/most_frequent where it imputes, and ``select__method``
with ``select__k`` in [1, number of input columns] (when ``k_best``) and ``select__percentile`` in
10..90 (when ``percentile``) -- a step the caller's search space already mentions keeps the caller's
specs. Without ``pipeline=True`` a step is searched (or fixed) only when the search space (or the
fixed params) name its params. The defaults of the steps (:func:`step_defaults`) are what the
preprocessing does without pipeline search -- median imputation, standard scaling for scale-sensitive
families, no selection -- so the defaults trial of a pipeline search is the plain defaults trial.

A ``step__param`` that no step of the family takes is refused before any trial runs
(:func:`check_step_names`, called by :meth:`ModelSpec.check_params`), naming the param and what the
step takes; values are checked by :func:`check_step_space` / :func:`check_step_values`.

This module is data and checks only (no scikit-learn); the transformers are built by
:func:`~src.mlops.preprocessing.build_preprocessor`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from .errors import SearchSpaceError
from .problems import ANOMALY, normalize_problem_type

if TYPE_CHECKING:  # pragma: no cover
    from .models import ModelSpec
    from .search_space import SearchSpace

__all__ = [
    "SEP",
    "STEPS",
    "SCALER_METHODS",
    "SELECT_METHODS",
    "IMPUTER_STRATEGIES",
    "is_step_param",
    "split_step_params",
    "steps_of",
    "step_param_names",
    "check_step_names",
    "check_step_values",
    "check_step_space",
    "step_defaults",
    "pipeline_space",
    "with_pipeline_space",
]

SEP = "__"
SCALER_METHODS = ("standard", "robust", "minmax", "none")
SELECT_METHODS = ("none", "k_best", "percentile")
IMPUTER_STRATEGIES = ("median", "mean", "most_frequent", "constant")
#: step -> param -> what a value must be (a tuple of choices, or a kind checked by _check_value)
STEPS: dict[str, dict[str, Any]] = {
    "imputer": {"strategy": IMPUTER_STRATEGIES, "add_indicator": (False, True)},
    "scaler": {"method": SCALER_METHODS},
    "select": {"method": SELECT_METHODS, "k": "int>=1", "percentile": "0<p<=100"},
}
_WHY_NOT = {
    "imputer": "it takes missing values as they are",
    "scaler": "a tree-based family: rescaling a column changes none of its splits",
    "select": "anomaly detection has no target to score features against",
}


def is_step_param(name: Any) -> bool:
    """True for a ``step__param`` name of a known step (``scaler__method``, ``select__k`` ...)."""
    step, sep, param = str(name).partition(SEP)
    return bool(sep and param) and step in STEPS


def split_step_params(params: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(model params, step params)`` of a merged param dict."""
    model, steps = {}, {}
    for k, v in params.items():
        (steps if is_step_param(k) else model)[k] = v
    return model, steps


def steps_of(spec: ModelSpec, problem_type: str) -> tuple[str, ...]:
    """The steps the family ``spec`` has for ``problem_type`` (see the module docstring)."""
    pt = normalize_problem_type(problem_type)
    out = []
    if not spec.native_categorical:
        out.append("imputer")
    if spec.needs_scaling:
        out.append("scaler")
    if pt != ANOMALY:
        out.append("select")
    return tuple(out)


def step_param_names(spec: ModelSpec, problem_type: str) -> list[str]:
    """Every ``step__param`` the family takes for ``problem_type``."""
    return [f"{s}{SEP}{p}" for s in steps_of(spec, problem_type) for p in STEPS[s]]


def check_step_names(spec: ModelSpec, problem_type: str, names: Iterable[str], *, what: str = "search space") -> None:
    """Refuse a ``step__param`` of a step the family does not have, or a param the step does not
    take, naming the param and what the step (or the family's pipeline) takes."""
    have = steps_of(spec, problem_type)
    for name in sorted({str(n) for n in names if is_step_param(n)}):
        step, _, param = name.partition(SEP)
        if step not in have:
            takes = ", ".join(step_param_names(spec, problem_type)) or "none"
            raise SearchSpaceError(
                f"{what}: {name!r} -- {spec.name} has no {step} step for {normalize_problem_type(problem_type)} "
                f"({_WHY_NOT[step]}); its pipeline steps take: {takes}")
        if param not in STEPS[step]:
            raise SearchSpaceError(
                f"{what}: {name!r} -- the {step} step takes "
                f"{', '.join(f'{step}{SEP}{p}' for p in STEPS[step])}, not {param!r}")


def _check_value(name: str, value: Any, what: str) -> None:
    step, _, param = name.partition(SEP)
    rule = STEPS[step][param]
    if isinstance(rule, tuple):
        ok = any(value is c or (type(value) is type(c) and value == c) for c in rule)
        if not ok:
            raise SearchSpaceError(f"{what}: {name} must be one of {list(rule)}, but got {value!r}")
    elif rule == "int>=1":
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise SearchSpaceError(f"{what}: {name} (features kept) must be an integer >= 1, but got {value!r}")
    elif isinstance(value, bool) or not isinstance(value, (int, float)) or not (0 < value <= 100) \
            or not math.isfinite(value):
        raise SearchSpaceError(f"{what}: {name} must be a number with 0 < {name} <= 100, but got {value!r}")


def check_step_values(params: Mapping[str, Any], *, what: str = "fixed params") -> None:
    """Refuse a step param's value the step cannot use (e.g. ``scaler__method="zscore"``)."""
    for name, value in params.items():
        step, _, param = str(name).partition(SEP)
        if is_step_param(name) and param in STEPS[step]:
            _check_value(str(name), value, what)


def _tail(name: str) -> str:
    """``step__param`` of a name, also when a family prefixes it (``svm__scaler__method``)."""
    parts = str(name).split(SEP)
    return SEP.join(parts[-2:]) if len(parts) >= 2 else str(name)


def check_step_space(space: SearchSpace, *, what: str = "search space") -> None:
    """Refuse step params whose range holds values the step cannot use (a categorical's choices, an
    int/float range's bounds); family-prefixed names (``<family>__scaler__method``) are checked too."""
    for p in space:
        tail = _tail(p.name)
        step, _, param = tail.partition(SEP)
        rule = STEPS.get(step, {}).get(param) if is_step_param(tail) else None
        if rule is None:
            continue
        if p.type != "categorical" and isinstance(rule, tuple):
            raise SearchSpaceError(f"{what}: {p.name} must be a categorical over {list(rule)}, not a {p.type} range")
        values = list(p.choices or ()) if p.type == "categorical" else [p.low, p.high]
        for v in values:
            _check_value(tail, int(v) if p.type == "int" else v, f"{what} ({p.name})")


def step_defaults(spec: ModelSpec, problem_type: str, names: Iterable[str]) -> dict[str, Any]:
    """The values of the family's steps when a search names some of them (``names``: the space's and
    the fixed params' names): what the preprocessing does without pipeline search. Empty when no step
    param is named (the params of a run without pipeline search stay as they were). A selection
    whose method is not named but whose ``k`` (``percentile``) is, selects by ``k_best``
    (``percentile``)."""
    named = {str(n) for n in names if is_step_param(n)}
    if not named:
        return {}
    have = steps_of(spec, problem_type)
    out: dict[str, Any] = {}
    if "imputer" in have:
        out.update({"imputer__strategy": "median", "imputer__add_indicator": False})
    if "scaler" in have:
        out["scaler__method"] = "standard"
    if "select" in have:
        method = "none"
        if "select__method" not in named:
            method = "k_best" if "select__k" in named else "percentile" if "select__percentile" in named else "none"
        out["select__method"] = method
    return out


def pipeline_space(spec: ModelSpec, problem_type: str, n_features: int) -> dict[str, Any]:
    """The family's default pipeline space (dict format; see the module docstring)."""
    have = steps_of(spec, problem_type)
    out: dict[str, Any] = {}
    if "imputer" in have:
        out["imputer__strategy"] = {"type": "categorical", "choices": ["median", "mean", "most_frequent"]}
    if "scaler" in have:
        out["scaler__method"] = {"type": "categorical", "choices": list(SCALER_METHODS)}
    if "select" in have and n_features > 1:
        out["select__method"] = {"type": "categorical", "choices": list(SELECT_METHODS)}
        out["select__k"] = {"type": "int", "low": 1, "high": int(n_features), "when": {"select__method": ["k_best"]}}
        out["select__percentile"] = {"type": "int", "low": 10, "high": 90, "step": 10,
                                     "when": {"select__method": ["percentile"]}}
    return out


def with_pipeline_space(space: SearchSpace, spec: ModelSpec, problem_type: str, n_features: int) -> SearchSpace:
    """``space`` plus the default pipeline space of every step it does not mention already."""
    mentioned = {p.name.partition(SEP)[0] for p in space if is_step_param(p.name)}
    extra = {k: v for k, v in pipeline_space(spec, problem_type, n_features).items()
             if k.partition(SEP)[0] not in mentioned}
    return space.with_overrides(extra) if extra else space
