"""Misused options and inputs (issue 9 items 9, 10, 13): refused up front with exit code 2 and a
message naming the option, before any server, data or trial; small output defects."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ._helpers import hpo, hpo_refused

TRAIN = ["train", "--dataset", "breast_cancer", "--n-trials", "3", "--quiet"]


def _nothing_started(home: Path) -> None:
    """No embedded server, no run directory, no MLflow store: the command stopped before the work."""
    assert not home.exists() or not any(home.iterdir()), sorted(p.name for p in home.iterdir())


@pytest.mark.parametrize("where", ["directory", "under_a_file", "unwritable"])
def test_output_json_that_cannot_be_written_is_refused_before_the_work(tmp_path, where):
    """Before: a directory or an unwritable path failed only after the whole run, with a traceback."""
    home = tmp_path / "home"
    target = {"directory": tmp_path, "under_a_file": Path(__file__) / "run.json",
              "unwritable": Path("/proc/hpo-run.json")}[where]
    r = hpo_refused(home, *TRAIN, "--output-json", str(target))
    assert r.returncode == 2, r.stderr[-2000:]
    assert "--output-json" in r.stderr and "Traceback" not in r.stderr, r.stderr
    _nothing_started(home)


@pytest.mark.parametrize("seed", ["-1", "99999999999", "1.5"])
def test_seed_out_of_range_is_bad_input_naming_the_option(tmp_path, seed):
    """Before: --seed -1 ended as a run-time failure (exit 1, 'expected non-negative integer')."""
    home = tmp_path / "home"
    r = hpo_refused(home, *TRAIN, "--seed", seed)
    assert r.returncode == 2, r.stderr[-2000:]
    assert "argument --seed: must be an integer between 0 and 4294967295" in r.stderr, r.stderr
    _nothing_started(home)


@pytest.mark.parametrize("args, fragment", [
    (["--cv", "3", "--scheme", "holdout"], "give --cv=3 or --scheme='holdout', not both"),
    (["--n-trials", "0"], "argument --n-trials: must be an integer >= 1"),
    (["--timeout", "-5"], "argument --timeout: must be a positive number of seconds"),
    (["--test-size", "0.6", "--val-size", "0.5"], "--test-size + --val-size must be < 1"),
    (["--sampler", "nope"], "--sampler 'nope': unknown sampler"),
    (["--search-space", "SPACE"], "--search-space"),
])
def test_option_errors_name_the_option_not_a_graph_node(tmp_path, args, fragment):
    """Before: option and search-space mistakes were reported as 'error in load_data'."""
    space = tmp_path / "space.json"
    space.write_text(json.dumps({"num_leaves": {"type": "int", "low": 50, "high": 10}}))
    home = tmp_path / "home"
    r = hpo_refused(home, *TRAIN, *[str(space) if a == "SPACE" else a for a in args])
    assert r.returncode == 2, r.stderr[-2000:]
    assert fragment in r.stderr and "load_data" not in r.stderr + r.stdout, r.stderr
    _nothing_started(home)


@pytest.mark.parametrize("command", ["train", "tune"])
@pytest.mark.parametrize("content, fragment", [
    ({"num_leave": {"type": "int", "low": 4, "high": 64}}, "lightgbm does not take 'num_leave'; it takes"),
    (None, "holds null, not a search space"),
])
def test_search_space_mistakes_are_refused_before_the_work(tmp_path, command, content, fragment):
    """Before: a misspelled param was searched although LightGBM ignores it; a file holding null
    quietly meant the default space."""
    space = tmp_path / "space.json"
    space.write_text(json.dumps(content))
    home = tmp_path / "home"
    r = hpo_refused(home, command, "--dataset", "breast_cancer", "--n-trials", "3", "--quiet", "--search-space",
                    str(space))
    assert r.returncode == 2, r.stderr[-2000:]
    assert fragment in r.stderr and "Traceback" not in r.stderr, r.stderr
    if content is not None:
        assert "num_leaves" in r.stderr.split("it takes", 1)[1]
    _nothing_started(home)


def test_tune_by_time_prints_its_study_few_progress_lines_and_short_values(tmp_path):
    """Before: with --timeout and no --n-trials the progress showed '74/0' once per trial; tune printed
    'run - (thread -)'; a constant column's 8,000-character value filled the 'dropped columns' line."""
    rng = np.random.default_rng(0)
    n = 400
    x = rng.normal(size=n)
    frame = pd.DataFrame({"x": x, "z": rng.normal(size=n), "note": "lorem ipsum " * 700,
                          "y": (x + rng.normal(scale=0.5, size=n) > 0).astype(int)})
    csv = tmp_path / "data.csv"
    frame.to_csv(csv, index=False)
    r = hpo(tmp_path / "home", "tune", "--data", str(csv), "--target", "y", "--algorithm", "logistic_regression",
            "--timeout", "4", "--scheme", "holdout", "--no-db", "--no-mlflow",
            "--output-json", str(tmp_path / "t.json"))
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads((tmp_path / "t.json").read_text())
    assert out["n_trials"] > 5, out  # more trials than progress lines below
    progress = [line for line in r.stderr.splitlines() if "tuning" in line]
    assert progress and len(progress) <= 3, r.stderr  # one line per 10 s in a log, not one per trial
    assert not re.search(r"\d+/0\b", r.stderr), r.stderr
    first = r.stdout.strip().splitlines()[0]
    assert first.startswith(f"study {out['study_name']}: completed") and "run -" not in r.stdout, r.stdout
    dropped = next(line for line in r.stdout.splitlines() if "dropped columns" in line)
    assert "note (constant" in dropped and len(dropped) < 300 and "more characters" in dropped, dropped


