"""Search-space specs: parse, validate, serialize, sample, and narrow.

A space is data, converted once into Optuna distributions (never ``trial.suggest_*`` hard-coded per
model). Accepted input, per parameter::

    {"type": "float", "low": 1e-3, "high": 1e-1, "log": True}
    {"type": "int", "low": 10, "high": 200, "step": 10}
    {"type": "categorical", "choices": ["gbdt", "dart", "goss"]}
    {"type": "float", "low": 0.0, "high": 0.2, "when": {"boosting_type": ["dart"]}}

and the tuple shorthand::

    ("float", 1e-3, 1e-1, "log")
    ("int", 10, 200)                       # optional 4th number: step
    ("categorical", ["a", "b"])
    ("int", 10, 200, "when", "algorithm", "svm")       # value or list of values

A conditional param is sampled only when every parent named in ``when`` took one of the listed
values (parents are sampled first). Invalid specs raise :class:`SearchSpaceError` naming the
param and the rule before any trial runs.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from .errors import SearchSpaceError

__all__ = ["ParamSpec", "SearchSpace", "parse_search_space"]

_TYPES = ("int", "float", "categorical")
_CHOICE_TYPES = (type(None), bool, int, float, str)


@dataclass(frozen=True)
class ParamSpec:
    """One hyperparameter: its type, range or choices, and the condition that activates it."""

    name: str
    type: str
    low: float | int | None = None
    high: float | int | None = None
    step: float | int | None = None
    log: bool = False
    choices: tuple[Any, ...] | None = None
    when: dict[str, tuple[Any, ...]] = field(default_factory=dict)

    # -- conversion -------------------------------------------------------------------------
    def to_distribution(self) -> BaseDistribution:
        if self.type == "categorical":
            return CategoricalDistribution(list(self.choices or ()))
        if self.type == "int":
            return IntDistribution(int(self.low), int(self.high), log=self.log, step=int(self.step or 1))
        return FloatDistribution(float(self.low), float(self.high), log=self.log, step=self.step)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"type": self.type}
        if self.type == "categorical":
            d["choices"] = list(self.choices or ())
        else:
            d["low"], d["high"] = self.low, self.high
            if self.step is not None:
                d["step"] = self.step
            if self.log:
                d["log"] = True
        if self.when:
            d["when"] = {k: list(v) for k, v in self.when.items()}
        return d

    def contains(self, value: Any) -> bool:
        """True when ``value`` is a point of this param's distribution."""
        if self.type == "categorical":
            return any(_same_choice(value, c) for c in self.choices or ())
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.type == "int" and float(value) != int(value):
            return False
        if not (self.low <= value <= self.high):
            return False
        if self.step is not None:
            k = (value - self.low) / self.step
            return math.isclose(k, round(k), abs_tol=1e-8)
        return True

    def is_active(self, params: Mapping[str, Any]) -> bool:
        return all(
            p in params and any(_same_choice(params[p], v) for v in values) for p, values in self.when.items()
        )


def _suggest(trial: optuna.Trial, p: ParamSpec) -> Any:
    if p.type == "categorical":
        return trial.suggest_categorical(p.name, list(p.choices or ()))
    if p.type == "int":
        return trial.suggest_int(p.name, int(p.low), int(p.high), step=int(p.step or 1), log=p.log)
    return trial.suggest_float(p.name, float(p.low), float(p.high), step=p.step, log=p.log)


def _same_choice(a: Any, b: Any) -> bool:
    # 1 == True in Python; a categorical of [True, 1] must not confuse them.
    return type(a) is type(b) and a == b if isinstance(a, bool) or isinstance(b, bool) else a == b


