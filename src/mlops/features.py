"""Cleaning tabular data for the HPO engine: problem-type inference and model-ready features.

Everything here is a pure function or a plain dataclass; nothing prints. Problems with the data raise
:class:`~src.mlops.errors.DataValidationError` with a message that names the input, the rule it
broke and what to do instead.

* :func:`infer_problem_type` decides between binary/multiclass classification and regression.
* :func:`prepare_features` turns a messy frame into model-ready ``X``/``y``: rows with a missing
  target are dropped, identifier/constant/empty/free-text columns are dropped (each with a reason in
  ``dropped_columns``), numbers hidden in text are parsed, text becomes pandas ``category``, booleans
  become 0/1, datetimes are expanded to numeric parts (``<col>_year``, ``_month``, ``_day``,
  ``_dayofweek``, and ``_hour`` when the values carry a time of day). Its decisions per column are
  kept as a :class:`FeaturePreparer` (``PreparedData.preparer``), which applies the same cleaning to
  new raw rows and is stored as JSON (:func:`save_preparer` / :func:`load_preparer`).

Loading lives in :mod:`src.mlops.datasets`; splitting in :mod:`src.mlops.splits`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .datasets import (
    _CLASSIFICATION,
    ANOMALY,
    BINARY,
    MULTICLASS,
    PROBLEM_TYPES,
    REGRESSION,
    _clean_column_names,
    _preview,
    _resolve_target,
    _safe_file_stem,
    write_atomically,
)
from .errors import ConfigurationError, DataValidationError

__all__ = [
    "PreparedData",
    "FeaturePreparer",
    "infer_problem_type",
    "prepare_features",
    "save_preparer",
    "load_preparer",
]

#: After stripping whitespace, text values equal (case-insensitively) to one of these are missing.
_NA_TOKENS = frozenset({"", "?", "na", "n/a", "null", "nan", "none", "#n/a", "<na>"})

# Cleaning thresholds (documented in prepare_features).
_PARSE_RATIO = 0.95  # share of non-missing text values that must parse as numbers / dates
_FREE_TEXT_MIN_UNIQUE = 100
_FREE_TEXT_UNIQUE_RATIO = 0.5
_MAX_CLASSES_FOR_INT_TARGET = 20
_MIN_ROWS_PER_CLASS_INT_TARGET = 5

_ID_NAME_RE = re.compile(
    r"""^(?:id|uuid|guid|key|index|idx|row|rowid|row_?num(?:ber)?|record_?id|unnamed:?\s*\d+)$
       |(?:^|[_\s.-])(?:id|uuid|guid|key|index|idx)$
       |^(?:id|uuid|guid)[_\s.-]""",
    re.IGNORECASE | re.VERBOSE,
)
_CAMEL_ID_RE = re.compile(r"[a-z0-9](?:Id|ID|Uuid|UUID|Key)$")
_DATE_LIKE_RE = re.compile(
    r"^\s*(?:\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4})(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?\s*(?:Z|[+-]\d{2}:?\d{2})?)?\s*$"
)
_BAD_NAME_CHARS_RE = re.compile(r'[\[\]{}<>",:]')
_THOUSANDS_RE = re.compile(r"^[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")
_DECIMAL_COMMA_RE = re.compile(r"^[+-]?\d+,\d+$")


# --------------------------------------------------------------------------------------------------
# Result type
# --------------------------------------------------------------------------------------------------


@dataclass
class PreparedData:
    """Model-ready features and target, plus a record of every cleaning decision.

    ``X`` holds only numeric (float/int) and pandas ``category`` columns. ``y`` keeps the original
    labels for classification (the engine label-encodes) and is float for regression.
    """

    X: pd.DataFrame
    y: pd.Series
    problem_type: str
    #: column -> why it was dropped (identifier, constant, all missing, free text, ...).
    dropped_columns: dict[str, str] = field(default_factory=dict)
    categorical_columns: list[str] = field(default_factory=list)
    numeric_columns: list[str] = field(default_factory=list)
    #: sorted class labels for classification, ``None`` for regression.
    class_labels: list[Any] | None = None
    #: rows dropped because their target was missing (or infinite for regression).
    n_dropped_rows: int = 0
    #: column -> what was done to it (parsed numbers, bool -> 0/1, datetime expanded, ...).
    conversions: dict[str, str] = field(default_factory=dict)
    #: original column -> new name (characters that LightGBM/XGBoost reject are replaced).
    renamed_columns: dict[str, str] = field(default_factory=dict)
    target: str = ""
    #: the column kept as a numeric timestamp (seconds since epoch) for a time-ordered split.
    time_column: str | None = None
    #: the fitted cleaning, to turn new raw rows into features like ``X`` (JSON-serializable).
    preparer: FeaturePreparer | None = None

    def describe(self) -> list[str]:
        """Human-readable lines summarising the cleaning (for a CLI or a log)."""
        lines = [
            f"{self.X.shape[0]} rows x {self.X.shape[1]} features "
            f"({len(self.numeric_columns)} numeric, {len(self.categorical_columns)} categorical); "
            f"problem type {self.problem_type}"
        ]
        if self.class_labels is not None:
            counts = self.y.value_counts()
            shown = ", ".join(f"{k!r}: {int(v)}" for k, v in counts.head(10).items())
            more = f", ... ({len(counts) - 10} more)" if len(counts) > 10 else ""
            lines.append(f"classes: {shown}{more}")
        if self.n_dropped_rows:
            lines.append(f"dropped {self.n_dropped_rows} rows with a missing target")
        for col, reason in self.dropped_columns.items():
            lines.append(f"dropped column {col!r}: {reason}")
        for col, what in self.conversions.items():
            lines.append(f"column {col!r}: {what}")
        for old, new in self.renamed_columns.items():
            lines.append(f"renamed column {old!r} -> {new!r}")
        return lines


# --------------------------------------------------------------------------------------------------
# Problem type
# --------------------------------------------------------------------------------------------------


def _is_text(s: pd.Series) -> bool:
    return pd.api.types.is_string_dtype(s.dtype) or pd.api.types.is_object_dtype(s.dtype)


@dataclass(frozen=True)
class _Text:
    """A text column as integer codes into its sorted distinct cleaned values (-1 = missing).

    Cleaning (strip whitespace, NA-like tokens -> missing, non-strings -> ``str``) and every parse
    (numbers, booleans, dates) run once per distinct value, not once per row.
    """

    index: pd.Index
    codes: np.ndarray
    uniques: np.ndarray  # object array of str
    counts: np.ndarray
    _parsed: dict[str, np.ndarray] = field(default_factory=dict, init=False, repr=False, compare=False)

    @classmethod
    def of(cls, s: pd.Series) -> _Text:
        raw_codes, raw_uniques = pd.factorize(s.astype(object) if isinstance(s.dtype, pd.CategoricalDtype) else s)
        cleaned = []
        for u in np.asarray(raw_uniques, dtype=object):
            text = u.strip() if isinstance(u, str) else str(u)
            cleaned.append(None if text.lower() in _NA_TOKENS else text)
        remap, uniques = pd.factorize(pd.Series(cleaned, dtype=object), sort=True)
        remap = np.asarray(remap, dtype=np.int64)
        codes = np.where(raw_codes >= 0, remap[np.maximum(raw_codes, 0)] if len(remap) else -1, -1).astype(np.int64)
        uniques_arr = np.asarray(uniques, dtype=object)
        counts = np.bincount(codes[codes >= 0], minlength=len(uniques_arr))
        return cls(index=s.index, codes=codes, uniques=uniques_arr, counts=counts)

    @property
    def n_non_missing(self) -> int:
        return int(self.counts.sum())

    @property
    def n_unique(self) -> int:
        return len(self.uniques)

    def _expand(self, per_unique: np.ndarray, missing: Any) -> np.ndarray:
        if len(per_unique) == 0:
            return np.full(len(self.codes), missing, dtype=per_unique.dtype)
        out = per_unique[np.maximum(self.codes, 0)]
        out[self.codes < 0] = missing
        return out

    def series(self) -> pd.Series:
        """Cleaned text as an object Series (missing = NaN)."""
        return pd.Series(self._expand(self.uniques.astype(object), np.nan), index=self.index, dtype=object)

    def categorical(self, categories: Sequence[str] | None = None) -> pd.Series:
        """A ``category`` Series: of the sorted distinct values, or of ``categories`` (the training
        ones) followed by the values they lack, so known values keep their codes."""
        known = list(self.uniques) if categories is None else list(categories)
        position = {c: i for i, c in enumerate(known)}
        for u in self.uniques:
            if u not in position:
                position[u] = len(known)
                known.append(u)
        per = np.array([position[u] for u in self.uniques], dtype=np.int64)
        index = pd.Index(known, dtype="str" if _HAS_STR_DTYPE else object)
        return pd.Series(pd.Categorical.from_codes(self._expand(per, -1), categories=index), index=self.index)

    def share(self, ok: np.ndarray) -> float:
        total = self.n_non_missing
        return float(self.counts[ok].sum()) / total if total else 0.0

    # Each ``to_*`` decides on the (training) values and converts; the conversion alone (``bools``,
    # ``numbers``, ``datetimes``) is what FeaturePreparer replays on new rows.

    def bools(self) -> pd.Series:
        """1.0 for 'true', 0.0 for 'false' (any case), NaN for anything else."""
        lowered = np.array([u.lower() for u in self.uniques], dtype=object)
        per = np.where(lowered == "true", 1.0, np.where(lowered == "false", 0.0, np.nan)).astype("float64")
        return pd.Series(self._expand(per, np.nan), index=self.index, dtype="float64")

    def to_bool(self) -> pd.Series | None:
        """1.0/0.0 if every value is 'true'/'false' (any case), else None."""
        lowered = np.array([u.lower() for u in self.uniques], dtype=object)
        if self.n_unique == 0 or not np.isin(lowered, ["true", "false"]).all():
            return None
        return self.bools()

    def _parsed_numbers(self, number_format: str) -> np.ndarray:
        """A float per distinct value (NaN: not a number). ``"plain"``: numbers as written;
        ``"formatted"``: also '1,234', '3,5' (decimal comma), '$5', '7%'."""
        if number_format not in self._parsed:
            u = pd.Series(self.uniques, dtype=object)
            if number_format == "formatted":
                u = u.str.replace(r"^[\$€£]\s*|\s*%$", "", regex=True)
                thousands = u.str.match(_THOUSANDS_RE).fillna(False).astype(bool)
                decimal_comma = u.str.match(_DECIMAL_COMMA_RE).fillna(False).astype(bool)
                u = u.where(~thousands, u.str.replace(",", "", regex=False))
                u = u.where(~decimal_comma, u.str.replace(",", ".", regex=False))
            parsed = pd.to_numeric(u, errors="coerce")
            self._parsed[number_format] = parsed.to_numpy(dtype="float64", na_value=np.nan)
        return self._parsed[number_format]

    def number_format(self) -> str | None:
        """``"plain"`` if >= 95% of the values are numbers as written, else ``"formatted"`` if >= 95%
        are numbers in a looser format (see :meth:`_parsed_numbers`), else None."""
        for number_format in ("plain", "formatted"):
            if self.n_unique and self.share(~np.isnan(self._parsed_numbers(number_format))) >= _PARSE_RATIO:
                return number_format
        return None

    def numbers(self, number_format: str) -> pd.Series:
        """Floats parsed in ``number_format``; values that do not parse are NaN."""
        return pd.Series(self._expand(self._parsed_numbers(number_format), np.nan), index=self.index, dtype="float64")

    def n_unparsed(self, number_format: str) -> int:
        """Rows whose (non-missing) value does not parse in ``number_format``."""
        return int(self.counts[np.isnan(self._parsed_numbers(number_format))].sum())

    def to_numeric(self) -> tuple[pd.Series, int] | None:
        """Numbers if >= 95% of the values parse (also '1,234', '3,5', '$5', '7%'); failures -> NaN."""
        number_format = self.number_format()
        if number_format is None:
            return None
        return self.numbers(number_format), self.n_unparsed(number_format)

    def _parsed_dates(self) -> np.ndarray | None:
        """A naive UTC datetime per distinct value (NaT: not a date); None if pandas refuses the batch."""
        u = pd.Series(self.uniques, dtype=object).astype(str)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                parsed = pd.to_datetime(u, errors="coerce", utc=True, format="mixed")
            except (ValueError, TypeError, OverflowError):
                return None
        return parsed.dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")

    def datetimes(self) -> pd.Series:
        """Naive UTC datetimes; values that are not dates are NaT."""
        per = self._parsed_dates()
        if per is None:  # one odd value can fail the whole batch: parse value by value
            one = [_Text.of(pd.Series([u], dtype=object))._parsed_dates() for u in self.uniques]
            per = np.array([p[0] if p is not None else np.datetime64("NaT") for p in one], dtype="datetime64[ns]")
        return pd.Series(self._expand(per, np.datetime64("NaT")), index=self.index, dtype="datetime64[ns]")

    def to_datetime(self) -> pd.Series | None:
        """Datetimes (naive UTC) if >= 95% of the values look like dates and parse, else None."""
        if self.n_unique == 0:
            return None
        u = pd.Series(self.uniques, dtype=object).astype(str)
        if self.share(u.str.match(_DATE_LIKE_RE).to_numpy(dtype=bool)) < _PARSE_RATIO:
            return None
        per = self._parsed_dates()
        if per is None or self.share(~np.isnat(per)) < _PARSE_RATIO:
            return None
        return self.datetimes()


_HAS_STR_DTYPE = int(pd.__version__.split(".")[0]) >= 3


def _clean_text(s: pd.Series) -> pd.Series:
    """Strip text values and turn NA-like tokens into missing (object Series)."""
    return _Text.of(s).series()


def _fmt(value: Any) -> str:
    """repr of a scalar without numpy's ``np.float64(...)`` wrapper."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def infer_problem_type(y: Any) -> str:
    """Guess the problem type of a target.

    * text, boolean or categorical targets are classification: 2 classes -> binary, more -> multiclass
      (text that is entirely numeric is treated as numbers);
    * numeric targets with exactly 2 distinct values are binary;
    * integer-valued targets (also floats such as 0.0/1.0/2.0) with at most 20 distinct values and at
      least 5 rows per distinct value on average are multiclass;
    * any other numeric target is regression.

    Missing values (and blank/NA-like text) are ignored. Pass an explicit problem type to
    :func:`prepare_features` to override.

    Raises:
        DataValidationError: no non-missing value, or a single distinct value.
    """
    s = y if isinstance(y, pd.Series) else pd.Series(y if isinstance(y, (list, pd.Categorical)) else np.asarray(y).ravel())
    name = repr(str(s.name)) if s.name is not None else "y"
    values: np.ndarray | None = None  # distinct numeric values
    counts: np.ndarray | None = None
    n_classes: int
    if pd.api.types.is_bool_dtype(s.dtype):
        n_classes = int(s.nunique(dropna=True))
        first = s.dropna().iloc[0] if s.notna().any() else None
    elif _is_text(s) or isinstance(s.dtype, pd.CategoricalDtype):
        text = _Text.of(s)
        n_classes, first = text.n_unique, (text.uniques[0] if text.n_unique else None)
        if text.n_unique and text.to_bool() is None:
            parsed = pd.to_numeric(pd.Series(text.uniques, dtype=object), errors="coerce")
            if parsed.notna().all() and not isinstance(s.dtype, pd.CategoricalDtype):
                values, counts = parsed.to_numpy(dtype="float64"), text.counts
    elif pd.api.types.is_numeric_dtype(s.dtype):
        vc = s.dropna().value_counts()
        values, counts = vc.index.to_numpy(dtype="float64"), vc.to_numpy()
        n_classes, first = len(vc), (vc.index[0] if len(vc) else None)
    else:
        n_classes = int(s.nunique(dropna=True))
        first = s.dropna().iloc[0] if s.notna().any() else None
    if n_classes == 0:
        raise DataValidationError(f"Target {name} has no non-missing value; nothing to learn.")
    if values is None:
        if n_classes < 2:
            raise DataValidationError(
                f"Target {name} has a single class ({_fmt(first)}); a classifier needs at least two classes."
            )
        return BINARY if n_classes == 2 else MULTICLASS
    assert counts is not None
    finite = np.isfinite(values)
    values, counts = values[finite], counts[finite]
    n_unique = len(values)
    if n_unique < 2:
        raise DataValidationError(f"Target {name} has a single distinct value ({_fmt(first)}); nothing to learn.")
    if n_unique == 2:
        return BINARY
    integral = bool(np.all(values == np.floor(values)))
    if (
        integral
        and n_unique <= _MAX_CLASSES_FOR_INT_TARGET
        and n_unique * _MIN_ROWS_PER_CLASS_INT_TARGET <= int(counts.sum())
    ):
        return MULTICLASS
    return REGRESSION