def test_a_target_with_about_one_row_per_class_is_refused(tmp_path):
    """Before: 3,000 rows of 1,000 string classes 'completed' at test accuracy 0.002 without a word."""
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"a": rng.normal(size=3000), "b": rng.normal(size=3000),
                          "label": [f"class-{i % 1000:04d}" for i in range(3000)]})
    csv = tmp_path / "many.csv"
    frame.to_csv(csv, index=False)
    r = hpo(tmp_path / "home", "train", "--data", str(csv), "--target", "label", "--n-trials", "2",
            "--no-db", "--no-mlflow", "--quiet")
    assert r.returncode == 2, r.stderr[-2000:] + r.stdout[-2000:]
    assert "1,000 classes for 3,000 rows: the median class gets 1 training row" in r.stderr, r.stderr


def test_a_named_study_on_other_data_is_refused_and_new_study_starts_the_next_name(tmp_path):
    """Issue 9.3. Before: `hpo tune --data a.csv --study-name same` then `--data b.csv`: exit 0, trials
    scored on different data in one study."""
    rng = np.random.default_rng(0)
    for name, n in (("a", 300), ("b", 260)):
        x = rng.normal(size=(n, 3))
        frame = pd.DataFrame(x, columns=["x1", "x2", "x3"]).assign(y=(x[:, 0] + rng.normal(size=n) > 0).astype(int))
        frame.to_csv(tmp_path / f"{name}.csv", index=False)
    home = tmp_path / "home"
    base = ["tune", "--target", "y", "--algorithm", "logistic_regression", "--n-trials", "2", "--scheme", "holdout",
            "--study-name", "same", "--no-mlflow", "--quiet"]
    first = hpo(home, *base, "--data", str(tmp_path / "a.csv"))
    assert first.returncode == 0, first.stderr[-2000:]
    refused = hpo(home, *base, "--data", str(tmp_path / "b.csv"))
    assert refused.returncode == 2, refused.stderr[-2000:]
    assert "study 'same' exists with other data or rules: dataset fingerprint" in refused.stderr
    assert "--new-study" in refused.stderr and "Traceback" not in refused.stderr
    out = tmp_path / "new.json"
    new = hpo(home, *base, "--data", str(tmp_path / "b.csv"), "--new-study", "--output-json", str(out))
    assert new.returncode == 0, new.stderr[-2000:]
    assert json.loads(out.read_text())["study_name"] == "same-2"


