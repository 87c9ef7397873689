"""Columns that give the target away: one feature alone that predicts it exactly.

A column that alone separates the classes (each of its values goes with one class, or one threshold
on it splits them) or that moves in lockstep with a numeric target is rarely a real predictor: it is
usually computed from the target or recorded after the outcome (a "grade" next to the score it was
cut from, a "cause of death" next to "died"). A model trained with it scores perfectly on every
split and fails in use. These checks only *warn*: the column may be legitimate (the task may be
trivial), and the user decides (``--drop-columns``).

Past :data:`SCREEN_ROWS` rows, one random subsample of that size screens every column first; only the
columns it lets through are judged on all rows (100k rows x 60 columns: 0.05-0.15 s for
classification, 0.1-0.3 s for regression). A table too small to judge (fewer than :data:`MIN_ROWS` rows,
or a class with fewer than :data:`MIN_CLASS_ROWS` rows) is not judged.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..problems import CLASSIFICATION, REGRESSION

__all__ = ["MIN_ROWS", "MIN_CLASS_ROWS", "RANK_CORRELATION", "leak_suspects"]

#: rows below which a perfect separation by chance is too likely to warn about
MIN_ROWS = 50
#: the smallest class needs this many rows (a class of 3 rows is separated by many columns)
MIN_CLASS_ROWS = 10
#: |Spearman correlation| with a numeric target from which a column is a suspect
RANK_CORRELATION = 0.999
#: rows of the subsample that screens the columns, and the rank correlation a regression column needs there
SCREEN_ROWS, SCREEN_CORRELATION = 2000, 0.99
#: (values x classes) above which a column is not judged (memory of the count table)
MAX_CELLS = 20_000_000


def leak_suspects(X: pd.DataFrame, y: pd.Series, problem_type: str) -> dict[str, str]:
    """Column -> why it looks like the target in disguise (empty when none does)."""
    n = len(y)
    if n < MIN_ROWS or X.shape[1] == 0:
        return {}
    # one subsample screens every column (a rank correlation of 0.999 on all rows is above 0.99 on any
    # 2,000 of them; a value with two classes there has two in the table)
    sub = np.random.default_rng(0).choice(n, size=SCREEN_ROWS, replace=False) if n > SCREEN_ROWS else None
    if problem_type in CLASSIFICATION:
        codes, classes = pd.factorize(pd.Series(y).reset_index(drop=True), sort=True)
        if len(classes) < 2 or np.bincount(codes).min() < MIN_CLASS_ROWS:
            return {}
        return {str(c): why for c in X.columns
                if (why := _separates(X[c].reset_index(drop=True), codes, len(classes), sub))}
    if problem_type == REGRESSION:
        target = pd.Series(np.asarray(y, dtype=float))
        if target.nunique() < 3:
            return {}
        out = {}
        for c in X.columns:
            col = X[c].reset_index(drop=True)
            if isinstance(col.dtype, pd.CategoricalDtype):
                continue
            col = col.astype(float)
            if sub is not None and not abs(_spearman(col.iloc[sub], target.iloc[sub])) >= SCREEN_CORRELATION:
                continue
            rho = _spearman(col, target)
            if abs(rho) >= RANK_CORRELATION:
                out[str(c)] = (f"its rank correlation with the target is {rho:+.4f}: it moves in lockstep "
                               "with the target")
        return out
    return {}


def _spearman(a: pd.Series, b: pd.Series) -> float:
    """Spearman's rank correlation over the rows where both are present (NaN: 0.0)."""
    both = a.notna().to_numpy() & b.notna().to_numpy()
    if both.sum() < MIN_ROWS:
        return 0.0
    ra, rb = a[both].rank().to_numpy(), b[both].rank().to_numpy()
    if ra.std() == 0 or rb.std() == 0:
        return 0.0
    return float(np.corrcoef(ra, rb)[0, 1])


def _separates(col: pd.Series, codes: np.ndarray, n_classes: int, sub: np.ndarray | None) -> str | None:
    """Why ``col`` alone predicts the class ``codes`` exactly, or ``None``. Missing values count as one
    value of their own. The rows ``sub`` (if any) reject most columns first; then one sort of the
    column and a count per (value, class)."""
    n = len(codes)
    if sub is not None:
        screened = _value_classes(col.iloc[sub], codes[sub], n_classes)
        if screened is None:
            return None
        per_value, n_values, ordered = screened
        # near-unique values whose classes alternate: neither a threshold nor a short value map
        if n_values > SCREEN_ROWS // 2 and not (ordered and _runs(per_value) == len(np.unique(per_value))):
            return None
    found = _value_classes(col, codes, n_classes)
    if found is None:
        return None
    per_value, n_values, ordered = found
    if n_values < 2:
        return None
    if ordered and (runs := _runs(per_value)) == len(np.unique(per_value)):
        # the classes form as many runs as there are classes -> thresholds split them
        return ("a threshold on it separates the classes exactly" if runs == 2 else
                f"{runs - 1} thresholds on it separate the {runs} classes exactly")
    if n_values <= n // 2:
        return f"each of its {n_values} values goes with a single class"
    return None


def _runs(per_value: np.ndarray) -> int:
    """Runs of equal classes along the values in ascending order."""
    return 1 + int(np.count_nonzero(np.diff(per_value)))


def _value_classes(col: pd.Series, codes: np.ndarray, n_classes: int) -> tuple[np.ndarray, int, bool] | None:
    """(the class of each value, in ascending order of the values; the number of values, missing
    counted as one; whether the values are ordered numbers without a missing one), or ``None`` when a
    value goes with two classes (or the count table would be too large)."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        labels, n_known, ordered = col.cat.codes.to_numpy().astype(np.int64), len(col.cat.categories), False
    else:
        v = col.to_numpy(dtype=float, na_value=np.nan)
        missing = np.isnan(v)
        uniq, inverse = np.unique(v[~missing], return_inverse=True)
        labels = np.full(len(v), -1, dtype=np.int64)
        labels[~missing] = inverse
        n_known, ordered = len(uniq), not missing.any()
    if (n_known + 1) * n_classes > MAX_CELLS:
        return None
    counts = np.bincount((labels + 1) * n_classes + codes, minlength=(n_known + 1) * n_classes)
    counts = counts.reshape(n_known + 1, n_classes)
    present = counts.sum(axis=1) > 0
    counts = counts[present]
    if ((counts > 0).sum(axis=1) > 1).any():
        return None
    return counts.argmax(axis=1), len(counts), ordered and not present[0]