# --------------------------------------------------------------------------------------------------
# Feature preparation
# --------------------------------------------------------------------------------------------------


def _looks_like_id_name(name: str) -> bool:
    return bool(_ID_NAME_RE.search(name.strip()) or _CAMEL_ID_RE.search(name.strip()))


def _is_integer_valued(s: pd.Series) -> bool:
    if pd.api.types.is_integer_dtype(s.dtype):
        return True
    if pd.api.types.is_float_dtype(s.dtype):
        v = s.dropna().to_numpy(dtype="float64")
        return bool(v.size) and bool(np.all(np.isfinite(v))) and bool(np.all(v == np.floor(v)))
    return False


def _numeric_id_reason(name: str, s: pd.Series, n_rows: int) -> str | None:
    """An all-unique integer column that is named like an id or is a row counter."""
    if n_rows < 3 or s.isna().any() or not _is_integer_valued(s):
        return None
    values = s.to_numpy(dtype="float64")
    if pd.Series(values).nunique() != n_rows:
        return None
    if _looks_like_id_name(name):
        return "identifier (unique integer per row, named like an id)"
    diffs = np.diff(values)
    if np.all(diffs == 1):
        return "identifier (row counter: consecutive increasing integers)"
    return None


def _naive_utc(dt: pd.Series) -> pd.Series:
    """A datetime64 Series without time zone (aware values converted to UTC first)."""
    if getattr(dt.dt, "tz", None) is not None:
        return dt.dt.tz_convert("UTC").dt.tz_localize(None)
    return dt


