"""``hpo train`` twice on the same data (F11, F12, F28): the second study starts from the first one's
best trials (the PostgreSQL history), reuses its results from the trial cache, and ``--compare random``
shows defaults vs random vs tuned in the summary and ``--output-json``."""

from __future__ import annotations

import json

import optuna
import pytest

from src.mlops.persistence import create_optuna_storage

from ._helpers import hpo

pytestmark = pytest.mark.slow


def _dsn(home) -> str:
    import pgserver

    return pgserver.get_server(home / "pgdata").get_uri()


def test_a_second_train_on_the_same_data_is_warm_started_and_cached_and_compared(tmp_path, home):
    common = ("train", "--dataset", "breast_cancer", "--n-trials", "6", "--scheme", "holdout", "--no-mlflow",
              "--quiet")
    first = hpo(home, *common, "--output-json", str(tmp_path / "1.json"))
    assert first.returncode == 0, first.stderr[-3000:]
    one = json.loads((tmp_path / "1.json").read_text())["hpo"]
    assert one["warm_start"]["n_seeded"] == 0 and "warm start: no earlier study of this data" in first.stdout

    second = hpo(home, *common, "--warm-start-trials", "3", "--compare", "random",
                 "--output-json", str(tmp_path / "2.json"))
    assert second.returncode == 0, second.stderr[-3000:]
    two = json.loads((tmp_path / "2.json").read_text())["hpo"]
    assert two["warm_start"]["n_seeded"] == 3 and two["warm_start"]["matched_by"] == "dataset"
    assert "warm start: 3 trials from earlier studies of this data" in second.stdout
    # the defaults and the three history trials were trained by the first run: served from the cache
    assert two["n_cached"] >= 4 and f"cached: {two['n_cached']} of the complete trials" in second.stdout

    storage = create_optuna_storage(_dsn(home))
    try:
        study = optuna.load_study(study_name=two["study_name"], storage=storage)
        first_study = optuna.load_study(study_name=one["study_name"], storage=storage)
        trials = sorted(study.get_trials(), key=lambda t: t.number)
        assert [t.user_attrs.get("source") for t in trials[:4]] == ["defaults", "history", "history", "history"]
        earlier = {json.dumps(t.params, sort_keys=True): t.value for t in first_study.get_trials()
                   if t.state == optuna.trial.TrialState.COMPLETE}
        for t in trials[:4]:
            assert t.user_attrs.get("cached") is True
            assert earlier[json.dumps(t.params, sort_keys=True)] == t.value  # the very same result
    finally:
        getattr(storage, "close", lambda: None)()

    c = two["comparison"]
    assert c["defaults"] == two["defaults_value"] and c["tuned"] == two["best_value"]
    assert isinstance(c["random"], float) and c["random_trials"] == 6
    assert all(isinstance(c[k], float) for k in ("test_defaults", "test_random", "test_tuned"))
    assert "defaults     random      tuned" in second.stdout
    # the study keeps the comparison, test scores included, and `hpo report` shows it
    storage = create_optuna_storage(_dsn(home))
    try:
        kept = optuna.load_study(study_name=two["study_name"], storage=storage).user_attrs["hpo.comparison"]
    finally:
        getattr(storage, "close", lambda: None)()
    keys = ("defaults", "random", "tuned", "test_defaults", "test_random", "test_tuned")
    assert {k: kept[k] for k in keys} == {k: c[k] for k in keys}
    report = hpo(home, "report", two["study_name"], "--out", str(tmp_path / "r.html"), "--no-png", "--no-mlflow")
    assert report.returncode == 0, report.stderr[-3000:]
    page = (tmp_path / "r.html").read_text()
    section = page[page.index('<section id="comparison">'):]
    section = section[:section.index("</section>")]
    for name, prefix in (("validation", ""), ("test", "test_")):
        row = section[section.index(f'<tr data-row="{name}">'):]
        row = row[:row.index("</tr>")]
        assert row.count("<td class=num>") == 3
        for k in ("defaults", "random", "tuned"):
            assert f"<td class=num>{c[prefix + k]:.6g}</td>" in row

    cold = hpo(home, *common, "--no-warm-start", "--no-cache", "--output-json", str(tmp_path / "3.json"))
    assert cold.returncode == 0, cold.stderr[-3000:]
    three = json.loads((tmp_path / "3.json").read_text())["hpo"]
    assert three["warm_start"]["enabled"] is False and three["n_cached"] == 0
    assert "warm start: off" in cold.stdout
