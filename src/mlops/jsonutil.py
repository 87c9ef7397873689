"""The one JSON converter of the project: plain JSON values out of numpy scalars and arrays, tuples,
sets, datetimes and non-finite floats.

Two policies differ by destination, chosen by arguments rather than by another copy of the walk:

* PostgreSQL's JSONB and MLflow files (the default): non-finite floats become the strings ``"NaN"``,
  ``"Infinity"``, ``"-Infinity"`` (JSONB refuses the bare tokens Python emits; :func:`float_from_json`
  reads them back), and other objects become ``str(obj)``;
* the graph state (``non_finite="null", strict=True``): non-finite floats become ``None`` and an
  object that is not plain data raises ``TypeError`` (a bug: only plain data may enter the state).
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from collections.abc import Mapping
from typing import Any, Literal

__all__ = ["to_jsonable", "json_dumps", "encode_json", "JsonText", "float_from_json"]

_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def _float(x: float, non_finite: Literal["string", "null"]) -> float | str | None:
    if math.isfinite(x):
        return float(x)
    if non_finite == "null":
        return None
    if math.isnan(x):
        return "NaN"
    return "Infinity" if x > 0 else "-Infinity"


def to_jsonable(obj: Any, *, non_finite: Literal["string", "null"] = "string", strict: bool = False) -> Any:
    """A plain JSON value of ``obj``.

    Mappings become dicts with ``str`` keys; lists, tuples and sets become lists; datetimes and dates
    ISO strings; numpy scalars their Python value and arrays nested lists. ``non_finite``: what NaN and
    infinities become, ``"string"`` (``"NaN"``, ``"Infinity"``, ``"-Infinity"``) or ``"null"``.
    ``strict``: raise ``TypeError`` for any other object instead of returning ``str(obj)``.
    """
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return _float(obj, non_finite)
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v, non_finite=non_finite, strict=strict) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [to_jsonable(v, non_finite=non_finite, strict=strict) for v in obj]
    if isinstance(obj, (_dt.datetime, _dt.date)):
        return obj.isoformat()
    item = getattr(obj, "item", None)  # numpy scalar
    if callable(item) and getattr(obj, "shape", None) == ():
        return to_jsonable(item(), non_finite=non_finite, strict=strict)
    tolist = getattr(obj, "tolist", None)  # numpy array
    if callable(tolist):
        return to_jsonable(tolist(), non_finite=non_finite, strict=strict)
    if strict:
        raise TypeError(f"{type(obj).__name__} is not plain data (a JSON value, numpy value or datetime): {obj!r}")
    return str(obj)


def json_dumps(obj: Any) -> str:
    """Compact JSON text that PostgreSQL's JSONB accepts (see :func:`to_jsonable`)."""
    return json.dumps(to_jsonable(obj), allow_nan=False, ensure_ascii=False, separators=(",", ":"))


class JsonText(str):
    """JSON text :func:`json_dumps` already made: :func:`encode_json` passes it through as it is, so a
    caller can encode large values in a thread and hand the driver text (see the history repository)."""


def encode_json(obj: Any) -> str:
    """The database codec's encoder: :func:`json_dumps`, except for :class:`JsonText`, sent as it is."""
    return obj if isinstance(obj, JsonText) else json_dumps(obj)


def float_from_json(x: Any) -> float | None:
    """Inverse of the float mapping of :func:`to_jsonable` ("NaN" -> nan, ...)."""
    if x is None:
        return None
    if isinstance(x, str):
        return _NON_FINITE[x] if x in _NON_FINITE else float(x)
    return float(x)
