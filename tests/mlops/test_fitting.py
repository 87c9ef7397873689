"""Fitting one model in a trial: a forest grows in chunks so that a cancelled trial stops soon, and
the chunked forest is the forest one fit would grow."""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_classification, make_regression

from src.mlops.fitting import fit_model, rounds_growth, scaled_rounds
from src.mlops.models import get_model_spec
from src.mlops.reporters import NullReporter, TrialCancelled


class _CancelAfter:
    """A trial's reporter whose cancel is set once the forest has been grown ``calls`` times."""

    def __init__(self, calls: int) -> None:
        self.calls, self.checks, self.cancel = calls, 0, threading.Event()

    def report(self, value: float, step: int) -> None:
        return None

    def should_prune(self) -> bool:
        return False

    def cancelled(self) -> bool:
        self.checks += 1
        if self.checks > self.calls:
            self.cancel.set()
        return self.cancel.is_set()


@pytest.mark.parametrize("family,problem_type", [("random_forest", "binary_classification"),
                                                 ("extra_trees", "regression")])
def test_a_trials_forest_is_the_same_forest_grown_in_chunks_and_stops_when_cancelled(family, problem_type):
    if problem_type == "regression":
        X, y = make_regression(n_samples=400, n_features=8, noise=5.0, random_state=0)
    else:
        X, y = make_classification(n_samples=400, n_features=8, random_state=0)
    X = pd.DataFrame(X, columns=[f"f{i}" for i in range(8)])
    spec = get_model_spec(family)
    params = {**spec.default_params(problem_type, seed=3), "n_estimators": 300}

    whole = fit_model(spec, problem_type, params, X, y, reporter=NullReporter()).model
    chunked = fit_model(spec, problem_type, params, X, y, reporter=_CancelAfter(calls=1000)).model
    predict = (lambda m: m.predict_proba(X.head(50))) if problem_type != "regression" else (lambda m: m.predict(X.head(50)))
    np.testing.assert_allclose(predict(chunked), predict(whole))
    assert len(chunked.estimator.estimators_) == 300
    assert chunked.estimator.get_params()["warm_start"] is False  # the saved model's params stay the defaults'

    reporter = _CancelAfter(calls=2)  # cancelled after two chunks (of 30 trees: a tenth of 300)
    with pytest.raises(TrialCancelled, match="after 60 of 300 trees"):
        fit_model(spec, problem_type, params, X, y, reporter=reporter)


def test_a_refits_rounds_grow_with_the_square_root_of_the_rows_for_classification_and_in_proportion_for_regression():
    """bench/rounds_probe.py: on 24 real tables the square root gave classifiers a better test log
    loss than proportional growth (multiclass 35/8); regression keeps proportional growth."""
    assert scaled_rounds(100, 1000, 1560, "regression") == 156
    assert scaled_rounds(100, 1000, 1560, "binary_classification") == 125  # 100 * sqrt(1.56) = 124.9
    assert scaled_rounds(100, 1000, 1560, "multiclass") == 125  # aliases are accepted
    assert scaled_rounds(100, 1000, 1560) == 156  # no problem type: proportional
    assert scaled_rounds(100, 1000, 500, "binary_classification") == 100  # never fewer rounds than found
    assert rounds_growth(1000, 4000, "binary_classification") == pytest.approx(2.0)
    with pytest.raises(ValueError, match="must be >= 1"):
        scaled_rounds(0, 1000, 1560, "regression")
