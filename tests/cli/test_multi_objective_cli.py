"""``--objectives``, ``--pick-rule``, ``--pick-tolerance`` of ``hpo train`` and ``hpo tune`` (issue 10
item 3): bad settings exit 2 naming the option before any study; a run prints and writes the front."""

from __future__ import annotations

import json

import pytest

from ._helpers import hpo, hpo_refused


def _nothing_started(home) -> None:
    assert not home.exists() or not any(home.iterdir()), sorted(p.name for p in home.iterdir())


@pytest.mark.parametrize("command, args, fragment", [
    ("train", ["--objectives", "latency,roc_auc"], "--objectives must start with a metric"),
    ("tune", ["--objectives", "roc_auc,size,size"], "--objectives must name each objective once"),
    ("train", ["--objectives", "roc_auc,latency", "--pick-tolerance", "1.5"],
     "--pick-tolerance must be a fraction 0 <= tolerance < 1"),
    ("tune", ["--objectives", "roc_auc,latency", "--pick-tolerance", "-0.5"], "--pick-tolerance must be a fraction"),
    ("tune", ["--objectives", "roc_auc,latency", "--pick-rule", "smallest"], "--pick-rule must rank by an objective"),
    ("train", ["--objectives", "roc_auc,latency", "--sampler", "hyperopt"],
     "--sampler must drive several objectives: 'hyperopt' is single-objective"),
    ("tune", ["--pick-rule", "fastest"], "--pick-rule must be left out of a single-objective study"),
])
def test_bad_multi_objective_settings_exit_2_before_the_work(tmp_path, command, args, fragment):
    home = tmp_path / "home"
    r = hpo_refused(home, command, "--dataset", "breast_cancer", "--n-trials", "3", "--quiet", *args)
    assert r.returncode == 2, r.stderr[-2000:]
    assert fragment in r.stderr and "Traceback" not in r.stderr, r.stderr
    _nothing_started(home)


@pytest.mark.parametrize("command", ["train", "tune"])
def test_an_objective_unknown_for_the_problem_type_exits_2_before_any_study(tmp_path, command):
    """roc_auc for a regression table: known to be wrong once the table is loaded, before the study."""
    home = tmp_path / "home"
    out = tmp_path / "run.json"
    r = hpo_refused(home, command, "--dataset", "diabetes", "--n-trials", "3", "--quiet", "--no-db", "--no-mlflow",
            "--objectives", "roc_auc,latency", "--output-json", str(out))
    assert r.returncode == 2, r.stderr[-2000:]
    assert "objectives must start with a metric of regression: 'roc_auc' is not one" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and "trials:" not in r.stdout


def test_tune_prints_the_front_and_writes_it_to_output_json(tmp_path):
    home = tmp_path / "home"
    out = tmp_path / "run.json"
    r = hpo(home, "tune", "--dataset", "breast_cancer", "--n-trials", "6", "--quiet", "--no-db", "--no-mlflow",
            "--scheme", "holdout", "--objectives", "roc_auc,latency,size", "--pick-tolerance", "0.02",
            "--output-json", str(out))
    assert r.returncode == 0, r.stderr[-3000:]
    assert "pareto front (" in r.stdout and "<- picked" in r.stdout, r.stdout
    assert "pick rule 'fastest', tolerance 0.02 of the best roc_auc" in r.stdout, r.stdout
    summary = json.loads(out.read_text())
    hpo_ = summary["hpo"]
    assert hpo_["objectives"] == ["roc_auc", "latency", "size"]
    assert hpo_["pick"]["number"] in {p["number"] for p in hpo_["pareto_front"]}
    assert hpo_["pick"]["tolerance"] == 0.02 and summary["best_trial_number"] == hpo_["pick"]["number"]
    assert all(set(p["values"]) == {"roc_auc", "latency", "size"} for p in hpo_["pareto_front"])
