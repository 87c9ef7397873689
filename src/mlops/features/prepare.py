"""Cleaning a raw table into model-ready ``X`` / ``y``: :func:`prepare_features` and its result
:class:`PreparedData`. It prepares the target (rows without one dropped, problem type inferred) and
fits a :class:`~.preparer.FeaturePreparer` on the remaining rows."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ..datasets import _clean_column_names, _resolve_target
from ..errors import DataValidationError
from ..problems import ANOMALY, CLASSIFICATION
from ._leaks import leak_suspects
from ._rules import finalize_labels, prepare_target, sorted_labels
from .preparer import FeaturePreparer, check_time_column

__all__ = ["PreparedData", "prepare_features"]


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
    #: column -> why it alone predicts the target exactly (a likely leak; kept, see :mod:`._leaks`).
    leak_suspects: dict[str, str] = field(default_factory=dict)

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
        for col, why in self.leak_suspects.items():
            lines.append(f"column {col!r} alone predicts the target: {why}")
        return lines


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
    * leaks: a kept column that alone predicts the target exactly is named in ``leak_suspects``
      (:mod:`._leaks`); nothing is dropped for it.
    * names: characters rejected by LightGBM/XGBoost (``[]{}<>",:``) are replaced by ``_``; every
      rename is listed in ``renamed_columns``.

    ``y`` keeps the original class labels for classification (int64 for integer labels, str for text);
    it is float64 for regression. ``preparer`` replays these column decisions on new raw rows
    (``preparer.transform(raw)`` yields features like ``X``, with the same conversion code).

    Raises:
        DataValidationError: target missing from the frame, no non-missing target, a single class,
            non-numeric regression target, more than two classes for ``binary_classification``,
            ``time_column`` missing or unparseable, a ``drop_columns`` name that is not a column (or is
            the target or the time column), or no usable feature left.
        ConfigurationError: unknown ``problem_type``.
    """
    if not isinstance(frame, pd.DataFrame):
        raise DataValidationError(f"prepare_features needs a pandas DataFrame, got {type(frame).__name__}.")
    frame = _clean_column_names(frame)
    if target not in frame.columns:
        target = _resolve_target(frame, target, "the frame")
    check_time_column(frame, time_column, target)
    drop_columns = _check_drop_columns(frame, drop_columns, target, time_column)

    y, problem_type, keep = prepare_target(frame[target], target, problem_type)
    data = frame.loc[keep.to_numpy()]
    y = y[keep]
    if problem_type in CLASSIFICATION or problem_type == ANOMALY:
        y = finalize_labels(y)
    y = y.rename(target)

    preparer = FeaturePreparer(target=str(target))
    X = preparer.fit_transform(data, time_column=time_column, drop_columns=drop_columns)
    report = preparer.report
    assert report is not None  # set by fit
    kinds = report.feature_kinds
    return PreparedData(
        X=X,
        y=y,
        problem_type=problem_type,
        dropped_columns=dict(preparer.dropped_columns),
        categorical_columns=[c for c, k in kinds.items() if k == "categorical"],
        numeric_columns=[c for c, k in kinds.items() if k == "numeric"],
        class_labels=sorted_labels(y) if problem_type in CLASSIFICATION else None,
        n_dropped_rows=int((~keep).sum()),
        conversions=dict(report.conversions),
        renamed_columns=dict(report.renamed_columns),
        target=str(target),
        time_column=report.time_feature,
        preparer=preparer,
        leak_suspects=leak_suspects(X, y, problem_type),
    )


def _check_drop_columns(frame: pd.DataFrame, drop_columns: Iterable[str], target: str,
                        time_column: str | None) -> list[str]:
    """The requested drops as column names of ``frame``; a name that is not a column, or names the
    target or the time column, is refused (a typo must not silently keep a leaking column)."""
    names = [str(c) for c in drop_columns]
    columns = {str(c) for c in frame.columns}
    missing = [c for c in names if c.strip() not in columns]
    if missing:
        shown = ", ".join(repr(c) for c in list(frame.columns)[:20])
        more = f", ... ({len(frame.columns) - 20} more)" if len(frame.columns) > 20 else ""
        raise DataValidationError(f"drop_columns: {', '.join(repr(c) for c in missing)} "
                                  f"{'is not a column' if len(missing) == 1 else 'are not columns'} of the data; "
                                  f"its columns: {shown}{more}")
    for c in names:
        if c.strip() in (str(target), str(time_column)):
            kind = "target" if c.strip() == str(target) else "time column"
            raise DataValidationError(f"drop_columns: {c!r} is the {kind}; only feature columns can be dropped")
    return [c.strip() for c in names]
