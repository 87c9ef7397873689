"""JSON helpers for JSONB columns: PostgreSQL's JSONB refuses NaN and infinities, Python emits them."""

from __future__ import annotations

import datetime as _dt
import json
import math
from collections.abc import Mapping
from typing import Any

__all__ = ["to_jsonable", "json_dumps", "json_loads", "float_from_json"]

_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def _float(x: float) -> float | str:
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    return x


def to_jsonable(obj: Any) -> Any:
    """Plain JSON value of ``obj``: non-finite floats become the strings "NaN"/"Infinity"/"-Infinity",
    numpy scalars their Python value, tuples and sets lists, dict keys strings, other objects ``str``."""
    if obj is None or isinstance(obj, (bool, str, int)):
        return obj
    if isinstance(obj, float):
        return _float(obj)
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, (_dt.datetime, _dt.date)):
        return obj.isoformat()
    item = getattr(obj, "item", None)  # numpy scalar
    if callable(item) and getattr(obj, "shape", None) == ():
        return to_jsonable(item())
    tolist = getattr(obj, "tolist", None)  # numpy array
    if callable(tolist):
        return to_jsonable(tolist())
    return str(obj)


def json_dumps(obj: Any) -> str:
    """Compact JSON text that PostgreSQL's JSONB accepts (see :func:`to_jsonable`)."""
    return json.dumps(to_jsonable(obj), allow_nan=False, ensure_ascii=False, separators=(",", ":"))


def json_loads(text: str | bytes) -> Any:
    return json.loads(text)


def float_from_json(x: Any) -> float | None:
    """Inverse of the float mapping of :func:`to_jsonable` ("NaN" -> nan, ...)."""
    if x is None:
        return None
    if isinstance(x, str):
        return _NON_FINITE[x] if x in _NON_FINITE else float(x)
    return float(x)