def _datetime_from(s: pd.Series) -> pd.Series | None:
    """Datetime dtype as naive (UTC) datetimes; text that looks like dates (see :meth:`_Text.to_datetime`)."""
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        return _naive_utc(s)
    if _is_text(s) or isinstance(s.dtype, pd.CategoricalDtype):
        return _Text.of(s).to_datetime()
    return None


# Conversions of one raw column, shared by prepare_features (training rows) and FeaturePreparer
# (new rows): ``text`` is the column's _Text when the caller already built it.


def _int_if_complete(values: pd.Series) -> pd.Series:
    """int64 when no value is missing, else float64 (0/1 flags, date parts)."""
    return values.astype("float64") if values.isna().any() else values.astype("int64")


def _bool_values(s: pd.Series, text: _Text | None = None) -> pd.Series:
    """true/false (booleans or text, any case) as 1/0; anything else missing."""
    return _int_if_complete((text or _Text.of(s)).bools())


def _number_values(s: pd.Series, number_format: str = "plain", text: _Text | None = None) -> tuple[pd.Series, int]:
    """Numbers of a column and how many +-inf were set missing: numpy int/float dtypes as they are,
    booleans and nullable/pyarrow numbers as int64 (float64 with missing values), text parsed in
    ``number_format`` (see :meth:`_Text.number_format`; a value that does not parse is missing)."""
    if pd.api.types.is_bool_dtype(s.dtype):
        s = _int_if_complete(s.astype("float64"))
    elif pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_complex_dtype(s.dtype):
        if isinstance(s.dtype, pd.api.extensions.ExtensionDtype) or not (
            pd.api.types.is_float_dtype(s.dtype) or pd.api.types.is_integer_dtype(s.dtype)
        ):  # nullable Int64/Float64, pyarrow numbers, ... -> numpy
            integer = pd.api.types.is_integer_dtype(s.dtype) and not s.isna().any()
            s = s.astype("int64" if integer else "float64")
    else:
        s = (text or _Text.of(s)).numbers(number_format)
    n_inf = 0
    if pd.api.types.is_float_dtype(s.dtype):
        inf = np.isinf(s.to_numpy(dtype="float64", na_value=np.nan))
        n_inf = int(inf.sum())
        if n_inf:
            s = s.mask(inf)
    return s, n_inf