def test_engine_settings_are_options_of_train_and_tune(tmp_path):
    """Issue 8.2/8.4. Before: `hpo train --pruner percentile` was refused (no pruner options) and
    enqueue, patience/min-improvement and max-failures had no option."""
    configs = tmp_path / "configs.json"
    configs.write_text(json.dumps([{"C": 0.0123}]))
    common = ["--dataset", "breast_cancer", "--algorithm", "logistic_regression", "--n-trials", "40", "--quiet",
              "--no-mlflow", "--pruner", "percentile", "--pruner-options", '{"percentile": 40}',
              "--enqueue", str(configs), "--patience", "2", "--min-improvement", "0.5", "--max-failures", "3"]
    out = tmp_path / "tune.json"
    r = hpo(tmp_path / "home", "tune", *common, "--no-db", "--output-json", str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    summary = json.loads(out.read_text())
    assert summary["stop_reason"] == "patience" and summary["n_trials"] < 40, summary
    out = tmp_path / "train.json"
    r = hpo(tmp_path / "home", "train", *common, "--output-json", str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(out.read_text())["hpo"]["stop_reason"] == "patience"
    bad = hpo_refused(tmp_path / "home2", "train", *common[:-2], "--max-failures", "0")
    assert bad.returncode == 2 and "argument --max-failures: must be an integer >= 1" in bad.stderr
    bad = hpo_refused(tmp_path / "home2", "tune", "--dataset", "wine", "--pruner", "threshold", "--n-trials", "2")
    assert bad.returncode == 2 and "pruner 'threshold' needs option 'lower' and/or 'upper'" in bad.stderr, bad.stderr
    _nothing_started(tmp_path / "home2")


def test_phases_option_narrows_the_study_and_prints_its_phases(tmp_path):
    """Issue 12.3: `--phases N` reaches the study; the summary lists the phases; a bad N is refused."""
    out = tmp_path / "tune.json"
    r = hpo(tmp_path / "home", "tune", "--dataset", "breast_cancer", "--n-trials", "8", "--phases", "2", "--scheme",
            "holdout", "--no-db", "--no-mlflow", "--quiet", "--output-json", str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    phases = json.loads(out.read_text())["hpo"]["phases"]
    assert [p["phase"] for p in phases] == [1, 2]
    assert "phase 2: trials " in r.stdout and f"(narrowed around trial {phases[1]['best_before']['trial']})" in r.stdout
    bad = hpo_refused(tmp_path / "home2", "tune", "--dataset", "wine", "--phases", "0")
    assert bad.returncode == 2 and "argument --phases: must be an integer between 1 and 10" in bad.stderr


def test_a_column_that_gives_the_target_away_is_warned_about_and_drop_columns_leaves_it_out(tmp_path):
    """A column the target was cut from scores perfectly on every split: the run says so (state,
    JSON, a warning line naming the option that removes it); --drop-columns removes it, and a name
    that is not a column is refused naming the columns."""
    rng = np.random.default_rng(2)
    n = 400
    score = rng.normal(50, 10, size=n).round(1)
    frame = pd.DataFrame({"hours": score / 10 + rng.normal(size=n), "noise": rng.normal(size=n), "score": score,
                          "passed": np.where(score >= 50, "yes", "no")})
    csv = tmp_path / "exam.csv"
    frame.to_csv(csv, index=False)
    base = ["train", "--data", str(csv), "--target", "passed", "--n-trials", "2", "--no-db", "--no-mlflow"]
    r = hpo(tmp_path / "home", *base, "--output-json", str(tmp_path / "a.json"))
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads((tmp_path / "a.json").read_text())
    assert out["leak_suspects"] == {"score": "a threshold on it separates the classes exactly"}
    assert ("warning: column 'score' alone predicts the target (a threshold on it separates the classes exactly); "
            "if it is derived from the target or known only after the outcome, it leaks: leave it out with "
            "--drop-columns score") in r.stdout, r.stdout
    assert out["test_metrics"]["roc_auc"] == 1.0  # what the leak does
    from src.agents.ml_foundation.model_trainer import read_artifact_metadata
    assert read_artifact_metadata(out["model_path"])["leak_suspects"] == out["leak_suspects"]  # the model says so
    r = hpo(tmp_path / "home", *base, "--drop-columns", "score", "--output-json", str(tmp_path / "b.json"))
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads((tmp_path / "b.json").read_text())
    assert out["leak_suspects"] == {} and out["dropped_columns"] == {"score": "dropped by request"}
    assert "alone predicts" not in r.stdout and out["test_metrics"]["roc_auc"] < 1.0
    assert "dropped columns: score (dropped by request)" in r.stdout
    r = hpo(tmp_path / "home", *base, "--drop-columns", "scor,noise")
    assert r.returncode == 2 and "drop_columns: 'scor' is not a column of the data; its columns: 'hours', " in r.stderr
