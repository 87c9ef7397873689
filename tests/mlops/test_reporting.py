"""The report writer on constructed studies: hostile strings stay text, multi-objective studies get
their Pareto front, and the page loads nothing from outside."""

from __future__ import annotations

from html.parser import HTMLParser

import optuna
import plotly.offline
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial

from src.mlops.reporting import SECTIONS, write_report

EVIL = '"><script>alert(1)</script><a href="https://evil.example/x">'
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def tag_links(page: str) -> list[tuple[str, str, str]]:
    """(tag, attribute, value) of every src/href/action/srcset/data attribute of a real tag."""
    found: list[tuple[str, str, str]] = []

    class Links(HTMLParser):
        def handle_starttag(self, tag, attrs):
            found.extend((tag, k, v or "") for k, v in attrs if k in ("src", "href", "action", "srcset", "data",
                                                                      "formaction", "poster"))

    Links().feed(page)
    return found


def outside_library(page: str) -> str:
    """The page without the embedded plotly.js library (which must appear exactly once)."""
    lib = plotly.offline.get_plotlyjs()
    assert page.count(lib) == 1
    return page.replace(lib, "")


def assert_offline(page: str, pngs: set[str], *, no_url_text: bool = True) -> None:
    """No src/href outside the page (and, unless the study's own data holds one, no URL at all)."""
    rest = outside_library(page)
    if no_url_text:
        assert "http://" not in rest and "https://" not in rest and "//" + "cdn" not in rest
    for tag, attr, value in tag_links(rest):
        assert value.startswith("#") or value in pngs, (tag, attr, value)
    assert "Content-Security-Policy" in rest and "default-src 'none'" in rest


def _hostile_study() -> optuna.Study:
    study = optuna.create_study(study_name=f"study{EVIL}", direction="maximize")
    dists = {EVIL: CategoricalDistribution(["ok", EVIL]), "lr": FloatDistribution(0.001, 0.3, log=True)}
    for i in range(14):
        study.add_trial(create_trial(params={EVIL: EVIL if i % 2 else "ok", "lr": 0.001 * (i + 1)},
                                     distributions=dists, value=0.5 + 0.01 * i,
                                     user_attrs={"source": EVIL}))
    study.add_trial(create_trial(params={EVIL: "ok", "lr": 0.01}, distributions=dists, state=TrialState.FAIL,
                                 user_attrs={"fail_reason": EVIL}))
    return study


def test_hostile_strings_are_escaped_everywhere(tmp_path):
    files = write_report(_hostile_study(), tmp_path / "r.html")
    page = files.html.read_text()
    rest = outside_library(page)
    assert "<script>alert(1)" not in rest and "alert(1)</script>" not in rest
    assert 'href="https://evil' not in rest
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in rest  # shown as text in the tables
    assert_offline(page, {p.name for p in files.pngs.values()}, no_url_text=False)  # the URL is text here
    for section in SECTIONS:
        assert f'<section id="{section}">' in page


def test_multi_objective_report_has_a_pareto_front(tmp_path):
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.set_metric_names(["roc_auc", "latency_ms"])
    for i in range(12):
        study.add_trial(create_trial(params={"lr": 0.01 * (i + 1)}, distributions={"lr": FloatDistribution(0.001, 0.3)},
                                     values=[0.5 + 0.01 * i, float((i * 7) % 12)]))
    files = write_report(study, tmp_path / "mo.html")
    page = files.html.read_text()
    assert 'id="plot-pareto"' in page and "no Pareto front" not in page
    assert "latency_ms" in page
    assert files.pngs["pareto"].read_bytes().startswith(PNG_MAGIC)
    assert_offline(page, {p.name for p in files.pngs.values()})


def test_a_study_without_complete_trials_still_gets_every_section(tmp_path):
    study = optuna.create_study()
    study.add_trial(create_trial(params={}, distributions={}, state=TrialState.FAIL))
    files = write_report(study, tmp_path / "empty.html")
    page = files.html.read_text()
    for section in SECTIONS:
        assert f'<section id="{section}">' in page
    assert "no complete trial" in page and files.pngs == {}


@pytest.mark.parametrize("n", [1200])
def test_the_trial_table_is_bounded(tmp_path, n):
    study = optuna.create_study()
    for i in range(n):
        study.add_trial(create_trial(params={"x": i / n}, distributions={"x": FloatDistribution(0, 1)}, value=i / n))
    files = write_report(study, tmp_path / "big.html", pngs=False)
    page = files.html.read_text()
    assert f"{n} trials: the table shows the latest 999 and the best" in page


async def test_the_report_shows_defaults_vs_random_vs_tuned_when_the_study_has_a_comparison(tmp_path) -> None:
    """``--compare random`` keeps the comparison in the study; ``hpo train`` adds the test scores; the
    report's comparison section shows the same numbers (real LightGBM fits on small data)."""
    import re

    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    from src.mlops.compare import COMPARE_ATTR, record_test_scores
    from src.mlops.optuna_optimizer import run_hyperparameter_optimization

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    X_tr, X_va, y_tr, y_va = train_test_split(X.iloc[:, :8], y, test_size=0.3, random_state=0, stratify=y)
    storage = optuna.storages.InMemoryStorage()
    result = await run_hyperparameter_optimization(
        "lightgbm", "binary_classification", X_tr, y_tr, X_va, y_va, n_trials=4, seed=0, pruner="none",
        study_name="cmp", storage=storage, compare="random", fixed_params={"n_estimators": 30})
    c = result.comparison
    study = optuna.load_study(study_name="cmp", storage=storage)
    assert study.user_attrs[COMPARE_ATTR]["random"] == c["random"] and "random_best_params" not in \
        study.user_attrs[COMPARE_ATTR]

    def section(page: str) -> str:
        return re.search(r'<section id="comparison">(.*?)</section>', page, re.S).group(1)

    def row(html_: str, name: str) -> list[str]:
        cells = re.search(rf'<tr data-row="{name}">(.*?)</tr>', html_, re.S).group(1)
        return re.findall(r"<td class=num>(.*?)</td>", cells)

    page = write_report(study, tmp_path / "cmp.html", pngs=False).html.read_text()
    shown = section(page)
    assert row(shown, "validation") == [f"{c['defaults']:.6g}", f"{c['random']:.6g}", f"{c['tuned']:.6g}"]
    assert 'data-row="test"' not in shown and "4 trials" in shown
    # `hpo train` scores the three models on test and records the scores in the study
    record_test_scores(storage, "cmp", {**c, "test_defaults": 0.91, "test_random": 0.925, "test_tuned": 0.93})
    page = write_report(optuna.load_study(study_name="cmp", storage=storage), tmp_path / "cmp2.html",
                        pngs=False).html.read_text()
    assert row(section(page), "validation") == [f"{c['defaults']:.6g}", f"{c['random']:.6g}", f"{c['tuned']:.6g}"]
    assert row(section(page), "test") == ["0.91", "0.925", "0.93"]
    # a study without a comparison says so
    plain = optuna.create_study(study_name="plain", direction="maximize")
    plain.add_trial(create_trial(params={"x": 0.5}, distributions={"x": FloatDistribution(0, 1)}, value=1.0))
    assert "No comparison was run" in section(write_report(plain, tmp_path / "plain.html", pngs=False).html.read_text())
