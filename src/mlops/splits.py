"""Splitting tabular data for the HPO engine, and storing frames by reference.

Everything here is a pure function or a plain dataclass; nothing prints. Problems with the data raise
:class:`~src.mlops.errors.DataValidationError` with a message that names the input, the rule it
broke and what to do instead.

* :func:`split_dataset` makes disjoint train/validation/test splits: stratified per class for
  classification, random for regression, or time-ordered (oldest rows train, newest rows test).
* :func:`save_frame_ref` / :func:`load_frame_ref` store a frame or series as Parquet and pass a small
  JSON-serializable :class:`DataRef` around instead of the data (graph state, checkpoints). Loading
  verifies the content fingerprint.

Loading lives in :mod:`src.mlops.datasets`; cleaning in :mod:`src.mlops.features`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypedDict

import numpy as np
import pandas as pd

from .datasets import _preview, _safe_file_stem, write_atomically
from .errors import ConfigurationError, DataValidationError
from .features import infer_problem_type
from .features._convert import datetime_from as _datetime_from
from .features._convert import timestamp_seconds as _timestamp_seconds
from .features._text import fmt as _fmt
from .fingerprint import dataset_fingerprint
from .problems import CLASSIFICATION as _CLASSIFICATION

__all__ = [
    "Splits",
    "DataRef",
    "split_dataset",
    "save_frame_ref",
    "load_frame_ref",
    "MIN_MEDIAN_TRAIN_ROWS_PER_CLASS",
]

_MIN_ROWS_PER_CLASS_SPLIT = 3
#: a classifier learns a class from its training rows: when the median class has fewer than this
#: many, the target has (nearly) one row per class and no model can beat chance -- refused.
MIN_MEDIAN_TRAIN_ROWS_PER_CLASS = 3


# --------------------------------------------------------------------------------------------------
# Result types
# --------------------------------------------------------------------------------------------------


@dataclass
class Splits:
    """Disjoint train/validation/test splits. Rows keep their original index labels."""

    X_train: pd.DataFrame
    y_train: pd.Series
    X_val: pd.DataFrame
    y_val: pd.Series
    X_test: pd.DataFrame
    y_test: pd.Series
    #: "stratified", "random" or "time".
    strategy: str = "random"
    notes: list[str] = field(default_factory=list)

    @property
    def sizes(self) -> dict[str, int]:
        return {"train": len(self.X_train), "val": len(self.X_val), "test": len(self.X_test)}

    def as_tuple(self) -> tuple[pd.DataFrame, pd.Series, pd.DataFrame, pd.Series, pd.DataFrame, pd.Series]:
        return self.X_train, self.y_train, self.X_val, self.y_val, self.X_test, self.y_test


class DataRef(TypedDict):
    """A JSON-serializable pointer to a frame stored as Parquet (see :func:`save_frame_ref`)."""

    path: str
    fingerprint: str
    n_rows: int
    n_cols: int
    columns: list[str]
    #: "frame" or "series".
    kind: str
    #: name of the series (``kind == "series"``), else ``None``.
    series_name: str | None


# --------------------------------------------------------------------------------------------------
# Splitting
# --------------------------------------------------------------------------------------------------


def _check_fraction(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ConfigurationError(f"{name} must be a fraction of the rows in (0, 1), but got {value!r}.")
    v = float(value)
    if not (0.0 < v < 1.0) or math.isnan(v):
        raise ConfigurationError(f"{name} must be a fraction of the rows with 0 < {name} < 1, but got {value!r}.")
    return v


def _time_key(X: pd.DataFrame, time_column: str) -> np.ndarray:
    if time_column not in X.columns:
        raise DataValidationError(
            f"time_column {time_column!r} is not a column of X (columns: {_preview(list(X.columns))})."
        )
    s = X[time_column]
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        key = _timestamp_seconds(_datetime_from(s))  # type: ignore[arg-type]
    elif pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
        key = s.astype("float64")
    else:
        dt = _datetime_from(s)
        if dt is None:
            raise DataValidationError(
                f"time_column {time_column!r} is neither datetime nor numeric (dtype {s.dtype}); "
                "pass timestamps, dates or numbers."
            )
        key = _timestamp_seconds(dt)
    n_missing = int(key.isna().sum())
    if n_missing:
        raise DataValidationError(
            f"time_column {time_column!r} has {n_missing} missing or unparseable values; "
            "a time-ordered split needs a time for every row: fill or drop those rows first."
        )
    return key.to_numpy(dtype="float64")


def split_dataset(
    X: pd.DataFrame,
    y: pd.Series | np.ndarray | Sequence[Any],
    *,
    test_size: float = 0.2,
    val_size: float = 0.2,
    seed: int = 42,
    stratify: bool | None = None,
    time_column: str | None = None,
    problem_type: str | None = None,
    keep_time_column: bool = False,
    rare_classes: Literal["error", "train", "drop"] = "error",
) -> Splits:
    """Split into disjoint train/validation/test sets.

    ``test_size`` and ``val_size`` are fractions of all rows (each in (0, 1), sum < 1); the test and
    validation sizes are rounded up, training gets the rest.

    * stratified (default for classification: ``stratify=None`` stratifies when ``problem_type`` — or
      :func:`infer_problem_type` when not given — is a classification type): each class is split on
      its own (``round(n_class * size)``, at least one row per split), so every class with at least
      3 rows appears in train, validation and test. Classes with fewer than 3 rows: ``rare_classes=
      "error"`` raises a DataValidationError naming them, ``"train"`` puts their rows in training
      only, ``"drop"`` removes them (both noted in ``Splits.notes``).
    * random: a seeded shuffle (regression, or ``stratify=False``).
    * time-ordered (``time_column`` given): rows sorted by time (stable), oldest -> train, then
      validation, newest -> test; no shuffling. The time column is removed from the features unless
      ``keep_time_column=True`` (then it is converted to seconds since the epoch). Cannot be combined
      with ``stratify=True``.

    Rows keep their original index labels; within a split, rows are shuffled (except time-ordered).

    Raises:
        ConfigurationError: sizes out of range, ``stratify=True`` with ``time_column``, bad option.
        DataValidationError: X/y length mismatch, a split that would be empty, a rare class
            (``rare_classes="error"``), a time column with missing values, or a time-ordered training
            split with a single class.
    """
    if not isinstance(X, pd.DataFrame):
        raise DataValidationError(f"split_dataset needs X as a pandas DataFrame, got {type(X).__name__}.")
    y_s = y if isinstance(y, pd.Series) else pd.Series(np.asarray(y), index=X.index, name="y")
    if len(y_s) != len(X):
        raise DataValidationError(f"X has {len(X)} rows but y has {len(y_s)}; they must have the same length.")
    test_f = _check_fraction("test_size", test_size)
    val_f = _check_fraction("val_size", val_size)
    if test_f + val_f >= 1.0:
        raise ConfigurationError(
            f"test_size + val_size must be < 1 to leave rows for training, but got {test_f} + {val_f}."
        )
    if rare_classes not in ("error", "train", "drop"):
        raise ConfigurationError(f"rare_classes must be 'error', 'train' or 'drop', but got {rare_classes!r}.")
    if time_column is not None and stratify is True:
        raise ConfigurationError(
            "stratify=True cannot be combined with time_column: a time-ordered split keeps the time order; "
            "pass stratify=None/False or no time_column."
        )
    if y_s.isna().any():
        raise DataValidationError(
            f"y has {int(y_s.isna().sum())} missing values; drop those rows first (prepare_features does)."
        )
    n = len(X)
    notes: list[str] = []

    def sizes_for(total: int, what: str) -> tuple[int, int, int]:
        n_test = math.ceil(test_f * total)
        n_val = math.ceil(val_f * total)
        n_train = total - n_test - n_val
        if n_train < 1:
            raise DataValidationError(
                f"The training split would be empty: {total} {what} with test_size={test_f} and "
                f"val_size={val_f} leave {n_train} rows for training; use smaller sizes or more data."
            )
        return n_train, n_val, n_test

    if time_column is not None:
        key = _time_key(X, time_column)
        order = np.argsort(key, kind="stable")
        n_train, n_val, n_test = sizes_for(n, "rows")
        idx_train, idx_val, idx_test = order[:n_train], order[n_train : n_train + n_val], order[n_train + n_val :]
        strategy = "time"
        is_classification = problem_type in _CLASSIFICATION if problem_type else None
        if is_classification is None:
            try:
                is_classification = infer_problem_type(y_s) in _CLASSIFICATION
            except DataValidationError:
                is_classification = True
        if is_classification:
            train_classes = set(pd.unique(y_s.iloc[idx_train]))
            if len(train_classes) < 2:
                raise DataValidationError(
                    f"The time-ordered training split holds a single class ({next(iter(train_classes))!r}); "
                    "use a larger training share (smaller test_size/val_size) or a random split."
                )
            unseen = sorted(
                {str(c) for c in pd.unique(y_s.iloc[np.concatenate([idx_val, idx_test])])} - {str(c) for c in train_classes}
            )
            if unseen:
                notes.append(f"classes absent from the training split (time order): {', '.join(unseen)}")
        X_work = X
        if keep_time_column:
            X_work = X.copy(deep=False)
            X_work[time_column] = key
            notes.append(f"time column {time_column!r} kept as seconds since epoch")
        else:
            X_work = X.drop(columns=[time_column])
            notes.append(f"time column {time_column!r} removed from the features")
        return _make_splits(X_work, y_s, idx_train, idx_val, idx_test, strategy, notes)

    if stratify is None:
        if problem_type is not None:
            stratify = problem_type in _CLASSIFICATION
        else:
            try:
                stratify = infer_problem_type(y_s) in _CLASSIFICATION
            except DataValidationError:
                stratify = False
    rng = np.random.default_rng(seed)

    if not stratify:
        n_train, n_val, n_test = sizes_for(n, "rows")
        perm = rng.permutation(n)
        return _make_splits(
            X, y_s, perm[n_val + n_test :], perm[n_test : n_test + n_val], perm[:n_test], "random", notes
        )

    codes, uniques = pd.factorize(y_s, sort=False)
    counts = np.bincount(codes, minlength=len(uniques))
    rare = [(uniques[i], int(counts[i])) for i in range(len(uniques)) if counts[i] < _MIN_ROWS_PER_CLASS_SPLIT]
    rare_rows = np.zeros(n, dtype=bool)
    if rare:
        listing = ", ".join(f"{_fmt(label)} ({count} row{'s' if count != 1 else ''})" for label, count in rare)
        if rare_classes == "error":
            raise DataValidationError(
                f"Stratified splitting needs at least {_MIN_ROWS_PER_CLASS_SPLIT} rows per class, but class "
                f"{listing} has fewer. Drop or merge rare classes, pass rare_classes='train' to keep them in "
                "training only, or stratify=False."
            )
        rare_codes = {i for i in range(len(uniques)) if counts[i] < _MIN_ROWS_PER_CLASS_SPLIT}
        rare_rows = np.isin(codes, list(rare_codes))
        notes.append(
            f"rare classes {'kept in training only' if rare_classes == 'train' else 'dropped'}: {listing}"
        )
    train_parts: list[np.ndarray] = []
    val_parts: list[np.ndarray] = []
    test_parts: list[np.ndarray] = []
    for code in range(len(uniques)):
        members = np.flatnonzero(codes == code)
        if rare_rows[members].any():
            if rare_classes == "train":
                train_parts.append(members)
            continue
        members = rng.permutation(members)
        n_c = len(members)
        n_test_c = max(1, round(n_c * test_f))
        n_val_c = max(1, round(n_c * val_f))
        while n_c - n_test_c - n_val_c < 1:
            if n_test_c >= n_val_c and n_test_c > 1:
                n_test_c -= 1
            elif n_val_c > 1:
                n_val_c -= 1
            else:  # pragma: no cover - n_c >= 3 always leaves one row
                break
        test_parts.append(members[:n_test_c])
        val_parts.append(members[n_test_c : n_test_c + n_val_c])
        train_parts.append(members[n_test_c + n_val_c :])
    if not test_parts:
        raise DataValidationError(
            "Every class is rare (fewer than 3 rows); the validation and test splits would be empty."
        )
    per_class = np.sort([len(part) for part in train_parts])
    median = float(np.median(per_class))
    if median < MIN_MEDIAN_TRAIN_ROWS_PER_CLASS:
        raise DataValidationError(
            f"The target has {len(uniques):,} classes for {n:,} rows: the median class gets {median:g} training "
            f"row(s), and a classifier needs at least {MIN_MEDIAN_TRAIN_ROWS_PER_CLASS} to learn a class (it would "
            "score near chance). Merge rare classes into fewer, larger ones, add rows, or choose another target "
            "(a numeric target whose values are ordered can be a regression: problem_type='regression')."
        )
    idx_train = rng.permutation(np.concatenate(train_parts))
    idx_val = rng.permutation(np.concatenate(val_parts))
    idx_test = rng.permutation(np.concatenate(test_parts))
    return _make_splits(X, y_s, idx_train, idx_val, idx_test, "stratified", notes)


def _make_splits(
    X: pd.DataFrame,
    y: pd.Series,
    idx_train: np.ndarray,
    idx_val: np.ndarray,
    idx_test: np.ndarray,
    strategy: str,
    notes: list[str],
) -> Splits:
    for label, idx in (("training", idx_train), ("validation", idx_val), ("test", idx_test)):
        if len(idx) == 0:
            raise DataValidationError(
                f"The {label} split would be empty ({len(X)} rows); use larger sizes or more data."
            )
    return Splits(
        X_train=X.iloc[idx_train],
        y_train=y.iloc[idx_train],
        X_val=X.iloc[idx_val],
        y_val=y.iloc[idx_val],
        X_test=X.iloc[idx_test],
        y_test=y.iloc[idx_test],
        strategy=strategy,
        notes=notes,
    )


# --------------------------------------------------------------------------------------------------
# Data references
# --------------------------------------------------------------------------------------------------

_SERIES_COLUMN = "__series__"



def save_frame_ref(obj: pd.DataFrame | pd.Series, directory: str | os.PathLike[str], name: str) -> DataRef:
    """Write ``obj`` as Parquet under ``directory`` and return a small JSON-serializable reference.

    The file is named ``<name>-<fingerprint>.parquet`` (content-addressed: a reference made earlier
    stays valid when the same name is saved again with other data) and written atomically. Column
    names are converted to strings (Parquet requires it). The index, category dtypes (categories and
    order) and nullable dtypes survive the round trip. A Series is stored as a one-column frame and
    comes back as a Series with its name.
    """
    if isinstance(obj, pd.Series):
        kind = "series"
        series_name = None if obj.name is None else str(obj.name)
        obj = obj.rename(series_name)
        frame = obj.to_frame(name=_SERIES_COLUMN)
        fingerprint = dataset_fingerprint(obj)
    elif isinstance(obj, pd.DataFrame):
        kind, series_name = "frame", None
        if not all(isinstance(c, str) for c in obj.columns):
            obj = obj.copy(deep=False)
            obj.columns = [str(c) for c in obj.columns]
        if obj.columns.duplicated().any():
            dups = sorted(set(obj.columns[obj.columns.duplicated()]))
            raise DataValidationError(f"Cannot store frame {name!r}: duplicate column names {dups}; rename them.")
        frame = obj
        fingerprint = dataset_fingerprint(obj)
    else:
        raise DataValidationError(f"save_frame_ref stores a pandas DataFrame or Series, got {type(obj).__name__}.")
    directory = Path(directory).expanduser().resolve()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{_safe_file_stem(name)}-{fingerprint}.parquet"
    try:
        write_atomically(path, lambda tmp: frame.to_parquet(tmp, index=True))
    except Exception as e:
        raise DataValidationError(f"Cannot store {kind} {name!r} as Parquet under {str(directory)!r}: {e}") from e
    columns = [series_name if series_name is not None else "y"] if kind == "series" else list(frame.columns)
    return DataRef(
        path=str(path),
        fingerprint=fingerprint,
        n_rows=int(frame.shape[0]),
        n_cols=int(frame.shape[1]),
        columns=[str(c) for c in columns],
        kind=kind,
        series_name=series_name,
    )


def load_frame_ref(ref: DataRef | dict[str, Any], *, verify: bool = True) -> pd.DataFrame | pd.Series:
    """Read the data behind a :class:`DataRef`; with ``verify`` (default) check its fingerprint.

    Raises:
        DataValidationError: malformed reference, missing or unreadable file, or a file whose content
            no longer matches the fingerprint (it changed after the reference was made).
    """
    try:
        path = Path(ref["path"])
        expected = str(ref["fingerprint"])
        kind = ref.get("kind", "frame")
    except (KeyError, TypeError) as e:
        raise DataValidationError(
            f"Malformed data reference {ref!r}: it needs at least 'path' and 'fingerprint' (use save_frame_ref)."
        ) from e
    if not path.is_file():
        raise DataValidationError(
            f"The data file of reference {path.name!r} is missing ({str(path)!r}); re-run the step that produced it."
        )
    try:
        frame = pd.read_parquet(path)
    except Exception as e:
        raise DataValidationError(f"Cannot read the data file {str(path)!r} of a reference: {e}") from e
    obj: pd.DataFrame | pd.Series
    if kind == "series":
        col = _SERIES_COLUMN if _SERIES_COLUMN in frame.columns else frame.columns[0]
        obj = frame[col].rename(ref.get("series_name"))
    else:
        obj = frame
    if verify:
        actual = dataset_fingerprint(obj)
        if actual != expected:
            raise DataValidationError(
                f"The data file {str(path)!r} changed after the reference was made (fingerprint {actual} != "
                f"{expected}); re-run the step that produced it instead of editing the file."
            )
    return obj
