"""The rules that decide what a column is: the target and its problem type, identifiers, constants
and free text. Each rule is a predicate or a reason string, recorded in ``dropped_columns``."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataValidationError
from ..problems import BINARY, CLASSIFICATION, MULTICLASS, REGRESSION, normalize_problem_type
from ._text import Text, clean_text, fmt, is_text

__all__ = [
    "infer_problem_type",
    "looks_like_id_name",
    "is_integer_valued",
    "numeric_id_reason",
    "constant_reason",
    "text_drop_reason",
    "prepare_target",
    "finalize_labels",
    "sorted_labels",
]

FREE_TEXT_MIN_UNIQUE = 100
FREE_TEXT_UNIQUE_RATIO = 0.5
MAX_CLASSES_FOR_INT_TARGET = 20
MIN_ROWS_PER_CLASS_INT_TARGET = 5

ID_NAME_RE = re.compile(
    r"""^(?:id|uuid|guid|key|index|idx|row|rowid|row_?num(?:ber)?|record_?id|unnamed:?\s*\d+)$
       |(?:^|[_\s.-])(?:id|uuid|guid|key|index|idx)$
       |^(?:id|uuid|guid)[_\s.-]""",
    re.IGNORECASE | re.VERBOSE,
)
CAMEL_ID_RE = re.compile(r"[a-z0-9](?:Id|ID|Uuid|UUID|Key)$")


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
    elif is_text(s) or isinstance(s.dtype, pd.CategoricalDtype):
        text = Text.of(s)
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
                f"Target {name} has a single class ({fmt(first)}); a classifier needs at least two classes."
            )
        return BINARY if n_classes == 2 else MULTICLASS
    assert counts is not None
    finite = np.isfinite(values)
    values, counts = values[finite], counts[finite]
    n_unique = len(values)
    if n_unique < 2:
        raise DataValidationError(f"Target {name} has a single distinct value ({fmt(first)}); nothing to learn.")
    if n_unique == 2:
        return BINARY
    integral = bool(np.all(values == np.floor(values)))
    if (
        integral
        and n_unique <= MAX_CLASSES_FOR_INT_TARGET
        and n_unique * MIN_ROWS_PER_CLASS_INT_TARGET <= int(counts.sum())
    ):
        return MULTICLASS
    return REGRESSION


def looks_like_id_name(name: str) -> bool:
    return bool(ID_NAME_RE.search(name.strip()) or CAMEL_ID_RE.search(name.strip()))


def is_integer_valued(s: pd.Series) -> bool:
    if pd.api.types.is_integer_dtype(s.dtype):
        return True
    if pd.api.types.is_float_dtype(s.dtype):
        v = s.dropna().to_numpy(dtype="float64")
        return bool(v.size) and bool(np.all(np.isfinite(v))) and bool(np.all(v == np.floor(v)))
    return False


def numeric_id_reason(name: str, s: pd.Series, n_rows: int) -> str | None:
    """An all-unique integer column that is named like an id or is a row counter."""
    if n_rows < 3 or s.isna().any() or not is_integer_valued(s):
        return None
    values = s.to_numpy(dtype="float64")
    if pd.Series(values).nunique() != n_rows:
        return None
    if looks_like_id_name(name):
        return "identifier (unique integer per row, named like an id)"
    diffs = np.diff(values)
    if np.all(diffs == 1):
        return "identifier (row counter: consecutive increasing integers)"
    return None


def constant_reason(values: pd.Series, shown: pd.Series | None = None) -> str | None:
    """Why a converted column is dropped as constant (one value and no missing value), else None.
    A single value plus missing values is kept: missingness may inform. ``shown``: the raw values to
    quote (default ``values``)."""
    if values.nunique(dropna=True) <= 1 and not values.isna().any():
        return f"constant (single value {fmt((values if shown is None else shown).dropna().iloc[0])})"
    return None


def text_drop_reason(text: Text, n_rows: int) -> str | None:
    """Why a text column (neither numbers, booleans nor dates) is dropped, else None: constant,
    unique per row (an identifier), or free text (more than 100 distinct values that are more than
    half of its non-missing values)."""
    n_non_missing, n_unique = text.n_non_missing, text.n_unique
    if n_unique <= 1 and n_non_missing == n_rows:
        return f"constant (single value {fmt(text.uniques[0])})"
    if n_unique == n_non_missing and n_non_missing == n_rows and n_rows > 1:
        return "identifier (text unique per row)"
    if n_unique > FREE_TEXT_MIN_UNIQUE and n_unique > FREE_TEXT_UNIQUE_RATIO * n_non_missing:
        return f"free text / very high cardinality ({n_unique} distinct values in {n_non_missing} non-missing rows)"
    return None


def prepare_target(y: pd.Series, target: str, problem_type: str | None) -> tuple[pd.Series, str, pd.Series]:
    """Return (cleaned y, problem type, mask of rows to keep)."""
    if is_text(y) and not pd.api.types.is_bool_dtype(y.dtype):
        y = clean_text(y)
    elif isinstance(y.dtype, pd.CategoricalDtype):
        y = y.astype(object)
    keep = y.notna()
    if not keep.any():
        raise DataValidationError(
            f"Target column {target!r} has no non-missing value; choose another target column."
        )
    if problem_type is None:
        problem_type = infer_problem_type(y[keep].rename(target))
    else:
        problem_type = normalize_problem_type(problem_type)
    if problem_type == REGRESSION:
        if pd.api.types.is_bool_dtype(y.dtype):
            raise DataValidationError(
                f"Target column {target!r} is boolean; use a classification problem type instead of regression."
            )
        if not pd.api.types.is_numeric_dtype(y.dtype):
            parsed = Text.of(y).to_numeric()
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
    elif problem_type in CLASSIFICATION:
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


def finalize_labels(y: pd.Series) -> pd.Series:
    """Give class labels a clean dtype: int64 for integers (also 1.0/2.0), str for text, bool for bools."""
    if pd.api.types.is_bool_dtype(y.dtype):
        return y.astype(bool)
    if pd.api.types.is_integer_dtype(y.dtype) or (pd.api.types.is_float_dtype(y.dtype) and is_integer_valued(y)):
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


def sorted_labels(y: pd.Series) -> list[Any]:
    uniques = list(pd.unique(y.dropna()))
    try:
        uniques = sorted(uniques)
    except TypeError:
        uniques = sorted(uniques, key=str)
    return [u.item() if isinstance(u, np.generic) else u for u in uniques]
