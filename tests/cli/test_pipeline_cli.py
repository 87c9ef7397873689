"""``--pipeline-search`` and step params from the command line (issue 10.2, 10.5): a step param no step of
the family takes is refused before the work (exit 2, naming the param and what the steps take); a study
whose trials other than the defaults all fail exits non-zero with their error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ._helpers import hpo, hpo_refused


def _nothing_started(home: Path) -> None:
    assert not home.exists() or not any(home.iterdir()), sorted(p.name for p in home.iterdir())


@pytest.mark.parametrize("command", ["train", "tune"])
@pytest.mark.parametrize("algorithm, space, fragment, accepted", [
    ("logistic_regression", {"scaler__foo": {"type": "categorical", "choices": ["a"]}},
     "'scaler__foo' -- the scaler step takes", "scaler__method"),
    ("random_forest", {"scaler__method": {"type": "categorical", "choices": ["robust"]}},
     "'scaler__method' -- random_forest has no scaler step", "imputer__strategy, imputer__add_indicator, "
                                                            "select__method, select__k, select__percentile"),
])
def test_a_step_param_no_step_takes_is_refused_before_the_work(tmp_path, command, algorithm, space, fragment,
                                                               accepted):
    """Before: `--search-space` with scaler__method for logistic_regression ran 8 trials, failed 7 with the
    same TypeError and ended `completed` with exit code 0 on the defaults trial alone."""
    path = tmp_path / "space.json"
    path.write_text(json.dumps(space))
    home = tmp_path / "home"
    r = hpo_refused(home, command, "--dataset", "breast_cancer", "--algorithm", algorithm, "--n-trials", "3", "--quiet",
            "--search-space", str(path))
    assert r.returncode == 2, r.stderr[-2000:]
    assert fragment in r.stderr and accepted in r.stderr and "Traceback" not in r.stderr, r.stderr
    _nothing_started(home)


@pytest.mark.parametrize("command, code", [("tune", 1), ("train", 2)])
def test_a_study_whose_other_trials_all_fail_exits_non_zero_with_their_error(tmp_path, command, code):
    """Before: exit 0, "completed", the defaults trained as the tuned model."""
    path = tmp_path / "space.json"
    path.write_text(json.dumps({"C": {"type": "float", "low": -2, "high": -1}}))
    r = hpo(tmp_path / "home", command, "--dataset", "breast_cancer", "--algorithm", "logistic_regression",
            "--n-trials", "4", "--quiet", "--no-db", "--no-mlflow", "--scheme", "holdout", "--search-space", str(path))
    assert r.returncode == code, r.stderr[-2000:]
    assert "every trial but the defaults failed (3 of 3), all with the same error: exception: InvalidParameterError" \
        in r.stderr, r.stderr[-2000:]
    assert "completed" not in r.stdout


def test_tune_with_pipeline_search_searches_the_steps(tmp_path):
    out = tmp_path / "out.json"
    r = hpo(tmp_path / "home", "tune", "--dataset", "breast_cancer", "--algorithm", "logistic_regression",
            "--pipeline-search", "--n-trials", "4", "--quiet", "--no-db", "--no-mlflow", "--scheme", "holdout",
            "--output-json", str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    summary = json.loads(out.read_text())
    assert {"scaler__method", "imputer__strategy", "select__method"} <= set(summary["best_params"])
    assert summary["n_completed"] + summary["n_pruned"] == 4
