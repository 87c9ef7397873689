"""The fitted cleaning of a raw table: :class:`FeaturePreparer` (``fit`` / ``transform``, JSON
save/load). Fitting applies the column rules of :mod:`._rules` through the conversions of
:mod:`._convert`; transforming replays the recorded :class:`~._convert.ColumnStep` on new rows."""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..datasets import _clean_column_names, _preview, _safe_file_stem, write_atomically
from ..errors import DataValidationError
from ._convert import (
    EPOCH_SECONDS,
    ColumnStep,
    bool_values,
    datetime_part,
    datetime_values,
    expand_datetime,
    number_values,
    timedelta_seconds,
)
from ._rules import constant_reason, numeric_id_reason, text_drop_reason
from ._text import Text, fmt, is_text

__all__ = ["FeaturePreparer", "FitReport", "save_preparer", "load_preparer"]

_BAD_NAME_CHARS_RE = re.compile(r'[\[\]{}<>",:]')


def _unused_name(name: str, taken: set[str]) -> str:
    """``name``, or ``name_2``, ``name_3``... the first that is not in ``taken`` (which it joins)."""
    out, i = name, 1
    while out in taken:
        i += 1
        out = f"{name}_{i}"
    taken.add(out)
    return out


def _safe_feature_name(name: Any) -> str:
    text = str(name)
    text = _BAD_NAME_CHARS_RE.sub("_", text)
    return text if text.strip() else "feature"


@dataclass
class FitReport:
    """What :meth:`FeaturePreparer.fit` did, for :class:`~.prepare.PreparedData` and for people."""

    #: raw column -> what was done to it (parsed numbers, bool -> 0/1, datetime expanded, ...).
    conversions: dict[str, str] = field(default_factory=dict)
    #: column -> feature name, where characters that LightGBM/XGBoost reject were replaced.
    renamed_columns: dict[str, str] = field(default_factory=dict)
    #: feature name -> "numeric", "categorical" or "time" (the time column's seconds).
    feature_kinds: dict[str, str] = field(default_factory=dict)
    #: the feature that holds the time column, if one was given.
    time_feature: str | None = None


def check_time_column(frame: pd.DataFrame, time_column: str | None, target: Any) -> None:
    """A ``time_column`` must be a column of ``frame`` other than the target."""
    if time_column is not None and time_column not in frame.columns:
        raise DataValidationError(
            f"time_column {time_column!r} is not a column of the frame (columns: {_preview(list(frame.columns))})."
        )
    if time_column is not None and time_column == target:
        raise DataValidationError(f"time_column {time_column!r} cannot be the target column.")