def _datetime_values(s: pd.Series, text: _Text | None = None) -> pd.Series:
    """Naive UTC datetimes of a column: datetime dtypes converted, anything else parsed as text (NaT
    where it is not a date)."""
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        return _naive_utc(s)
    return (text or _Text.of(s)).datetimes()


def _timedelta_seconds(s: pd.Series) -> pd.Series:
    """Durations in seconds (float); numbers are taken as seconds already, text is parsed."""
    if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_timedelta64_dtype(s.dtype):
        return s.astype("float64")
    if not pd.api.types.is_timedelta64_dtype(s.dtype):
        s = pd.to_timedelta(s.astype(object), errors="coerce")
    return (s / pd.Timedelta(seconds=1)).astype("float64")


_DATETIME_PARTS: dict[str, Callable[[pd.Series], pd.Series]] = {
    "year": lambda dt: dt.dt.year,
    "month": lambda dt: dt.dt.month,
    "day": lambda dt: dt.dt.day,
    "dayofweek": lambda dt: dt.dt.day_of_week,
    "hour": lambda dt: dt.dt.hour,
}
#: the part of a datetime time column kept under its own name for a time-ordered split.
_EPOCH_SECONDS = "epoch_seconds"


def _datetime_part(dt: pd.Series, part: str) -> pd.Series:
    """One numeric part of naive datetimes (see _DATETIME_PARTS), or seconds since the epoch."""
    if part == _EPOCH_SECONDS:
        return _timestamp_seconds(dt)
    return _int_if_complete(_DATETIME_PARTS[part](dt))


def _unused_name(name: str, taken: set[str]) -> str:
    """``name``, or ``name_2``, ``name_3``... the first that is not in ``taken`` (which it joins)."""
    out, i = name, 1
    while out in taken:
        i += 1
        out = f"{name}_{i}"
    taken.add(out)
    return out


def _expand_datetime(dt: pd.Series) -> tuple[dict[str, pd.Series], list[str]]:
    """Numeric parts of a datetime column by part name; constant parts are left out (and listed).
    ``hour`` only when some value has a time of day."""
    parts = ["year", "month", "day", "dayofweek"]
    valid = dt.dropna()
    if not valid.empty and ((valid.dt.hour != 0) | (valid.dt.minute != 0)).any():
        parts.append("hour")
    out: dict[str, pd.Series] = {}
    constant: list[str] = []
    for part in parts:
        values = _datetime_part(dt, part)
        if values.nunique(dropna=True) <= 1 and not values.isna().any():
            constant.append(part)
            continue
        out[part] = values
    return out, constant


def _timestamp_seconds(dt: pd.Series) -> pd.Series:
    """Seconds since the Unix epoch as float (NaT -> NaN)."""
    ns = dt.astype("datetime64[ns]")
    out = (ns - pd.Timestamp("1970-01-01")) / pd.Timedelta(seconds=1)
    return out.astype("float64")


def _safe_feature_name(name: Any) -> str:
    text = str(name)
    text = _BAD_NAME_CHARS_RE.sub("_", text)
    return text if text.strip() else "feature"


