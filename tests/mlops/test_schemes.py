"""The evaluation scheme: the rule that picks it from the data, user requests, and the folds it makes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from src.mlops.errors import ConfigurationError, DataValidationError
from src.mlops.objectives import ModelObjective
from src.mlops.schemes import (
    MIN_CV_TRIALS,
    ROUNDS_FACTOR,
    CV_CELLS_PER_SECOND,
    CV_MAX_ROWS,
    REPEATED_CV_MAX_ROWS,
    EvaluationScheme,
    afford_scheme,
    choose_scheme,
    parse_scheme,
    resolve_scheme,
    tuning_frames,
)


# --- the rule ----------------------------------------------------------------------------------
def test_small_cheap_tables_get_repeated_cv() -> None:
    s = choose_scheme(1_000, n_features=10, min_class_count=40, time_budget=30)  # 10k cells <= 500/s x 30 s
    assert (s.kind, s.folds, s.repeats, s.label) == ("cv", 5, 2, "cv=5x2")
    assert "rows" in s.reason
    assert choose_scheme(REPEATED_CV_MAX_ROWS, n_features=50).label == "cv=5x2"  # no time budget: rows decide


def test_medium_tables_get_cv_while_folds_are_affordable() -> None:
    assert choose_scheme(REPEATED_CV_MAX_ROWS + 1, n_features=10).label == "cv=5"
    assert choose_scheme(CV_MAX_ROWS, n_features=1).label == "cv=5"
    n = 5_000
    cheap = choose_scheme(n, n_features=10, time_budget=60)  # 50k cells <= CV_CELLS_PER_SECOND x 60 s
    assert cheap.label == "cv=5" and "affordable" in cheap.reason
    # the same rows with more features under a shorter budget: k fits per trial cost too much
    features = int(CV_CELLS_PER_SECOND * 30 / n) + 1
    costly = choose_scheme(n, n_features=features, time_budget=30)
    assert costly.kind == "holdout" and "too costly" in costly.reason
    # a small table that is too costly to repeat still gets plain CV
    assert choose_scheme(1_500, n_features=25, time_budget=60).label == "cv=5"  # 37.5k cells > 500/s x 60 s
    # without a time budget the cost rule does not apply
    assert choose_scheme(n, n_features=features).label == "cv=5"


def test_multiclass_fits_cost_one_tree_per_class() -> None:
    features = int(CV_CELLS_PER_SECOND * 30 / (2_500 * 5)) + 1  # x 5 classes: over the budget's cells
    assert choose_scheme(2_500, n_features=features, n_classes=2, time_budget=30).label == "cv=5"
    s = choose_scheme(2_500, n_features=features, n_classes=5, time_budget=30)
    assert s.kind == "holdout" and "5 classes" in s.reason


def test_large_tables_get_a_holdout() -> None:
    s = choose_scheme(CV_MAX_ROWS + 1, n_features=3)
    assert s.kind == "holdout" and s.folds is None and s.objective_options() == {"cv": None}


def test_folds_never_exceed_the_smallest_class_and_rare_classes_force_a_holdout() -> None:
    assert choose_scheme(5_000, min_class_count=4).folds == 4
    assert choose_scheme(500, min_class_count=3).label == "cv=3x2"
    rare = choose_scheme(500, min_class_count=2)
    assert rare.kind == "holdout" and "only 2 row" in rare.reason


def test_time_ordered_data_gets_time_ordered_folds_or_a_holdout() -> None:
    assert choose_scheme(800, time_ordered=True).label == "timeseries-cv=5"
    assert choose_scheme(CV_MAX_ROWS + 1, time_ordered=True).kind == "holdout"
    assert choose_scheme(10_000, n_features=50, time_ordered=True, time_budget=30).kind == "holdout"


# --- requests ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "label"), [
    ("holdout", "holdout"), ("cv", "cv=5"), ("CV=3", "cv=3"), ("cv=4x3", "cv=4x3"), ("timeseries", "timeseries-cv=5"),
    ("timeseries-cv=3", "timeseries-cv=3"), ("timeseries_cv=4", "timeseries-cv=4"),
])
def test_requested_schemes_parse(text: str, label: str) -> None:
    s = parse_scheme(text)
    assert s is not None and s.label == label and s.reason == "requested"
    assert EvaluationScheme.from_dict(s.to_dict()) == s


def test_auto_means_the_rule_decides() -> None:
    assert parse_scheme("auto") is None and parse_scheme(None) is None


@pytest.mark.parametrize("text", ["kfold", "cv=1", "cv=5x0", "timeseries-cv=5x2", "cv=", "holdout=3"])
def test_bad_schemes_are_refused_with_the_accepted_forms(text: str) -> None:
    with pytest.raises(ConfigurationError, match="scheme|folds|repeat|time-series"):
        parse_scheme(text)


def test_resolve_refuses_cv_and_scheme_together_and_keeps_time_order() -> None:
    y = pd.Series([0, 1] * 50)
    with pytest.raises(ConfigurationError, match="not both"):
        resolve_scheme(scheme="holdout", cv=5, y_train=y, y_val=y, n_features=3, classification=True)
    s = resolve_scheme(scheme="auto", cv=4, y_train=y, y_val=y, n_features=3, classification=True, time_ordered=True)
    assert s.label == "timeseries-cv=4" and "time-ordered" in s.reason
    auto = resolve_scheme(y_train=y, y_val=y, n_features=3, classification=True)
    assert auto.label == "cv=5x2"  # 200 rows, 100 of each class
    y_rare = pd.Series(["a"] * 98 + ["b", "b"])
    assert resolve_scheme(y_train=y_rare, y_val=y_rare[:10], n_features=3, classification=True).kind == "holdout"


def test_cv_schemes_tune_on_train_and_validation_joined() -> None:
    X_tr, X_va = pd.DataFrame({"a": [1.0, 2.0, 3.0]}), pd.DataFrame({"a": [4.0, 5.0]})
    y_tr, y_va = pd.Series([0, 1, 0]), pd.Series([1, 0])
    assert tuning_frames(X_tr, y_tr, X_va, y_va, EvaluationScheme("holdout"))[2] is X_va
    X, y, X_val, y_val = tuning_frames(X_tr, y_tr, X_va, y_va, EvaluationScheme("cv", 2))
    assert X["a"].tolist() == [1.0, 2.0, 3.0, 4.0, 5.0] and y.tolist() == [0, 1, 0, 1, 0]
    assert X_val is None and y_val is None


# --- the folds the objective makes ----------------------------------------------------------------
def _data(n: int = 120, seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    y = pd.Series((X["a"] + 0.5 * rng.normal(size=n) > 0).astype(int))
    return X, y


def test_repeated_cv_scores_every_fold_of_every_shuffle_and_records_rows() -> None:
    X, y = _data()
    obj = ModelObjective("lightgbm", "binary", X, y, cv=3, cv_repeats=2, seed=1)
    assert obj.scheme == "cv=3x2"
    ev = obj.evaluate({})
    assert len(ev.user_attrs["fold_scores"]) == 6
    assert ev.value == pytest.approx(np.mean(ev.user_attrs["fold_scores"]), abs=1e-6)
    assert ev.user_attrs["fit_rows"] == 80  # two thirds of 120 rows per fold
    assert ev.user_attrs["best_iteration"] >= 1
    # the two shuffles differ: the same params give different fold scores in the second repeat
    assert ev.user_attrs["fold_scores"][:3] != ev.user_attrs["fold_scores"][3:]


def test_time_ordered_folds_train_on_the_past_only() -> None:
    X, y = _data(100)
    obj = ModelObjective("logistic_regression", "binary", X, y, cv=4, cv_strategy="timeseries")
    for fold in obj._make_folds():
        assert fold.X_train.index.max() < fold.X_val.index.min()


def test_repeats_need_shuffled_folds() -> None:
    X, y = _data()
    with pytest.raises(DataValidationError, match="cv_repeats"):
        ModelObjective("lightgbm", "binary", X, y, cv=3, cv_repeats=2, cv_strategy="timeseries")
    with pytest.raises(DataValidationError, match="cv_repeats"):
        ModelObjective("lightgbm", "binary", X, y, X, y, cv_repeats=2)


# --- the probe: does a CV trial fit the study's time? ---------------------------------------------
@pytest.fixture
def probe_small_tables(monkeypatch):
    """The probe skips tables of at most PROBE_MIN_ROWS rows; these tests probe 600-row tables."""
    monkeypatch.setattr("src.mlops.schemes.PROBE_MIN_ROWS", 0)


def _probe(n: int = 600) -> ModelObjective:
    X, y = _data(n)
    cut = int(n * 0.75)
    return ModelObjective("lightgbm", "binary", X[:cut], y[:cut], X[cut:], y[cut:], seed=0)


def test_the_probe_keeps_cv_when_enough_trials_fit_and_records_what_it_measured(probe_small_tables) -> None:
    cv = EvaluationScheme("cv", 5, reason="folds are affordable")
    kept, measured = afford_scheme(cv, probe=_probe(), study_seconds=3_600, rows_trainval=600)
    assert kept is cv
    assert not measured["stopped"] and measured["seconds"] > 0
    # a 5-fold trial on 480 rows per fold costs 5 x 480/450 probe fits (x ROUNDS_FACTOR when the defaults
    # used every round)
    factor = ROUNDS_FACTOR if measured["rounds_exhausted"] else 1.0
    assert measured["cv_trial_seconds"] == pytest.approx(measured["seconds"] * 5 * 480 / 450 * factor, rel=0.05,
                                                         abs=0.02)
    assert measured["cv_trials_that_fit"] >= MIN_CV_TRIALS


def test_the_probe_falls_back_to_a_holdout_when_a_cv_trial_would_eat_the_study(probe_small_tables) -> None:
    cv = EvaluationScheme("cv", 5, 2, reason="small")
    # 10 trials of 10 fits in 0.05 s: the probe's share is 0.5 ms, no fit is that fast
    chosen, measured = afford_scheme(cv, probe=_probe(), study_seconds=0.05, rows_trainval=600)
    assert chosen.kind == "holdout" and measured["stopped"]
    assert "cv=5x2 was affordable by size, but a probe fit of the defaults ran over" in chosen.reason
    assert f"fewer than {MIN_CV_TRIALS} trials" in chosen.reason
    ts = EvaluationScheme("timeseries", 5)
    chosen, _ = afford_scheme(ts, probe=_probe(), study_seconds=0.05, rows_trainval=600)
    assert chosen.kind == "holdout" and chosen.reason.startswith("time-ordered data")


def test_nothing_is_probed_for_a_holdout_without_a_time_bound_or_on_a_small_table(probe_small_tables,
                                                                                  monkeypatch) -> None:
    holdout, cv = EvaluationScheme("holdout"), EvaluationScheme("cv", 5)
    assert afford_scheme(holdout, probe=_probe(), study_seconds=0.05, rows_trainval=600) == (holdout, None)
    assert afford_scheme(cv, probe=_probe(), study_seconds=None, rows_trainval=600) == (cv, None)
    monkeypatch.setattr("src.mlops.schemes.PROBE_MIN_ROWS", REPEATED_CV_MAX_ROWS)
    assert afford_scheme(cv, probe=_probe(), study_seconds=0.05, rows_trainval=600) == (cv, None)


def test_defaults_that_use_every_round_make_the_probe_expect_longer_trials(probe_small_tables) -> None:
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=600), "b": rng.normal(size=600)})
    y = pd.Series(3 * X["a"] + 2 * X["b"])  # linear, noiseless: trees need far more than 100 rounds
    probe = ModelObjective("lightgbm", "regression", X[:450], y[:450], X[450:], y[450:], seed=0)
    _, measured = afford_scheme(EvaluationScheme("cv", 5), probe=probe, study_seconds=3_600, rows_trainval=600)
    assert measured["rounds_exhausted"] is True
    assert measured["cv_trial_seconds"] == pytest.approx(measured["seconds"] * 5 * 480 / 450 * ROUNDS_FACTOR,
                                                         rel=0.05, abs=0.02)


def test_a_family_search_asks_the_probe_for_room_for_every_family(probe_small_tables) -> None:
    """The same probe fit keeps CV for one family and refuses it when the trials needed are many
    more: a search over 5 families needs its 10 trials plus 3 for each of the 4 other families."""
    from src.mlops.family_search import DROP_AFTER, probe_extra_trials

    assert probe_extra_trials(1) == 0
    assert MIN_CV_TRIALS + probe_extra_trials(5) == MIN_CV_TRIALS + 4 * DROP_AFTER == 22
    cv = EvaluationScheme("cv", 5)
    kept, measured = afford_scheme(cv, probe=_probe(), study_seconds=600, rows_trainval=600, extra_trials=0)
    assert kept is cv and measured["cv_trials_that_fit"] >= MIN_CV_TRIALS
    chosen, _ = afford_scheme(cv, probe=_probe(), study_seconds=600, rows_trainval=600, extra_trials=1_000_000)
    assert chosen.kind == "holdout" and f"fewer than {MIN_CV_TRIALS + 1_000_000} trials" in chosen.reason
