"""How one raw column becomes feature values, and the record of that decision (:class:`ColumnStep`).

The same functions convert the training rows (when :class:`~.preparer.FeaturePreparer` is fitted) and
new rows (when it transforms), so both get identical features. A :class:`ColumnStep` is plain data
that round-trips through JSON.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ._text import Text, is_text

__all__ = [
    "STEP_KINDS",
    "DATETIME_PARTS",
    "EPOCH_SECONDS",
    "ColumnStep",
    "naive_utc",
    "datetime_from",
    "int_if_complete",
    "bool_values",
    "number_values",
    "datetime_values",
    "timedelta_seconds",
    "datetime_part",
    "expand_datetime",
    "timestamp_seconds",
    "category_values",
    "as_dtype",
]

STEP_KINDS = ("number", "bool", "category", "datetime", "timedelta")

def naive_utc(dt: pd.Series) -> pd.Series:
    """A datetime64 Series without time zone (aware values converted to UTC first)."""
    if getattr(dt.dt, "tz", None) is not None:
        return dt.dt.tz_convert("UTC").dt.tz_localize(None)
    return dt


def datetime_from(s: pd.Series) -> pd.Series | None:
    """Datetime dtype as naive (UTC) datetimes; text that looks like dates (see :meth:`Text.to_datetime`)."""
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        return naive_utc(s)
    if is_text(s) or isinstance(s.dtype, pd.CategoricalDtype):
        return Text.of(s).to_datetime()
    return None


def int_if_complete(values: pd.Series) -> pd.Series:
    """int64 when no value is missing, else float64 (0/1 flags, date parts)."""
    return values.astype("float64") if values.isna().any() else values.astype("int64")


def bool_values(s: pd.Series, text: Text | None = None) -> pd.Series:
    """true/false (booleans or text, any case) as 1/0; anything else missing."""
    return int_if_complete((text or Text.of(s)).bools())


def number_values(s: pd.Series, number_format: str = "plain", text: Text | None = None) -> tuple[pd.Series, int]:
    """Numbers of a column and how many +-inf were set missing: numpy int/float dtypes as they are,
    booleans and nullable/pyarrow numbers as int64 (float64 with missing values), text parsed in
    ``number_format`` (see :meth:`Text.number_format`; a value that does not parse is missing)."""
    if pd.api.types.is_bool_dtype(s.dtype):
        s = int_if_complete(s.astype("float64"))
    elif pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_complex_dtype(s.dtype):
        if isinstance(s.dtype, pd.api.extensions.ExtensionDtype) or not (
            pd.api.types.is_float_dtype(s.dtype) or pd.api.types.is_integer_dtype(s.dtype)
        ):  # nullable Int64/Float64, pyarrow numbers, ... -> numpy
            integer = pd.api.types.is_integer_dtype(s.dtype) and not s.isna().any()
            s = s.astype("int64" if integer else "float64")
    else:
        s = (text or Text.of(s)).numbers(number_format)
    n_inf = 0
    if pd.api.types.is_float_dtype(s.dtype):
        inf = np.isinf(s.to_numpy(dtype="float64", na_value=np.nan))
        n_inf = int(inf.sum())
        if n_inf:
            s = s.mask(inf)
    return s, n_inf


def datetime_values(s: pd.Series, text: Text | None = None) -> pd.Series:
    """Naive UTC datetimes of a column: datetime dtypes converted, anything else parsed as text (NaT
    where it is not a date)."""
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        return naive_utc(s)
    return (text or Text.of(s)).datetimes()


def timedelta_seconds(s: pd.Series) -> pd.Series:
    """Durations in seconds (float); numbers are taken as seconds already, text is parsed."""
    if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_timedelta64_dtype(s.dtype):
        return s.astype("float64")
    if not pd.api.types.is_timedelta64_dtype(s.dtype):
        s = pd.to_timedelta(s.astype(object), errors="coerce")
    return (s / pd.Timedelta(seconds=1)).astype("float64")


DATETIME_PARTS: dict[str, Callable[[pd.Series], pd.Series]] = {
    "year": lambda dt: dt.dt.year,
    "month": lambda dt: dt.dt.month,
    "day": lambda dt: dt.dt.day,
    "dayofweek": lambda dt: dt.dt.day_of_week,
    "hour": lambda dt: dt.dt.hour,
}
#: the part of a datetime time column kept under its own name for a time-ordered split.
EPOCH_SECONDS = "epoch_seconds"


def datetime_part(dt: pd.Series, part: str) -> pd.Series:
    """One numeric part of naive datetimes (see DATETIME_PARTS), or seconds since the epoch."""
    if part == EPOCH_SECONDS:
        return timestamp_seconds(dt)
    return int_if_complete(DATETIME_PARTS[part](dt))


def expand_datetime(dt: pd.Series) -> tuple[dict[str, pd.Series], list[str]]:
    """Numeric parts of a datetime column by part name; constant parts are left out (and listed).
    ``hour`` only when some value has a time of day."""
    parts = ["year", "month", "day", "dayofweek"]
    valid = dt.dropna()
    if not valid.empty and ((valid.dt.hour != 0) | (valid.dt.minute != 0)).any():
        parts.append("hour")
    out: dict[str, pd.Series] = {}
    constant: list[str] = []
    for part in parts:
        values = datetime_part(dt, part)
        if values.nunique(dropna=True) <= 1 and not values.isna().any():
            constant.append(part)
            continue
        out[part] = values
    return out, constant


def timestamp_seconds(dt: pd.Series) -> pd.Series:
    """Seconds since the Unix epoch as float (NaT -> NaN)."""
    ns = dt.astype("datetime64[ns]")
    out = (ns - pd.Timestamp("1970-01-01")) / pd.Timedelta(seconds=1)
    return out.astype("float64")


def category_values(s: pd.Series, categories: Sequence[str], text: Text | None = None) -> pd.Series:
    """``category`` with the training ``categories`` first (see :meth:`Text.categorical`). Whole
    numbers that arrive as floats (pandas reads an integer column with missing values so) are
    matched as '7' rather than '7.0' when the training categories are written that way."""
    if text is None and pd.api.types.is_float_dtype(s.dtype):
        present = pd.Series(s.dropna().unique(), dtype="float64")
        if len(present) and np.isfinite(present).all() and (present == np.floor(present)).all():
            known = set(categories)
            as_ints = [str(int(v)) for v in present]
            if sum(v in known for v in as_ints) > sum(str(v) in known for v in present):
                s = s.astype("Int64")
    return (text or Text.of(s)).categorical(categories)


def as_dtype(values: pd.Series, dtype: str) -> pd.Series:
    """``values`` in the training dtype; an integer feature meeting a missing, fractional or
    out-of-range value becomes float64 instead."""
    if dtype == "category" or str(values.dtype) == dtype:
        return values
    target = np.dtype(dtype)
    try:
        cast = values.astype(target)
    except (ValueError, TypeError, OverflowError):  # missing values cannot be integers
        return values.astype("float64")
    if target.kind in "iu" and not np.array_equal(cast.to_numpy(), values.to_numpy()):
        return values.astype("float64")
    return cast


@dataclass(frozen=True)
class ColumnStep:
    """How one raw column becomes feature columns, as prepare_features decided on the training rows."""

    #: the raw column.
    source: str
    #: "number", "bool", "category", "datetime" or "timedelta".
    kind: str
    #: the feature columns it yields (final names).
    outputs: tuple[str, ...]
    #: the training dtype of each output ("int64", "float64", "category", ...).
    dtypes: tuple[str, ...] = ()
    #: number: how text is parsed, "plain" or "formatted" (see Text.number_format).
    number_format: str = "plain"
    #: category: the training categories, in order.
    categories: tuple[str, ...] = ()
    #: datetime: the part behind each output ("year", ..., "hour", or "epoch_seconds").
    parts: tuple[str, ...] = ()

    def values(self, s: pd.Series, text: Text | None = None) -> list[pd.Series]:
        """The conversion of ``s``, one Series per output (the helpers prepare_features converts with)."""
        if self.kind == "number":
            return [number_values(s, self.number_format, text)[0]]
        if self.kind == "bool":
            return [bool_values(s, text)]
        if self.kind == "category":
            return [category_values(s, self.categories, text)]
        if self.kind == "timedelta":
            return [timedelta_seconds(s)]
        dt = datetime_values(s, text)
        return [datetime_part(dt, part) for part in self.parts]

    def apply(self, s: pd.Series) -> dict[str, pd.Series]:
        """Output name -> values of new rows, in the training dtypes."""
        return {
            name: as_dtype(v, dtype) for name, v, dtype in zip(self.outputs, self.values(s), self.dtypes, strict=True)
        }

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"source": self.source, "kind": self.kind, "outputs": list(self.outputs),
                               "dtypes": list(self.dtypes)}
        if self.kind == "number":
            out["number_format"] = self.number_format
        if self.kind == "category":
            out["categories"] = list(self.categories)
        if self.kind == "datetime":
            out["parts"] = list(self.parts)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ColumnStep:
        step = cls(
            source=str(data["source"]),
            kind=str(data["kind"]),
            outputs=tuple(str(o) for o in data["outputs"]),
            dtypes=tuple(str(d) for d in data["dtypes"]),
            number_format=str(data.get("number_format", "plain")),
            categories=tuple(str(c) for c in data.get("categories", ())),
            parts=tuple(str(p) for p in data.get("parts", ())),
        )
        problems = []
        if step.kind not in STEP_KINDS:
            problems.append(f"unknown kind {step.kind!r}")
        if len(step.dtypes) != len(step.outputs) or (step.kind == "datetime" and len(step.parts) != len(step.outputs)):
            problems.append("outputs, dtypes and parts differ in length")
        if step.kind != "datetime" and len(step.outputs) != 1:
            problems.append("needs exactly one output")
        if step.number_format not in ("plain", "formatted"):
            problems.append(f"unknown number_format {step.number_format!r}")
        unknown_parts = [p for p in step.parts if p not in DATETIME_PARTS and p != EPOCH_SECONDS]
        if unknown_parts:
            problems.append(f"unknown datetime parts {unknown_parts}")
        if problems:
            raise ValueError(f"step of column {step.source!r}: {'; '.join(problems)}")
        return step