class SearchSpace:
    """An ordered, validated collection of :class:`ParamSpec` (parents before their children)."""

    def __init__(self, params: Iterable[ParamSpec] = ()) -> None:
        self._params: dict[str, ParamSpec] = {}
        for p in params:
            if p.name in self._params:
                raise SearchSpaceError(f"param {p.name!r} is defined twice; each name must appear once")
            self._params[p.name] = p
        self._params = {p.name: p for p in _topological(self._params)}
        self._validate_conditions()

    # -- container protocol -------------------------------------------------------------------
    def __iter__(self):
        return iter(self._params.values())

    def __len__(self) -> int:
        return len(self._params)

    def __contains__(self, name: object) -> bool:
        return name in self._params

    def __getitem__(self, name: str) -> ParamSpec:
        return self._params[name]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SearchSpace) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"SearchSpace({list(self._params)})"

    @property
    def names(self) -> list[str]:
        return list(self._params)

    @property
    def is_conditional(self) -> bool:
        return any(p.when for p in self)

    # -- serialization ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {name: p.to_dict() for name, p in self._params.items()}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=False)

    @classmethod
    def from_json(cls, text: str) -> SearchSpace:
        return parse_search_space(json.loads(text))

    def distributions(self) -> dict[str, BaseDistribution]:
        return {name: p.to_distribution() for name, p in self._params.items()}

    # -- sampling -----------------------------------------------------------------------------
    def active_params(self, values: Mapping[str, Any]) -> list[ParamSpec]:
        """Params that are active given the (partial) assignment ``values``, in sampling order."""
        active: list[ParamSpec] = []
        chosen: dict[str, Any] = {}
        for p in self:
            if p.is_active(chosen):
                active.append(p)
                if p.name in values:
                    chosen[p.name] = values[p.name]
        return active

    def sample(self, trial: optuna.Trial, *, only: Iterable[str] | None = None) -> dict[str, Any]:
        """Suggest every active param through ``trial``; returns the sampled values.

        ``only`` restricts sampling to those names (used for the defaults trial: a param whose
        default lies outside the space is left out of the trial instead of being replaced).
        """
        allowed = None if only is None else set(only)
        values: dict[str, Any] = {}
        for p in self:
            if not p.is_active(values):
                continue
            if allowed is not None and p.name not in allowed:
                continue
            values[p.name] = _suggest(trial, p)
        return values

    def project(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The subset of ``params`` that are active and inside the space (for enqueueing)."""
        out: dict[str, Any] = {}
        for p in self:
            if p.is_active(out) and p.name in params and p.contains(params[p.name]):
                out[p.name] = params[p.name]
        return out

    # -- adaptive narrowing (F13) ---------------------------------------------------------------
    def narrowed(self, best: Mapping[str, Any], *, shrink: float = 0.5, margin: float = 0.0) -> SearchSpace:
        """A copy whose numeric ranges shrink around ``best`` (by ``shrink`` of their width).

        A best value sitting on a bound (within ``margin`` of the width, in log space for a log
        range) widens that side instead (the optimum may lie beyond) -- but never past what the
        range implies is valid: not below 0 for a range from 0 or above, not below half of a
        positive lower bound (nor below 2 for an int from 2, nor below 1 for an int from 1), and
        not above 1 for a share (a float range in [0, 1] ending at 1, e.g. ``feature_fraction``).
        Categoricals, conditions and params absent from ``best`` are unchanged.
        """
        if not 0 < shrink < 1:
            raise SearchSpaceError(f"shrink must be in (0, 1), got {shrink}")
        if not 0 <= margin < 0.5:
            raise SearchSpaceError(f"margin must be in [0, 0.5), got {margin}")
        new: list[ParamSpec] = []
        for p in self:
            value = best.get(p.name)
            if p.type == "categorical" or isinstance(value, bool) or not isinstance(value, (int, float)):
                new.append(p)
                continue
            new.append(_narrow_one(p, float(value), shrink, margin))
        return SearchSpace(new)

    def with_overrides(self, overrides: Mapping[str, Any]) -> SearchSpace:
        """This space with params replaced/added from ``overrides`` (a spec mapping; None removes)."""
        merged = {p.name: p.to_dict() for p in self}
        for name, spec in overrides.items():
            if spec is None:
                merged.pop(name, None)
            else:
                merged[name] = spec
        return parse_search_space(merged)

    def _validate_conditions(self) -> None:
        for p in self:
            for parent, values in p.when.items():
                if parent == p.name:
                    raise SearchSpaceError(f"param {p.name!r}: a condition cannot refer to the param itself")
                if parent not in self._params:
                    raise SearchSpaceError(
                        f"param {p.name!r}: condition on unknown param {parent!r}; "
                        f"known params: {sorted(self._params)}"
                    )
                par = self._params[parent]
                if not values:
                    raise SearchSpaceError(f"param {p.name!r}: condition on {parent!r} lists no values")
                for v in values:
                    if not par.contains(v):
                        allowed = list(par.choices) if par.type == "categorical" else f"[{par.low}, {par.high}]"
                        raise SearchSpaceError(
                            f"param {p.name!r}: condition value {v!r} is not a possible value of "
                            f"{parent!r} (possible: {allowed})"
                        )


def _floor_of(p: ParamSpec) -> float:
    """The lowest value a widened lower bound of ``p`` may take (see :meth:`SearchSpace.narrowed`)."""
    low = float(p.low)
    if low <= 0:
        return low  # a range from 0 (or below) has nothing valid below it worth trying
    if p.type == "int":
        return max(math.ceil(low / 2), min(low, 2.0))
    return low / 2


def _ceiling_of(p: ParamSpec) -> float:
    """The highest value a widened upper bound of ``p`` may take."""
    low, high = float(p.low), float(p.high)
    if p.type == "float" and low >= 0 and high == 1.0:
        return high  # a share such as feature_fraction has nothing above 1
    return high * 2 if high > 0 else high


def _narrow_one(p: ParamSpec, best: float, shrink: float, margin: float = 0.0) -> ParamSpec:
    lo, hi = float(p.low), float(p.high)
    to = (lambda v: math.log(v)) if p.log else (lambda v: v)
    back = (lambda v: math.exp(v)) if p.log else (lambda v: v)
    a, b, x = to(lo), to(hi), to(min(max(best, lo), hi))
    half = (b - a) * shrink / 2
    near = margin * (b - a)
    floor, ceiling = to(_floor_of(p)), to(_ceiling_of(p))  # a log range has low > 0, so its floor too
    if math.isclose(x, a) or x - a < near:  # best on the lower bound: widen below (within the floor)
        new_a, new_b = min(a, max(x - half, floor)), min(b, x + half)
    elif math.isclose(x, b) or b - x < near:  # on the upper bound: widen above (within the ceiling)
        new_a, new_b = max(a, x - half), max(b, min(x + half, ceiling))
    else:
        new_a, new_b = max(a, x - half), min(b, x + half)
    nlo, nhi = back(new_a), back(new_b)
    if p.type == "int":
        nlo, nhi = math.floor(nlo), math.ceil(nhi)
        if p.log:
            nlo = max(nlo, 1)
        step = int(p.step or 1)
        nlo = int(p.low) + step * math.floor((nlo - int(p.low)) / step)
        while nlo < _floor_of(p):  # the step grid may fall below the floor
            nlo += step
        nhi = nlo + step * max(1, math.ceil((nhi - nlo) / step))
    elif p.step is not None:
        nlo = float(p.low) + p.step * math.floor((nlo - float(p.low)) / p.step)
        while nlo < _floor_of(p) - 1e-12:
            nlo += p.step
        nhi = nlo + p.step * max(1, math.ceil((nhi - nlo) / p.step))
    return ParamSpec(p.name, p.type, nlo, nhi, p.step, p.log, None, dict(p.when))


def _topological(params: dict[str, ParamSpec]) -> list[ParamSpec]:
    """Parents before children, keeping the user's order otherwise; detects cycles."""
    out: list[ParamSpec] = []
    state: dict[str, int] = {}  # 1 = visiting, 2 = done

    def visit(name: str, chain: tuple[str, ...]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            raise SearchSpaceError(f"conditions form a cycle: {' -> '.join(chain + (name,))}")
        state[name] = 1
        for parent in params[name].when:
            if parent in params:
                visit(parent, chain + (name,))
        state[name] = 2
        out.append(params[name])

    for n in params:
        visit(n, ())
    return out


# ---------------------------------------------------------------------------------------------
# parsing
# ---------------------------------------------------------------------------------------------
def parse_search_space(spec: Mapping[str, Any] | SearchSpace | None) -> SearchSpace:
    """Validate ``spec`` (dict format or tuple shorthand, mixed freely) into a :class:`SearchSpace`."""
    if spec is None:
        return SearchSpace()
    if isinstance(spec, SearchSpace):
        return spec
    if not isinstance(spec, Mapping):
        raise SearchSpaceError(
            f"a search space must be a mapping of param name -> spec, got {type(spec).__name__}"
        )
    return SearchSpace(_parse_param(str(name), s) for name, s in spec.items())


def _parse_param(name: str, spec: Any) -> ParamSpec:
    if isinstance(spec, ParamSpec):
        return spec
    if isinstance(spec, (tuple, list)):
        spec = _from_tuple(name, spec)
    if not isinstance(spec, Mapping):
        raise SearchSpaceError(
            f"param {name!r}: spec must be a dict like {{'type': 'float', 'low': 0.0, 'high': 1.0}} "
            f"or a tuple like ('float', 0.0, 1.0), got {spec!r}"
        )
    unknown_keys = set(spec) - {"type", "low", "high", "step", "log", "choices", "when", "condition"}
    if unknown_keys:
        raise SearchSpaceError(f"param {name!r}: unknown keys {sorted(unknown_keys)}")
    ptype = spec.get("type")
    if ptype not in _TYPES:
        raise SearchSpaceError(f"param {name!r}: unknown type {ptype!r}; use one of {list(_TYPES)}")
    when = _parse_when(name, spec.get("when", spec.get("condition")))
    if ptype == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, (list, tuple)) or len(choices) == 0:
            raise SearchSpaceError(f"param {name!r}: 'choices' must be a non-empty list, got {choices!r}")
        for c in choices:
            if not isinstance(c, _CHOICE_TYPES):
                raise SearchSpaceError(
                    f"param {name!r}: choice {c!r} has type {type(c).__name__}; choices must be "
                    "None, bool, int, float or str (JSON-storable)"
                )
        if len({json.dumps(c) for c in choices}) != len(choices):
            raise SearchSpaceError(f"param {name!r}: choices contain duplicates: {list(choices)!r}")
        return ParamSpec(name, "categorical", choices=tuple(choices), when=when)

    low, high, step, log = spec.get("low"), spec.get("high"), spec.get("step"), bool(spec.get("log", False))
    for label, v in (("low", low), ("high", high)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise SearchSpaceError(f"param {name!r}: {label!r} must be a finite number, got {v!r}")
    if low > high:
        raise SearchSpaceError(f"param {name!r}: `low <= high` must hold, but got low={low}, high={high}")
    if log and low <= 0:
        raise SearchSpaceError(f"param {name!r}: a log scale needs low > 0, but got low={low}")
    if ptype == "int":
        if int(low) != low or int(high) != high:
            raise SearchSpaceError(f"param {name!r}: int bounds must be whole numbers, got low={low}, high={high}")
        low, high = int(low), int(high)
    if step is not None:
        if isinstance(step, bool) or not isinstance(step, (int, float)) or not step > 0:
            raise SearchSpaceError(f"param {name!r}: 'step' must be a positive number, got {step!r}")
        if log and not (ptype == "int" and step == 1):
            raise SearchSpaceError(f"param {name!r}: 'step' and 'log' cannot be combined (got step={step})")
        if ptype == "int" and int(step) != step:
            raise SearchSpaceError(f"param {name!r}: an int step must be a whole number, got {step}")
        k = (high - low) / step
        if not math.isclose(k, round(k), rel_tol=0, abs_tol=1e-8):
            raise SearchSpaceError(
                f"param {name!r}: step {step} does not fit the range [{low}, {high}] "
                f"((high - low) / step = {k:g} must be a whole number)"
            )
        if ptype == "int":
            step = int(step)
            if step == 1:
                step = None
    return ParamSpec(name, ptype, low, high, step, log, None, when)


def _parse_when(name: str, when: Any) -> dict[str, tuple[Any, ...]]:
    if when is None:
        return {}
    if isinstance(when, Mapping) and set(when) >= {"param"}:  # {"param": "x", "values": [...]}
        when = {when["param"]: when.get("values", when.get("in", when.get("value")))}
    if not isinstance(when, Mapping):
        raise SearchSpaceError(
            f"param {name!r}: 'when' must map parent param -> allowed value(s), e.g. "
            f"{{'boosting_type': ['dart']}}, got {when!r}"
        )
    out: dict[str, tuple[Any, ...]] = {}
    for parent, values in when.items():
        if not isinstance(values, (list, tuple)):
            values = [values]
        out[str(parent)] = tuple(values)
    return out


def _from_tuple(name: str, t: Sequence[Any]) -> dict[str, Any]:
    items = list(t)
    if not items or not isinstance(items[0], str):
        raise SearchSpaceError(f"param {name!r}: a tuple spec starts with its type, got {tuple(t)!r}")
    when: dict[str, Any] | None = None
    if "when" in items:
        i = items.index("when")
        cond = items[i + 1 :]
        if len(cond) != 2:
            raise SearchSpaceError(
                f"param {name!r}: 'when' must be followed by a parent name and value(s), got {tuple(cond)!r}"
            )
        when = {cond[0]: cond[1]}
        items = items[:i]
    ptype = items[0]
    if ptype == "categorical":
        if len(items) != 2:
            raise SearchSpaceError(f"param {name!r}: use ('categorical', [choices]), got {tuple(t)!r}")
        return {"type": "categorical", "choices": items[1], "when": when}
    if ptype not in _TYPES:
        raise SearchSpaceError(f"param {name!r}: unknown type {ptype!r}; use one of {list(_TYPES)}")
    if len(items) < 3:
        raise SearchSpaceError(f"param {name!r}: use ({ptype!r}, low, high[, 'log' | step]), got {tuple(t)!r}")
    d: dict[str, Any] = {"type": ptype, "low": items[1], "high": items[2], "when": when}
    for extra in items[3:]:
        if extra == "log":
            d["log"] = True
        elif isinstance(extra, (int, float)) and not isinstance(extra, bool):
            d["step"] = extra
        else:
            raise SearchSpaceError(f"param {name!r}: unexpected item {extra!r} in tuple spec {tuple(t)!r}")
    return d
