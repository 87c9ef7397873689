"""``hpo report`` on a real study (``hpo tune`` with real fits, PostgreSQL, MLflow), checked in the
file a user opens: every section, nothing loaded from outside, the study's numbers, valid PNGs,
the report logged to the study's MLflow run."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from src.mlops.reporting import SECTIONS
from tests.mlops.test_reporting import PNG_MAGIC, assert_offline

from ._helpers import hpo

pytestmark = pytest.mark.slow


class _Rows(HTMLParser):
    """The rows of the table in ``<section id="trials">``."""

    def __init__(self) -> None:
        super().__init__()
        self.section: str | None = None
        self.rows: list[list[str]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "section":
            self.section = dict(attrs).get("id")
        elif self.section == "trials" and tag == "tr":
            self.rows.append([])
        elif self.section == "trials" and tag == "td":
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self.rows[-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def test_report_of_a_tuned_study(home: Path):
    # no pruner: 12 complete trials (with the median pruner 4 of 12 were pruned in one run, too few to judge
    # convergence)
    run = hpo(home, "tune", "--dataset", "breast_cancer", "--n-trials", "12", "--scheme", "holdout",
              "--pruner", "none", "--study-name", "rep-study",
              "--quiet", "--output-json", str(home / "tune.json"))
    assert run.returncode == 0, run.stderr
    tuned = json.loads((home / "tune.json").read_text())
    analysis = tuned["hpo"]["analysis"]
    assert analysis["n_complete"] == tuned["n_completed"] and analysis["convergence"]["status"] in (
        "improving", "plateaued")
    assert analysis["importances"]  # 12 complete trials: enough for importances

    out = home / "out" / "report.html"
    rep = hpo(home, "report", "rep-study", "--out", str(out))
    assert rep.returncode == 0, rep.stderr
    page = out.read_text()
    for section in SECTIONS:
        assert f'<section id="{section}">' in page, section
    for plot in ("history", "importances", "parallel", "slices-0"):
        assert f'id="plot-{plot}"' in page, plot
    pngs = {p.name: p for p in out.parent.glob("report-*.png")}
    assert set(pngs) == {"report-history.png", "report-importances.png", "report-parallel.png", "report-slices.png"}
    for p in pngs.values():
        assert p.read_bytes().startswith(PNG_MAGIC) and p.stat().st_size > 5000
    assert_offline(page, set(pngs))

    # the data is the study's: the best value, the trial count, one table row per trial with its value
    assert f"{tuned['best_value']:.6g}" in page
    assert f"{tuned['n_trials']} ({tuned['n_completed']} complete" in page
    rows = _Rows()
    rows.feed(page)
    table = [r for r in rows.rows if r]
    assert [int(r[0]) for r in table] == list(range(tuned["n_trials"]))
    best = next(r for r in table if int(r[0]) == tuned["best_trial_number"])
    assert float(best[2]) == pytest.approx(tuned["best_value"], rel=1e-5)

    # logged to the study's MLflow parent run, beside the analysis the study logged when it ended
    run_id = re.search(r"mlflow run: (\w+)", rep.stdout).group(1)
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
    names = {a.path for a in client.list_artifacts(run_id, "report")}
    assert names == {f"report/{n}" for n in [out.name, *pngs]}
    assert "analysis.json" in {a.path for a in client.list_artifacts(run_id)}
    assert client.get_run(run_id).data.tags["hpo.study_name"] == "rep-study"


def test_report_of_an_unknown_study_is_refused(home: Path):
    rep = hpo(home, "report", "no-such-study", "--out", str(home / "x.html"))
    assert rep.returncode == 2
    assert "no study named 'no-such-study'" in rep.stderr
    assert not (home / "x.html").exists()


def test_a_narrowed_study_records_its_phases_in_mlflow_and_the_report(home: Path):
    """Issue 12.3: `hpo tune --phases 2` (PostgreSQL, MLflow): the parent run has phases.json and each
    phase's best; the report's narrowing section shows the phases."""
    run = hpo(home, "tune", "--dataset", "breast_cancer", "--n-trials", "8", "--phases", "2", "--scheme", "holdout",
              "--study-name", "phased", "--quiet", "--output-json", str(home / "tune.json"))
    assert run.returncode == 0, run.stderr
    phases = json.loads((home / "tune.json").read_text())["hpo"]["phases"]
    assert [p["phase"] for p in phases] == [1, 2]
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
    (parent,) = client.search_runs([e.experiment_id for e in client.search_experiments()],
                                   "tags.`hpo.role` = 'study' and tags.`hpo.study_name` = 'phased'")
    logged = json.loads(Path(client.download_artifacts(parent.info.run_id, "phases.json", str(home))).read_text())
    assert [p["ranges"] for p in logged] == [p["ranges"] for p in phases]
    for p in phases:
        assert parent.data.metrics[f"phase_{p['phase']}.best_value"] == pytest.approx(p["best_value"])
    rep = hpo(home, "report", "phased", "--out", str(home / "phased.html"), "--no-png", "--no-mlflow")
    assert rep.returncode == 0, rep.stderr
    page = (home / "phased.html").read_text()
    section = page[page.index('<section id="phases">'):]
    section = section[:section.index("</section>")]
    for p in phases:
        assert f"<td class=num>{p['best_value']:.6g}</td>" in section
