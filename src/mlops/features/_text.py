"""Reading values out of text columns: numbers (also ``1,234``, ``3,5``, money, percentages),
``true``/``false``, dates, and NA-like tokens.

:class:`Text` holds a column as codes into its distinct cleaned values, so each parse runs once per
distinct value. Its ``to_*`` methods decide on training values (>= 95 % must parse); the bare
conversions (``bools``, ``numbers``, ``datetimes``, ``categorical``) are what a fitted
:class:`~.preparer.FeaturePreparer` replays on new rows.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["NA_TOKENS", "PARSE_RATIO", "HAS_STR_DTYPE", "Text", "is_text", "clean_text", "fmt"]

#: After stripping whitespace, text values equal (case-insensitively) to one of these are missing.
NA_TOKENS = frozenset({"", "?", "na", "n/a", "null", "nan", "none", "#n/a", "<na>"})
#: Share of the non-missing text values that must parse as numbers / dates for a column to be read so.
PARSE_RATIO = 0.95
#: pandas 3 has a ``str`` dtype for category labels; older pandas keeps ``object``.
HAS_STR_DTYPE = int(pd.__version__.split(".")[0]) >= 3

DATE_LIKE_RE = re.compile(
    r"^\s*(?:\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4})(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?\s*(?:Z|[+-]\d{2}:?\d{2})?)?\s*$"
)
THOUSANDS_RE = re.compile(r"^[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")
DECIMAL_COMMA_RE = re.compile(r"^[+-]?\d+,\d+$")


def is_text(s: pd.Series) -> bool:
    return pd.api.types.is_string_dtype(s.dtype) or pd.api.types.is_object_dtype(s.dtype)


@dataclass(frozen=True)
class Text:
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
    def of(cls, s: pd.Series) -> Text:
        raw_codes, raw_uniques = pd.factorize(s.astype(object) if isinstance(s.dtype, pd.CategoricalDtype) else s)
        cleaned = []
        for u in np.asarray(raw_uniques, dtype=object):
            text = u.strip() if isinstance(u, str) else str(u)
            cleaned.append(None if text.lower() in NA_TOKENS else text)
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
        index = pd.Index(known, dtype="str" if HAS_STR_DTYPE else object)
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
                thousands = u.str.match(THOUSANDS_RE).fillna(False).astype(bool)
                decimal_comma = u.str.match(DECIMAL_COMMA_RE).fillna(False).astype(bool)
                u = u.where(~thousands, u.str.replace(",", "", regex=False))
                u = u.where(~decimal_comma, u.str.replace(",", ".", regex=False))
            parsed = pd.to_numeric(u, errors="coerce")
            self._parsed[number_format] = parsed.to_numpy(dtype="float64", na_value=np.nan)
        return self._parsed[number_format]

    def number_format(self) -> str | None:
        """``"plain"`` if >= 95% of the values are numbers as written, else ``"formatted"`` if >= 95%
        are numbers in a looser format (see :meth:`_parsed_numbers`), else None."""
        for number_format in ("plain", "formatted"):
            if self.n_unique and self.share(~np.isnan(self._parsed_numbers(number_format))) >= PARSE_RATIO:
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
            one = [Text.of(pd.Series([u], dtype=object))._parsed_dates() for u in self.uniques]
            per = np.array([p[0] if p is not None else np.datetime64("NaT") for p in one], dtype="datetime64[ns]")
        return pd.Series(self._expand(per, np.datetime64("NaT")), index=self.index, dtype="datetime64[ns]")

    def to_datetime(self) -> pd.Series | None:
        """Datetimes (naive UTC) if >= 95% of the values look like dates and parse, else None."""
        if self.n_unique == 0:
            return None
        u = pd.Series(self.uniques, dtype=object).astype(str)
        if self.share(u.str.match(DATE_LIKE_RE).to_numpy(dtype=bool)) < PARSE_RATIO:
            return None
        per = self._parsed_dates()
        if per is None or self.share(~np.isnat(per)) < PARSE_RATIO:
            return None
        return self.datetimes()


def clean_text(s: pd.Series) -> pd.Series:
    """Strip text values and turn NA-like tokens into missing (object Series)."""
    return Text.of(s).series()


def fmt(value: Any) -> str:
    """repr of a scalar without numpy's ``np.float64(...)`` wrapper."""
    return repr(value.item() if isinstance(value, np.generic) else value)
