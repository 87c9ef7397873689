"""Stable dataset fingerprints: the same data gives the same hex digest in any process.

Used to name a study after its data (``run_hyperparameter_optimization``'s default study name), to
tag its history row and MLflow run (``StudyContext.dataset_fingerprint``: the repository's
``best_trials`` looks up earlier studies of the same data by it), and to check that a stored frame
reference still holds the data it was written with (:mod:`src.mlops.splits`), and to key the trial
cache (:mod:`src.mlops.trial_cache`).
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["dataset_fingerprint", "schema_fingerprint"]


def _frame(x: Any) -> pd.DataFrame:
    if isinstance(x, pd.DataFrame):
        return x
    if isinstance(x, pd.Series):
        return x.to_frame(name=str(x.name) if x.name is not None else "y")
    arr = np.asarray(x)
    if arr.ndim == 1:
        arr = arr.reshape(-1, 1)
    return pd.DataFrame(arr, columns=[f"f{i}" for i in range(arr.shape[1])])


def dataset_fingerprint(X: Any, y: Any | None = None, *, length: int = 16) -> str:
    """Hash of column names, dtypes and every value of ``X`` (and ``y``), independent of the index.

    Row order matters (a shuffled dataset is a different dataset for a time-ordered split).
    Returns ``length`` hex characters (default 16).
    """
    h = hashlib.sha256()
    for part in (X, y):
        if part is None:
            continue
        df = _frame(part)
        h.update(repr([(str(c), str(t)) for c, t in zip(df.columns, df.dtypes)]).encode())
        h.update(str(df.shape).encode())
        hashed = pd.util.hash_pandas_object(df, index=False, categorize=True)
        h.update(hashed.to_numpy().tobytes())
    return h.hexdigest()[:length]


def schema_fingerprint(X: Any, y: Any | None = None, *, length: int = 16) -> str:
    """Hash of the column names and dtypes of ``X`` (and ``y``'s dtype), not of the values: tables
    with the same columns and types share it whatever their rows (warm start's fallback lookup)."""
    h = hashlib.sha256(b"schema")
    for part in (X, y):
        if part is None:
            continue
        df = _frame(part)
        h.update(repr([(str(c), str(t)) for c, t in zip(df.columns, df.dtypes)]).encode())
    return h.hexdigest()[:length]
