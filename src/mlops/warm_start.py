"""Warm start from history (SPEC F11): a new study begins with the best trials of earlier studies.

:func:`history_configs` asks the history database (:meth:`HistoryRepository.best_trials`) for the best
COMPLETE trials of earlier studies with the same model family, problem type and metric, on the same
data (dataset fingerprint) -- or, when there are none, on a table with the same columns and types
(schema fingerprint) -- and fits them to the current search space (:func:`fit_to_space`). The
optimizer enqueues them after the defaults and the user's configurations, marked ``source=history``,
once, in a fresh study only (a resumed study is not seeded again).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .search_space import ParamSpec, SearchSpace

__all__ = ["WarmStart", "fit_to_space", "history_configs", "SCHEMA_TAG"]

log = logging.getLogger("src.mlops.warm_start")

#: the study tag holding its schema fingerprint (the history's fallback lookup)
SCHEMA_TAG = "schema_fingerprint"


@dataclass
class WarmStart:
    """The configurations found in history and where they came from."""

    configs: list[dict[str, Any]] = field(default_factory=list)
    #: "dataset" (same data), "schema" (same columns and types) or None (nothing found)
    matched_by: str | None = None
    #: ``"<study>#<number>"`` of each config
    sources: list[str] = field(default_factory=list)
    #: trials found in history that did not fit the current search space
    dropped: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"n_configs": len(self.configs), "matched_by": self.matched_by, "sources": list(self.sources),
                "dropped": self.dropped}


def _fit_one(p: ParamSpec, value: Any) -> tuple[bool, Any]:
    """``(fits, value)``: a categorical must be one of the choices; a number is clipped into the range
    and put on the step (an int param gets an int)."""
    if p.type == "categorical":
        return p.contains(value), value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return False, value
    v = min(max(float(value), float(p.low)), float(p.high))
    if p.step is not None:
        v = float(p.low) + round((v - float(p.low)) / float(p.step)) * float(p.step)
        v = min(v, float(p.high))
    if p.type == "int":
        v = int(round(v))
        if p.step is not None:
            v = int(p.low) + (v - int(p.low)) // int(p.step) * int(p.step)
        return True, v
    return True, v


def fit_to_space(space: SearchSpace, params: Mapping[str, Any]) -> dict[str, Any] | None:
    """``params`` made a point of ``space``: params the space does not search are dropped, inactive
    ones left out, numbers clipped and rounded; ``None`` when a categorical value is not a choice (or
    nothing is left): such a configuration does not fit the space. Active params the config lacks
    are left to the sampler."""
    out: dict[str, Any] = {}
    for p in space:
        if not p.is_active(out) or p.name not in params:
            continue
        ok, value = _fit_one(p, params[p.name])
        if not ok:
            return None
        out[p.name] = value
    return out or None


async def history_configs(history: Any, *, algorithm: str, problem_type: str, metric: str | None,
                          dataset_fingerprint: str, schema_fingerprint: str | None, space: SearchSpace,
                          limit: int, exclude_study: str | None = None,
                          skip: Iterable[Mapping[str, Any]] = ()) -> WarmStart:
    """Up to ``limit`` configurations from the best trials of earlier studies (see the module
    docstring), fitted to ``space``, without duplicates or configs in ``skip`` (defaults, user's).
    A history that fails is logged and yields nothing: a warm start never stops a study."""
    out = WarmStart()
    if limit <= 0 or history is None:
        return out
    seen = {json.dumps(dict(c), sort_keys=True, default=str) for c in skip}
    lookups = [("dataset", {"dataset_fingerprint": dataset_fingerprint})]
    if schema_fingerprint:
        lookups.append(("schema", {"schema_fingerprint": schema_fingerprint}))
    for how, key in lookups:
        try:
            found = await history.best_trials(algorithm=algorithm, problem_type=problem_type, metric=metric,
                                              limit=max(limit * 3, 10), exclude_study=exclude_study, **key)
        except Exception as e:  # noqa: BLE001 - best-effort: a study without a warm start still runs
            log.warning("warm start: the history lookup failed (%s: %s); the study starts cold", type(e).__name__, e)
            return out
        for bt in found:
            config = fit_to_space(space, bt.trial.params)
            if config is None:
                out.dropped += 1
                continue
            sig = json.dumps(config, sort_keys=True, default=str)
            if sig in seen:
                continue
            seen.add(sig)
            out.configs.append(config)
            out.sources.append(f"{bt.study_name}#{bt.trial.number}")
            if len(out.configs) >= limit:
                break
        if out.configs:
            out.matched_by = how
            break
    return out