class _Fit:
    """One fit in progress: the rules applied column by column, the features kept and every decision."""

    def __init__(self, frame: pd.DataFrame, time_column: str | None, drop_requested: set[str]) -> None:
        self.n_rows = len(frame)
        self.raw_names = {str(c) for c in frame.columns}
        self.time_column = time_column
        self.drop_requested = drop_requested
        self.columns: dict[str, pd.Series] = {}
        self.kinds: dict[str, str] = {}
        self.dropped: dict[str, str] = {}
        self.conversions: dict[str, str] = {}
        self.steps: list[ColumnStep] = []

    # -- bookkeeping
    def add(self, step: ColumnStep, values: Sequence[pd.Series], kind: str | Sequence[str]) -> None:
        """Keep the features of ``step``: ``values`` (one per output) are its conversion of the rows."""
        self.steps.append(replace(step, dtypes=tuple(str(v.dtype) for v in values)))
        for i, (out, v) in enumerate(zip(step.outputs, values, strict=True)):
            self.columns[out] = v
            self.kinds[out] = kind if isinstance(kind, str) else kind[i]

    def drop(self, name: str, reason: str) -> None:
        self.dropped[name] = reason
        self.conversions.pop(name, None)

    def note(self, name: str, what: str) -> None:
        self.conversions[name] = self.conversions[name] + "; " + what if name in self.conversions else what

    # -- the rules, by kind of column
    def column(self, col: Any, s: pd.Series) -> None:
        name = str(col)
        is_time = self.time_column is not None and col == self.time_column
        if name in self.drop_requested:
            return self.drop(name, "dropped by request")
        if isinstance(s, pd.DataFrame):  # pragma: no cover - names are unique after _clean_column_names
            return self.drop(name, "duplicate column name")
        if s.isna().all():
            if is_time:
                raise DataValidationError(f"time_column {name!r} has no non-missing value.")
            return self.drop(name, "all values missing")
        if pd.api.types.is_bool_dtype(s.dtype):
            values = bool_values(s)
            reason = None if is_time else constant_reason(values, shown=s)
            if reason:
                return self.drop(name, reason)
            self.add(ColumnStep(name, "bool", (name,)), [values], "numeric")
            return self.note(name, "boolean -> 0/1")
        if pd.api.types.is_datetime64_any_dtype(s.dtype):
            return self.datetime(name, datetime_values(s), is_time)
        if pd.api.types.is_timedelta64_dtype(s.dtype):
            self.add(ColumnStep(name, "timedelta", (name,)), [timedelta_seconds(s)], "numeric")
            return self.note(name, "timedelta -> seconds")
        if isinstance(s.dtype, pd.CategoricalDtype):  # declared categorical: kept as categories, never parsed
            s = s.astype(object)
            return self.text(name, s.where(s.notna(), np.nan), is_time, declared_category=True)
        if is_text(s):
            return self.text(name, s, is_time)
        if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_complex_dtype(s.dtype):
            return self.number(name, s, is_time)
        return self.drop(name, f"unsupported dtype {s.dtype}")

    def text(self, name: str, s: pd.Series, is_time: bool, *, declared_category: bool = False) -> None:
        """true/false, numbers, dates or categories, in that order of preference."""
        text = Text.of(s)
        if text.n_non_missing == 0:
            if is_time:
                raise DataValidationError(f"time_column {name!r} has no non-missing value.")
            return self.drop(name, "all values missing (after treating blank/NA-like text as missing)")
        if not declared_category and text.to_bool() is not None:
            if text.n_unique <= 1 and text.n_non_missing == self.n_rows and not is_time:
                return self.drop(name, f"constant (single value {fmt(text.uniques[0])})")
            self.add(ColumnStep(name, "bool", (name,)), [bool_values(s, text)], "numeric")
            return self.note(name, "true/false text -> 0/1")
        number_format = None if declared_category else text.number_format()
        if number_format is not None:
            n_bad = text.n_unparsed(number_format)
            unparsed = f" ({n_bad} unparseable value{'s' if n_bad != 1 else ''} set missing)" if n_bad else ""
            self.note(name, "parsed numbers from text" + unparsed)
            return self.number(name, s, is_time, number_format, text)
        dt = None if declared_category else text.to_datetime()
        if dt is not None:
            self.note(name, "parsed dates from text")
            return self.datetime(name, dt, is_time)
        if is_time:
            raise DataValidationError(
                f"time_column {name!r} holds text that is neither dates nor numbers "
                f"(e.g. {fmt(text.uniques[0])}); pass a datetime or numeric column."
            )
        reason = text_drop_reason(text, self.n_rows)
        if reason:
            return self.drop(name, reason)
        step = ColumnStep(name, "category", (name,), categories=tuple(text.uniques))
        self.add(step, step.values(s, text), "categorical")
        return self.note(name, f"text -> category ({text.n_unique} levels)")

    def datetime(self, name: str, dt: pd.Series, is_time: bool) -> None:
        """Numeric parts (constant ones left out); the time column also as seconds since the epoch."""
        parts, constant = expand_datetime(dt)
        what = f"datetime -> {', '.join(f'{name}_{p}' for p in parts) or 'no varying part'}"
        if constant:
            what += f" (constant parts left out: {', '.join(f'{name}_{p}' for p in constant)})"
        if is_time:
            parts[EPOCH_SECONDS] = datetime_part(dt, EPOCH_SECONDS)
            what += "; kept as seconds since epoch for the time-ordered split"
        self.note(name, what)
        if not parts:
            return self.drop(name, "datetime without any varying part")
        taken = self.raw_names | set(self.columns)
        outputs = tuple(name if p == EPOCH_SECONDS else _unused_name(f"{name}_{p}", taken) for p in parts)
        renamed = [f"{name}_{p} -> {o}" for o, p in zip(outputs, parts) if o not in (name, f"{name}_{p}")]
        if renamed:
            self.conversions[name] += f" ({', '.join(renamed)}: a column of that name exists)"
        kinds = ["time" if p == EPOCH_SECONDS else "numeric" for p in parts]
        return self.add(ColumnStep(name, "datetime", outputs, parts=tuple(parts)), list(parts.values()), kinds)

    def number(
        self, name: str, s: pd.Series, is_time: bool, number_format: str = "plain", text: Text | None = None
    ) -> None:
        """Native, nullable or parsed numbers; +-inf set missing; constants and numeric ids dropped."""
        step = ColumnStep(name, "number", (name,), number_format=number_format)
        s, n_inf = number_values(s, number_format, text)
        if n_inf:
            self.note(name, f"{n_inf} infinite values set missing")
        if is_time:
            return self.add(step, [s.astype("float64")], "time")
        if s.isna().all():
            return self.drop(name, "all values missing (after parsing)")
        reason = constant_reason(s) or numeric_id_reason(name, s, self.n_rows)
        if reason:
            return self.drop(name, reason)
        return self.add(step, [s], "numeric")

    # -- the result
    def finish(self, index: pd.Index, target: Any) -> tuple[pd.DataFrame, list[ColumnStep], FitReport]:
        """The features (names the boosting libraries accept, unique), the steps and the report."""
        if self.time_column is not None and self.time_column not in self.kinds:
            raise DataValidationError(
                f"time_column {self.time_column!r} could not be kept (it was {self.dropped.get(self.time_column)})."
            )
        if not any(k != "time" for k in self.kinds.values()):
            raise DataValidationError(
                f"No usable feature column remains after cleaning (target {target!r}); dropped: "
                + ("; ".join(f"{c}: {r}" for c, r in self.dropped.items()) or "nothing (the frame only has the target)")
                + "."
            )
        final_names: dict[str, str] = {}
        used: set[str] = set()
        for col in self.columns:
            new = base = _safe_feature_name(col)
            k = 1
            while new in used:
                new = f"{base}_{k}"
                k += 1
            used.add(new)
            final_names[col] = new
        # Positional assembly: a duplicated index must not trigger label alignment.
        X = pd.DataFrame({final_names[c]: v.reset_index(drop=True) for c, v in self.columns.items()})
        X.index = index
        steps = [replace(st, outputs=tuple(final_names[o] for o in st.outputs)) for st in self.steps]
        report = FitReport(
            conversions=self.conversions,
            renamed_columns={c: n for c, n in final_names.items() if n != c},
            feature_kinds={final_names[c]: k for c, k in self.kinds.items()},
            time_feature=final_names.get(self.time_column) if self.time_column is not None else None,
        )
        return X, steps, report