def _prepare_target(y: pd.Series, target: str, problem_type: str | None) -> tuple[pd.Series, str, pd.Series]:
    """Return (cleaned y, problem type, mask of rows to keep)."""
    if _is_text(y) and not pd.api.types.is_bool_dtype(y.dtype):
        y = _clean_text(y)
    elif isinstance(y.dtype, pd.CategoricalDtype):
        y = y.astype(object)
    keep = y.notna()
    if not keep.any():
        raise DataValidationError(
            f"Target column {target!r} has no non-missing value; choose another target column."
        )
    if problem_type is None:
        problem_type = infer_problem_type(y[keep].rename(target))
    elif problem_type not in PROBLEM_TYPES:
        raise ConfigurationError(
            f"problem_type must be one of {', '.join(PROBLEM_TYPES)}, but got {problem_type!r}."
        )
    if problem_type == REGRESSION:
        if pd.api.types.is_bool_dtype(y.dtype):
            raise DataValidationError(
                f"Target column {target!r} is boolean; use a classification problem type instead of regression."
            )
        if not pd.api.types.is_numeric_dtype(y.dtype):
            parsed = _Text.of(y).to_numeric()
            bad = y[keep].astype(object)
            if parsed is None or parsed[0][keep].isna().any():
                numbers = pd.to_numeric(bad, errors="coerce")
                examples = bad[numbers.isna()].unique()[:5].tolist()
                raise DataValidationError(
                    f"Target column {target!r} has non-numeric values (e.g. {examples}) but the problem type "
                    "is regression; fix the values or choose a classification problem type."
                )
            y = parsed[0]
        y = y.astype("float64")
        keep = y.notna() & np.isfinite(y.to_numpy(dtype="float64", na_value=np.nan))
    elif problem_type in _CLASSIFICATION:
        n_classes = int(y[keep].nunique())
        if n_classes < 2:
            raise DataValidationError(
                f"Target column {target!r} has a single class ({y[keep].iloc[0]!r}) after dropping missing values; "
                "a classifier needs at least two classes."
            )
        if problem_type == BINARY and n_classes > 2:
            raise DataValidationError(
                f"Target column {target!r} has {n_classes} classes but problem_type is {BINARY!r}; "
                f"use {MULTICLASS!r}."
            )
    return y, problem_type, keep


def _finalize_labels(y: pd.Series) -> pd.Series:
    """Give class labels a clean dtype: int64 for integers (also 1.0/2.0), str for text, bool for bools."""
    if pd.api.types.is_bool_dtype(y.dtype):
        return y.astype(bool)
    if pd.api.types.is_integer_dtype(y.dtype) or (pd.api.types.is_float_dtype(y.dtype) and _is_integer_valued(y)):
        return y.astype("int64")
    if pd.api.types.is_numeric_dtype(y.dtype):
        return y
    uniques = pd.unique(y.dropna())
    if all(isinstance(v, (bool, np.bool_)) for v in uniques):
        return y.astype(bool)
    if all(
        isinstance(v, (int, np.integer)) or (isinstance(v, (float, np.floating)) and float(v).is_integer())
        for v in uniques
    ):
        return y.astype("int64")
    if all(isinstance(v, str) for v in uniques):
        return y.astype(str)
    return y


def _sorted_labels(y: pd.Series) -> list[Any]:
    uniques = list(pd.unique(y.dropna()))
    try:
        uniques = sorted(uniques)
    except TypeError:
        uniques = sorted(uniques, key=str)
    return [u.item() if isinstance(u, np.generic) else u for u in uniques]


