"""Columns that alone predict the target (src/mlops/features/_leaks.py): named as likely leaks, kept;
and --drop-columns / drop_columns, which leaves a named column out (refusing names that are not columns)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine

from src.mlops.errors import DataValidationError
from src.mlops.features import prepare_features
from src.mlops.features._leaks import MIN_ROWS, leak_suspects


def _frame(n: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    return pd.DataFrame({"x": x, "noise": rng.normal(size=n), "city": rng.choice(list("abcdef"), n),
                         "score": np.round(50 + 10 * x + rng.normal(scale=5, size=n), 1)})


def test_a_column_the_target_was_cut_from_or_a_recoding_of_it_is_named():
    frame = _frame()
    frame["passed"] = np.where(frame["score"] >= 50, "yes", "no")  # the target, cut from `score`
    frame["grade_text"] = frame["passed"].map({"yes": "P", "no": "F"})  # a recoding of the target
    frame["band"] = pd.cut(frame["score"], [-np.inf, 40, 50, 60, np.inf], labels=list("DCBA"), right=False).astype(str)
    prep = prepare_features(frame, "passed")
    assert prep.leak_suspects == {
        "score": "a threshold on it separates the classes exactly",
        "grade_text": "each of its 2 values goes with a single class",
        "band": "each of its 4 values goes with a single class",
    }
    assert set(prep.X.columns) >= set(prep.leak_suspects)  # warned about, never dropped
    assert any("'score' alone predicts the target" in line for line in prep.describe())
    # multiclass: the bands of `score` are the target: thresholds separate them
    multi = prepare_features(frame.drop(columns=["passed", "grade_text"]), "band")
    assert multi.leak_suspects == {"score": "3 thresholds on it separate the 4 classes exactly"}


def test_a_numeric_target_and_a_column_in_lockstep_with_it_and_nothing_else():
    frame = _frame().drop(columns=["city"])
    frame["score_pct"] = frame["score"] / 100  # the target in other units
    prep = prepare_features(frame, "score")
    assert list(prep.leak_suspects) == ["score_pct"] and "+1.0000" in prep.leak_suspects["score_pct"]


@pytest.mark.parametrize("loader, target", [(load_breast_cancer, "target"), (load_wine, "target"),
                                            (load_diabetes, "target")])
def test_real_predictive_columns_are_not_suspects(loader, target):
    """Strong but imperfect predictors (breast cancer's worst radius: ROC-AUC 0.97) are not leaks."""
    assert prepare_features(loader(as_frame=True).frame, target).leak_suspects == {}


def test_continuous_unique_values_noise_and_small_tables_are_not_judged():
    rng = np.random.default_rng(3)
    n = 300
    y = rng.integers(0, 2, n)
    X = pd.DataFrame({"unique": rng.normal(size=n),           # every value its own group: not a separation
                      "half": np.repeat(np.arange(n // 2), 2),  # pairs of rows, random classes
                      "rare": np.where(np.arange(n) < 5, 1.0, 0.0)})
    assert leak_suspects(X, pd.Series(y), "binary_classification") == {}
    tiny = X.head(MIN_ROWS - 1).assign(copy=y[: MIN_ROWS - 1])
    assert leak_suspects(tiny, pd.Series(y[: MIN_ROWS - 1]), "binary_classification") == {}
    # a class of 5 rows is separated by chance too easily: not judged
    few = np.where(np.arange(n) < 5, 1, 0)
    assert leak_suspects(X.assign(copy=few), pd.Series(few), "binary_classification") == {}


def test_drop_columns_leaves_named_columns_out_and_refuses_names_that_are_not_features():
    frame = _frame()
    frame["passed"] = np.where(frame["score"] >= 50, "yes", "no")
    prep = prepare_features(frame, "passed", drop_columns=["score", " city"])
    assert "score" not in prep.X.columns and "city" not in prep.X.columns and prep.leak_suspects == {}
    assert prep.dropped_columns == {"score": "dropped by request", "city": "dropped by request"}
    with pytest.raises(DataValidationError, match=r"drop_columns: 'scor' is not a column of the data; its "
                                                   r"columns: 'x', 'noise', 'city', 'score', 'passed'"):
        prepare_features(frame, "passed", drop_columns=["scor"])
    with pytest.raises(DataValidationError, match="drop_columns: 'passed' is the target"):
        prepare_features(frame, "passed", drop_columns=["passed"])


def test_a_large_table_is_screened_on_a_subsample_and_still_judged_on_all_rows():
    """Past SCREEN_ROWS rows a subsample rejects most columns first; what it lets through is judged on
    every row, so a leak is still named and one row that breaks it clears the column."""
    from src.mlops.features._leaks import SCREEN_ROWS

    rng = np.random.default_rng(4)
    n = 4 * SCREEN_ROWS
    y = rng.integers(0, 3, n)
    X = pd.DataFrame({"noise": rng.normal(size=n), "level": pd.Categorical(rng.choice(list("abcd"), n)),
                      "cut": y * 2 + rng.random(n),                         # thresholds at 1 and 3
                      "group": (np.arange(n) % 40) * 3 + y,                 # 120 groups, one class each
                      "nearly": y * 2 + rng.random(n)})
    broken = int(np.flatnonzero(y == 0)[0])
    X.loc[broken, "nearly"] = 5.5  # one row of class 0 among class 2's values
    assert leak_suspects(X, pd.Series(y), "multiclass_classification") == {
        "cut": "2 thresholds on it separate the 3 classes exactly",
        "group": "each of its 120 values goes with a single class",
    }