@dataclass
class FeaturePreparer:
    """The cleaning of a raw table: fitted on the training rows, replayable on new raw rows.

    ``FeaturePreparer(target).fit(rows)`` decides per column what it becomes (the rules are listed in
    :func:`~.prepare.prepare_features`, which fits one); :meth:`fit_transform` also returns the
    features of those rows. :meth:`transform` turns rows with the columns of the training table into
    the features the model was trained on: the same columns, names, order and dtypes, converted by the same code
    (numbers parsed from text with the rule chosen at training, true/false -> 1/0, the datetime
    parts kept at training, ``category`` with the training categories first, renamed columns).
    It is plain data: :meth:`to_dict` / :meth:`from_dict` (JSON, no pickle).
    """

    #: the target column (ignored when present in the input).
    target: str
    #: one step per raw column that yields features, in feature order (set by :meth:`fit`).
    steps: list[ColumnStep] = field(default_factory=list)
    #: raw column -> why it was dropped (ignored when present in the input).
    dropped_columns: dict[str, str] = field(default_factory=dict)
    #: what the last :meth:`fit` did beyond the steps (not saved: ``None`` after :meth:`from_dict`).
    report: FitReport | None = field(default=None, compare=False, repr=False)

    FORMAT_VERSION = 1

    def fit(self, frame: pd.DataFrame, *, time_column: str | None = None, drop_columns: Iterable[str] = ()) -> FeaturePreparer:
        """Decide, column by column of the training rows ``frame``, what each becomes; returns self.

        See :meth:`fit_transform` (which also returns the features of ``frame``).
        """
        self.fit_transform(frame, time_column=time_column, drop_columns=drop_columns)
        return self

    def fit_transform(
        self, frame: pd.DataFrame, *, time_column: str | None = None, drop_columns: Iterable[str] = ()
    ) -> pd.DataFrame:
        """Fit on the training rows ``frame`` (the target column is skipped) and return their features.

        ``drop_columns`` are dropped by request; ``time_column`` is kept as numbers (datetimes as
        seconds since the epoch) for a time-ordered split, and is never dropped as an identifier or a
        constant. Replaces :attr:`steps`, :attr:`dropped_columns` and :attr:`report`.

        Raises:
            DataValidationError: not a DataFrame, ``time_column`` missing, the target, empty or
                unparseable, or no usable feature left.
        """
        if not isinstance(frame, pd.DataFrame):
            raise DataValidationError(f"FeaturePreparer.fit needs a pandas DataFrame, got {type(frame).__name__}.")
        frame = _clean_column_names(frame)
        check_time_column(frame, time_column, self.target)
        target = self.target if self.target in frame.columns else next(
            (c for c in frame.columns if str(c) == self.target), self.target
        )
        fit = _Fit(frame, time_column, {str(c) for c in drop_columns})
        for col in frame.columns:
            if col != target:
                fit.column(col, frame[col])
        X, self.steps, self.report = fit.finish(frame.index, target)
        self.dropped_columns = dict(fit.dropped)
        return X

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
                steps=[ColumnStep.from_dict(step) for step in data["steps"]],
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