def prepare_features(
    frame: pd.DataFrame,
    target: str,
    *,
    problem_type: str | None = None,
    time_column: str | None = None,
    drop_columns: Iterable[str] = (),
) -> PreparedData:
    """Clean a raw table into model-ready ``X`` and ``y`` and record every decision.

    Rows: rows whose target is missing (blank, NA-like text, NaN; for regression also +-inf) are
    dropped and counted in ``n_dropped_rows``.

    Columns (each drop recorded in ``dropped_columns`` with its reason, each change in ``conversions``):

    * dropped: columns listed in ``drop_columns``; columns with no value; constant columns (one value
      and no missing value — a single value plus missing values is kept, missingness may inform);
      identifiers: text unique per row, or integers unique per row that are named like an id
      (``id``, ``*_id``, ``customerID``, ``uuid``, ``key``, ``index``, ``Unnamed: 0``...) or count rows
      (consecutive increasing); free text: text with more than 100 distinct values that are more than
      50% of its non-missing values; unsupported dtypes (e.g. lists, intervals).
    * text: whitespace stripped, NA-like tokens (``""``, ``?``, ``NA``, ``N/A``, ``null``, ``None``,
      ``nan``) made missing; if >= 95% of the values are numbers (also ``1,234``, ``3,5``, ``$5``,
      ``7%``) it becomes float and the rest missing; ``true``/``false`` becomes 0/1; dates (>= 95%
      looking like ``2024-01-31`` / ``31/01/2024`` with an optional time) are treated as datetimes;
      anything else becomes a pandas ``category`` (missing stays missing).
    * booleans become 0/1 (float when missing values exist); nullable integer/float dtypes become
      numpy int64/float64; +-inf in numeric features becomes missing; timedeltas become seconds.
    * datetimes are expanded to ``<col>_year``, ``_month``, ``_day``, ``_dayofweek`` (and ``_hour`` if
      any value has a time of day); constant parts are left out; the original column is removed.
      The ``time_column`` is additionally kept as seconds since the epoch (float) under its own name,
      for :func:`split_dataset` (which removes it from the features by default). It is never dropped
      as an identifier or constant.
    * names: characters rejected by LightGBM/XGBoost (``[]{}<>",:``) are replaced by ``_``; every
      rename is listed in ``renamed_columns``.

    ``y`` keeps the original class labels for classification (int64 for integer labels, str for text);
    it is float64 for regression. ``preparer`` replays these column decisions on new raw rows
    (``preparer.transform(raw)`` yields features like ``X``, with the same conversion code).

    Raises:
        DataValidationError: target missing from the frame, no non-missing target, a single class,
            non-numeric regression target, more than two classes for ``binary_classification``,
            ``time_column`` missing or unparseable, or no usable feature left.
        ConfigurationError: unknown ``problem_type``.
    """
    if not isinstance(frame, pd.DataFrame):
        raise DataValidationError(f"prepare_features needs a pandas DataFrame, got {type(frame).__name__}.")
    frame = _clean_column_names(frame)
    if target not in frame.columns:
        target = _resolve_target(frame, target, "the frame")
    if time_column is not None and time_column not in frame.columns:
        raise DataValidationError(
            f"time_column {time_column!r} is not a column of the frame (columns: {_preview(list(frame.columns))})."
        )
    if time_column is not None and time_column == target:
        raise DataValidationError(f"time_column {time_column!r} cannot be the target column.")
    drop_requested = {str(c) for c in drop_columns}

    y_raw, problem_type, keep = _prepare_target(frame[target], target, problem_type)
    n_dropped_rows = int((~keep).sum())
    y = y_raw[keep]
    data = frame.loc[keep.to_numpy()]
    if problem_type in _CLASSIFICATION or problem_type == ANOMALY:
        y = _finalize_labels(y)
    y = y.rename(target)
    n_rows = len(data)

    columns: dict[str, pd.Series] = {}
    kinds: dict[str, str] = {}
    dropped: dict[str, str] = {}
    conversions: dict[str, str] = {}
    steps: list[_ColumnStep] = []

    def add(step: _ColumnStep, values: Sequence[pd.Series], kind: str | Sequence[str]) -> None:
        """Keep the features of ``step``: ``values`` (one per output) are its conversion of the rows."""
        steps.append(replace(step, dtypes=tuple(str(v.dtype) for v in values)))
        for i, (out, v) in enumerate(zip(step.outputs, values, strict=True)):
            columns[out] = v
            kinds[out] = kind if isinstance(kind, str) else kind[i]

    for col in data.columns:
        if col == target:
            continue
        name = str(col)
        s = data[col]
        is_time = time_column is not None and col == time_column
        if name in drop_requested:
            dropped[name] = "dropped by request"
            continue
        if isinstance(s, pd.DataFrame):  # pragma: no cover - names are unique after _clean_column_names
            dropped[name] = "duplicate column name"
            continue
        if s.isna().all():
            if is_time:
                raise DataValidationError(f"time_column {name!r} has no non-missing value.")
            dropped[name] = "all values missing"
            continue

        # --- booleans
        if pd.api.types.is_bool_dtype(s.dtype):
            values = _bool_values(s)
            if not is_time and values.nunique(dropna=True) <= 1 and not values.isna().any():
                dropped[name] = f"constant (single value {_fmt(s.dropna().iloc[0])})"
                continue
            add(_ColumnStep(name, "bool", (name,)), [values], "numeric")
            conversions[name] = "boolean -> 0/1"
            continue

        # --- datetimes (dtype or text that looks like dates)
        dt = None
        text: _Text | None = None
        number_format = "plain"
        was_category = isinstance(s.dtype, pd.CategoricalDtype)
        if pd.api.types.is_datetime64_any_dtype(s.dtype):
            dt = _datetime_values(s)
        elif was_category:  # declared categorical: kept as categories, never parsed as numbers/dates
            s = s.astype(object)
            s = s.where(s.notna(), np.nan)
        if pd.api.types.is_timedelta64_dtype(s.dtype):
            add(_ColumnStep(name, "timedelta", (name,)), [_timedelta_seconds(s)], "numeric")
            conversions[name] = "timedelta -> seconds"
            continue

        if dt is None and _is_text(s):
            text = _Text.of(s)
            if text.n_non_missing == 0:
                if is_time:
                    raise DataValidationError(f"time_column {name!r} has no non-missing value.")
                dropped[name] = "all values missing (after treating blank/NA-like text as missing)"
                continue
            if not was_category and text.to_bool() is not None:
                if text.n_unique <= 1 and text.n_non_missing == n_rows and not is_time:
                    dropped[name] = f"constant (single value {_fmt(text.uniques[0])})"
                    continue
                add(_ColumnStep(name, "bool", (name,)), [_bool_values(s, text)], "numeric")
                conversions[name] = "true/false text -> 0/1"
                continue
            parsed_format = None if was_category else text.number_format()
            if parsed_format is not None:
                number_format = parsed_format
                n_bad = text.n_unparsed(number_format)
                conversions[name] = "parsed numbers from text" + (
                    f" ({n_bad} unparseable value{'s' if n_bad != 1 else ''} set missing)" if n_bad else ""
                )
                # fall through to the numeric branch below
            else:
                dt = None if was_category else text.to_datetime()
                if dt is None:
                    if is_time:
                        raise DataValidationError(
                            f"time_column {name!r} holds text that is neither dates nor numbers "
                            f"(e.g. {_fmt(text.uniques[0])}); pass a datetime or numeric column."
                        )
                    n_non_missing, n_unique = text.n_non_missing, text.n_unique
                    if n_unique <= 1 and n_non_missing == n_rows:
                        dropped[name] = f"constant (single value {_fmt(text.uniques[0])})"
                        continue
                    if n_unique == n_non_missing and n_non_missing == n_rows and n_rows > 1:
                        dropped[name] = "identifier (text unique per row)"
                        continue
                    if n_unique > _FREE_TEXT_MIN_UNIQUE and n_unique > _FREE_TEXT_UNIQUE_RATIO * n_non_missing:
                        dropped[name] = (
                            f"free text / very high cardinality ({n_unique} distinct values in "
                            f"{n_non_missing} non-missing rows)"
                        )
                        continue
                    step = _ColumnStep(name, "category", (name,), categories=tuple(text.uniques))
                    add(step, step.values(s, text), "categorical")
                    conversions[name] = f"text -> category ({n_unique} levels)"
                    continue
                else:
                    conversions[name] = "parsed dates from text"

        if dt is not None:
            parts, constant = _expand_datetime(dt)
            what = f"datetime -> {', '.join(f'{name}_{p}' for p in parts) or 'no varying part'}"
            if constant:
                what += f" (constant parts left out: {', '.join(f'{name}_{p}' for p in constant)})"
            if is_time:
                parts[_EPOCH_SECONDS] = _datetime_part(dt, _EPOCH_SECONDS)
                what += "; kept as seconds since epoch for the time-ordered split"
            conversions[name] = (conversions[name] + "; " if name in conversions else "") + what
            if not parts:
                dropped[name] = "datetime without any varying part"
                conversions.pop(name, None)
                continue
            taken = {str(c) for c in data.columns} | set(columns)
            outputs = tuple(name if p == _EPOCH_SECONDS else _unused_name(f"{name}_{p}", taken) for p in parts)
            renamed = [f"{name}_{p} -> {o}" for o, p in zip(outputs, parts) if o not in (name, f"{name}_{p}")]
            if renamed:
                conversions[name] += f" ({', '.join(renamed)}: a column of that name exists)"
            add(_ColumnStep(name, "datetime", outputs, parts=tuple(parts)), list(parts.values()),
                ["time" if p == _EPOCH_SECONDS else "numeric" for p in parts])
            continue

        # --- numbers (native, nullable or parsed from text)
        if text is not None or (
            pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_complex_dtype(s.dtype)
        ):
            step = _ColumnStep(name, "number", (name,), number_format=number_format)
            s, n_inf = _number_values(s, number_format, text)
            if n_inf:
                note = f"{n_inf} infinite values set missing"
                conversions[name] = conversions[name] + "; " + note if name in conversions else note
            if is_time:
                add(step, [s.astype("float64")], "time")
                continue
            if s.isna().all():
                dropped[name] = "all values missing (after parsing)"
                conversions.pop(name, None)
                continue
            if s.nunique(dropna=True) <= 1 and not s.isna().any():
                dropped[name] = f"constant (single value {_fmt(s.dropna().iloc[0])})"
                conversions.pop(name, None)
                continue
            id_reason = _numeric_id_reason(name, s, n_rows)
            if id_reason:
                dropped[name] = id_reason
                conversions.pop(name, None)
                continue
            add(step, [s], "numeric")
            continue

        dropped[name] = f"unsupported dtype {s.dtype}"

    if time_column is not None and time_column not in kinds:
        raise DataValidationError(f"time_column {time_column!r} could not be kept (it was {dropped.get(time_column)}).")
    features = [c for c, k in kinds.items() if k != "time"]
    if not features:
        raise DataValidationError(
            f"No usable feature column remains after cleaning (target {target!r}); dropped: "
            + ("; ".join(f"{c}: {r}" for c, r in dropped.items()) or "nothing (the frame only has the target)")
            + "."
        )

    # Names the boosting libraries accept, unique.
    renamed: dict[str, str] = {}
    final_names: dict[str, str] = {}
    used: set[str] = set()
    for col in columns:
        new = _safe_feature_name(col)
        base, k = new, 1
        while new in used:
            new = f"{base}_{k}"
            k += 1
        used.add(new)
        final_names[col] = new
        if new != col:
            renamed[col] = new

    # Positional assembly: a duplicated index must not trigger label alignment.
    X = pd.DataFrame({final_names[c]: v.reset_index(drop=True) for c, v in columns.items()})
    X.index = data.index
    categorical = [final_names[c] for c, k in kinds.items() if k == "categorical"]
    numeric = [final_names[c] for c, k in kinds.items() if k == "numeric"]
    class_labels = _sorted_labels(y) if problem_type in _CLASSIFICATION else None
    preparer = FeaturePreparer(
        target=str(target),
        steps=[replace(st, outputs=tuple(final_names[o] for o in st.outputs)) for st in steps],
        dropped_columns=dict(dropped),
    )
    return PreparedData(
        X=X,
        y=y,
        problem_type=problem_type,
        dropped_columns=dropped,
        categorical_columns=categorical,
        numeric_columns=numeric,
        class_labels=class_labels,
        n_dropped_rows=n_dropped_rows,
        conversions=conversions,
        renamed_columns=renamed,
        target=str(target),
        time_column=final_names.get(time_column) if time_column is not None else None,
        preparer=preparer,
    )


