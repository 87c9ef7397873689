"""Columns that give the target away: one feature alone that predicts it exactly.

A column that alone separates the classes (each of its values goes with one class, or one threshold
on it splits them) or that moves in lockstep with a numeric target is rarely a real predictor: it is
usually computed from the target or recorded after the outcome (a "grade" next to the score it was
cut from, a "cause of death" next to "died"). A model trained with it scores perfectly on every
split and fails in use. These checks only *warn*: the column may be legitimate (the task may be
trivial), and the user decides (``--drop-columns``).

Each check is one pass over the sorted column, O(n log n); a table too small to judge (fewer than
:data:`MIN_ROWS` rows, or a class with fewer than :data:`MIN_CLASS_ROWS` rows) is not judged.
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


def leak_suspects(X: pd.DataFrame, y: pd.Series, problem_type: str) -> dict[str, str]:
    """Column -> why it looks like the target in disguise (empty when none does)."""
    n = len(y)
    if n < MIN_ROWS or X.shape[1] == 0:
        return {}
    if problem_type in CLASSIFICATION:
        codes, classes = pd.factorize(pd.Series(y).reset_index(drop=True), sort=True)
        if len(classes) < 2 or np.bincount(codes).min() < MIN_CLASS_ROWS:
            return {}
        return {str(c): why for c in X.columns if (why := _separates(X[c].reset_index(drop=True), codes, n))}
    if problem_type == REGRESSION:
        target = pd.Series(np.asarray(y, dtype=float))
        if target.nunique() < 3:
            return {}
        out = {}
        for c in X.columns:
            col = X[c].reset_index(drop=True)
            if isinstance(col.dtype, pd.CategoricalDtype):
                continue
            rho = col.astype(float).corr(target, method="spearman")
            if pd.notna(rho) and abs(rho) >= RANK_CORRELATION:
                out[str(c)] = (f"its rank correlation with the target is {rho:+.4f}: it moves in lockstep "
                               "with the target")
        return out
    return {}


def _separates(col: pd.Series, codes: np.ndarray, n: int) -> str | None:
    """Why ``col`` alone predicts the class ``codes`` exactly, or ``None``. Missing values count as one
    value of their own."""
    key = col.cat.codes.to_numpy() if isinstance(col.dtype, pd.CategoricalDtype) else col.to_numpy(dtype=float, na_value=np.nan)
    frame = pd.DataFrame({"v": key, "y": codes})
    per_value = frame.groupby("v", dropna=False, sort=True)["y"]
    if per_value.nunique().max() != 1:
        return None  # some value goes with two classes
    n_values = per_value.ngroups
    if n_values < 2:
        return None
    if not isinstance(col.dtype, pd.CategoricalDtype) and col.notna().all():
        # ordered values: the classes form as many runs as there are classes -> thresholds split them
        runs = 1 + int(np.count_nonzero(np.diff(per_value.first().to_numpy())))
        if runs == len(np.unique(codes)):
            return ("a threshold on it separates the classes exactly" if runs == 2 else
                    f"{runs - 1} thresholds on it separate the {runs} classes exactly")
    if n_values <= n // 2:
        return f"each of its {n_values} values goes with a single class"
    return None