# --------------------------------------------------------------------------------------------------
# Replaying the cleaning on new rows
# --------------------------------------------------------------------------------------------------

_STEP_KINDS = ("number", "bool", "category", "datetime", "timedelta")


def _category_values(s: pd.Series, categories: Sequence[str], text: _Text | None = None) -> pd.Series:
    """``category`` with the training ``categories`` first (see :meth:`_Text.categorical`). Whole
    numbers that arrive as floats (pandas reads an integer column with missing values so) are
    matched as '7' rather than '7.0' when the training categories are written that way."""
    if text is None and pd.api.types.is_float_dtype(s.dtype):
        present = pd.Series(s.dropna().unique(), dtype="float64")
        if len(present) and np.isfinite(present).all() and (present == np.floor(present)).all():
            known = set(categories)
            as_ints = [str(int(v)) for v in present]
            if sum(v in known for v in as_ints) > sum(str(v) in known for v in present):
                s = s.astype("Int64")
    return (text or _Text.of(s)).categorical(categories)


def _as_dtype(values: pd.Series, dtype: str) -> pd.Series:
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
class _ColumnStep:
    """How one raw column becomes feature columns, as prepare_features decided on the training rows."""

    #: the raw column.
    source: str
    #: "number", "bool", "category", "datetime" or "timedelta".
    kind: str
    #: the feature columns it yields (final names).
    outputs: tuple[str, ...]
    #: the training dtype of each output ("int64", "float64", "category", ...).
    dtypes: tuple[str, ...] = ()
    #: number: how text is parsed, "plain" or "formatted" (see _Text.number_format).
    number_format: str = "plain"
    #: category: the training categories, in order.
    categories: tuple[str, ...] = ()
    #: datetime: the part behind each output ("year", ..., "hour", or "epoch_seconds").
    parts: tuple[str, ...] = ()

    def values(self, s: pd.Series, text: _Text | None = None) -> list[pd.Series]:
        """The conversion of ``s``, one Series per output (the helpers prepare_features converts with)."""
        if self.kind == "number":
            return [_number_values(s, self.number_format, text)[0]]
        if self.kind == "bool":
            return [_bool_values(s, text)]
        if self.kind == "category":
            return [_category_values(s, self.categories, text)]
        if self.kind == "timedelta":
            return [_timedelta_seconds(s)]
        dt = _datetime_values(s, text)
        return [_datetime_part(dt, part) for part in self.parts]

    def apply(self, s: pd.Series) -> dict[str, pd.Series]:
        """Output name -> values of new rows, in the training dtypes."""
        return {
            name: _as_dtype(v, dtype) for name, v, dtype in zip(self.outputs, self.values(s), self.dtypes, strict=True)
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
    def from_dict(cls, data: Mapping[str, Any]) -> _ColumnStep:
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
        if step.kind not in _STEP_KINDS:
            problems.append(f"unknown kind {step.kind!r}")
        if len(step.dtypes) != len(step.outputs) or (step.kind == "datetime" and len(step.parts) != len(step.outputs)):
            problems.append("outputs, dtypes and parts differ in length")
        if step.kind != "datetime" and len(step.outputs) != 1:
            problems.append("needs exactly one output")
        if step.number_format not in ("plain", "formatted"):
            problems.append(f"unknown number_format {step.number_format!r}")
        unknown_parts = [p for p in step.parts if p not in _DATETIME_PARTS and p != _EPOCH_SECONDS]
        if unknown_parts:
            problems.append(f"unknown datetime parts {unknown_parts}")
        if problems:
            raise ValueError(f"step of column {step.source!r}: {'; '.join(problems)}")
        return step


@dataclass
class FeaturePreparer:
    """The cleaning :func:`prepare_features` fitted on the training rows, replayable on new raw rows.

    :meth:`transform` turns rows with the columns of the training table into the features the
    model was trained on: the same columns, names, order and dtypes, converted by the same code
    (numbers parsed from text with the rule chosen at training, true/false -> 1/0, the datetime
    parts kept at training, ``category`` with the training categories first, renamed columns).
    It is plain data: :meth:`to_dict` / :meth:`from_dict` (JSON, no pickle).
    """

    #: the target column (ignored when present in the input).
    target: str
    #: one step per raw column that yields features, in feature order.
    steps: list[_ColumnStep]
    #: raw column -> why it was dropped (ignored when present in the input).
    dropped_columns: dict[str, str] = field(default_factory=dict)

    FORMAT_VERSION = 1

    @property
    def feature_names(self) -> list[str]:
        """The columns :meth:`transform` returns, in order (``PreparedData.X.columns``)."""
        return [name for step in self.steps for name in step.outputs]

    @property
    def required_columns(self) -> list[str]:
        """The raw columns the input must have."""
        return [step.source for step in self.steps]

    def transform(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The features of new raw rows (index kept, one row per input row).

        Column names are cleaned as :func:`load_dataset` does (whitespace stripped); the target,
        dropped and unknown columns are ignored. A value a numeric column cannot parse becomes
        missing, as in training; a category value unseen at training is kept after the training
        categories (the model's encoder treats it as unknown). An integer feature that meets a
        missing value becomes float64.

        Raises:
            DataValidationError: not a DataFrame, or a required raw column is missing.
        """
        if not isinstance(frame, pd.DataFrame):
            raise DataValidationError(f"FeaturePreparer.transform needs a pandas DataFrame, got {type(frame).__name__}.")
        frame = _clean_column_names(frame)
        by_name = {str(c): c for c in frame.columns}
        missing = [c for c in self.required_columns if c not in by_name]
        if missing:
            raise DataValidationError(
                f"The input is missing {len(missing)} column{'s' if len(missing) != 1 else ''} of the training "
                f"table that the features come from: {_preview(missing)}. Pass rows with the columns of the "
                f"training table (the target {self.target!r} and the dropped columns may be left out)."
            )
        columns: dict[str, pd.Series] = {}
        for step in self.steps:
            columns.update(step.apply(frame[by_name[step.source]]))
        X = pd.DataFrame({c: v.reset_index(drop=True) for c, v in columns.items()})
        X.index = frame.index
        return X

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data (see :meth:`from_dict`)."""
        return {
            "format_version": self.FORMAT_VERSION,
            "target": self.target,
            "steps": [step.to_dict() for step in self.steps],
            "dropped_columns": dict(self.dropped_columns),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeaturePreparer:
        """The preparer :meth:`to_dict` described.

        Raises:
            DataValidationError: malformed data or an unknown format version.
        """
        try:
            version = data.get("format_version")
            if version != cls.FORMAT_VERSION:
                raise ValueError(f"format_version {version!r} is not {cls.FORMAT_VERSION}")
            return cls(
                target=str(data["target"]),
                steps=[_ColumnStep.from_dict(step) for step in data["steps"]],
                dropped_columns={str(k): str(v) for k, v in (data.get("dropped_columns") or {}).items()},
            )
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise DataValidationError(f"Malformed feature preparer ({type(e).__name__}: {e}); save it with to_dict.") from e


def save_preparer(preparer: FeaturePreparer, directory: str | os.PathLike[str], name: str = "preparer") -> str:
    """Write ``preparer`` as JSON ``<name>-<digest>.json`` under ``directory`` (content-addressed and
    atomic, like :func:`save_frame_ref`); returns the path."""
    text = json.dumps(preparer.to_dict(), indent=1, sort_keys=True, allow_nan=False)
    directory = Path(directory).expanduser().resolve()
    directory.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
    path = directory / f"{_safe_file_stem(name)}-{digest}.json"
    write_atomically(path, lambda tmp: Path(tmp).write_text(text + "\n", encoding="utf-8"))
    return str(path)


def load_preparer(path: str | os.PathLike[str]) -> FeaturePreparer:
    """Read a preparer written by :func:`save_preparer` (or any JSON of :meth:`FeaturePreparer.to_dict`).

    Raises:
        DataValidationError: missing, unreadable or malformed file.
    """
    path = Path(path).expanduser()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise DataValidationError(f"Cannot read the feature preparer {str(path)!r}: {e}") from e
    if not isinstance(data, dict):
        raise DataValidationError(f"Malformed feature preparer {str(path)!r}: not a JSON object.")
    return FeaturePreparer.from_dict(data)
