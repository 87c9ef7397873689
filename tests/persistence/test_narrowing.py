"""Adaptive narrowing (F13) end to end on every history backend (in memory and PostgreSQL): real
LightGBM fits; the phases narrow around the best trial, widen on a bound, and are recorded in the
study, the history database and the HTML report."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import optuna
import pytest

from src.mlops.errors import ConfigurationError
from src.mlops.narrowing import BOUND_MARGIN, PHASES_ATTR
from src.mlops.optuna_optimizer import run_hyperparameter_optimization
from src.mlops.persistence import HistoryRecorder
from src.mlops.reporting import write_report
from src.mlops.search_space import parse_search_space

from .test_warm_start_and_cache import data  # noqa: F401 - the same small real data (a fixture)

SPACE = {"num_leaves": {"type": "int", "low": 4, "high": 64},
         "learning_rate": {"type": "float", "low": 0.02, "high": 0.3, "log": True},
         "min_child_samples": {"type": "int", "low": 5, "high": 60},
         "boosting_type": {"type": "categorical", "choices": ["gbdt", "goss"]}}


async def _tune(repo: Any, data: tuple[Any, ...], name: str, storage: Any, **kw: Any) -> Any:
    recorder = HistoryRecorder(repo)
    try:
        return await run_hyperparameter_optimization(
            "lightgbm", "binary_classification", *data, study_name=name, listeners=[recorder], storage=storage,
            seed=0, pruner="none", history=repo, fixed_params={"n_estimators": 40}, early_stopping_rounds=None,
            **kw)
    finally:
        await recorder.aclose(timeout=30)


async def test_phases_narrow_around_the_best_and_are_recorded(repo: Any, data: Any, tmp_path: Path) -> None:
    storage = optuna.storages.InMemoryStorage()
    result = await _tune(repo, data, "narrow", storage, n_trials=12, phases=2, search_space=SPACE)
    study = optuna.load_study(study_name="narrow", storage=storage)
    phases = result.phases
    assert [p["phase"] for p in phases] == [1, 2] and len(study.user_attrs[PHASES_ATTR]) == 2
    assert phases[0]["start_trial"] == 0 and phases[0]["n_trials"] + phases[1]["n_trials"] == result.n_trials == 12
    # phase 2's ranges: phase 1's narrowed around the best trial when phase 2 began
    before = study.trials[phases[1]["best_before"]["trial"]]
    assert phases[1]["best_before"]["value"] == before.value
    assert before.number < phases[1]["start_trial"]
    expected = parse_search_space(SPACE).narrowed(before.params, shrink=0.5, margin=BOUND_MARGIN)
    for name in ("num_leaves", "learning_rate", "min_child_samples"):
        got = phases[1]["ranges"][name]
        assert (got["low"], got["high"]) == pytest.approx((expected[name].low, expected[name].high))
        assert got["high"] - got["low"] < SPACE[name]["high"] - SPACE[name]["low"] or \
            got["high"] > SPACE[name]["high"] or got["low"] < SPACE[name]["low"]  # narrower, or widened on a bound
        assert got["low"] <= before.params[name] <= got["high"]
    # every trial of phase 2 was sampled in its ranges (under its distributions)
    for t in study.trials[phases[1]["start_trial"]:]:
        for name, r in phases[1]["ranges"].items():
            if name in t.params:
                assert r["low"] <= t.params[name] <= r["high"]
                assert t.distributions[name].low == pytest.approx(r["low"])
    # per phase: its best trial among its own trials
    for p in phases:
        mine = [t for t in study.trials if p["start_trial"] <= t.number <= p["end_trial"] and t.value is not None]
        assert p["best_value"] == max(t.value for t in mine)
    # the history database keeps the phases with the study
    stored = await repo.get_study("narrow")
    assert stored.phases is not None and [p["phase"] for p in stored.phases] == [1, 2]
    assert stored.phases[1]["ranges"] == phases[1]["ranges"]
    assert stored.phases[1]["best_value"] == pytest.approx(phases[1]["best_value"])
    # the objective's own space is back after the study (the final fits and a baseline use it)
    assert study.user_attrs["search_space"]["num_leaves"] == SPACE["num_leaves"]
    # the report has the phases' table with the same numbers
    page = write_report(study, tmp_path / "r.html", pngs=False).html.read_text()
    section = re.search(r'<section id="phases">(.*?)</section>', page, re.S).group(1)
    assert "One phase" not in section
    for p in phases:
        assert f"<td class=num>{p['best_value']:.6g}</td>" in section
        assert f"{p['start_trial']}&ndash;{p['end_trial']}" in section
    # the ranges: one row per param, a column per phase
    assert "Ranges searched in each phase" in section and section.count("<td>num_leaves</td>") == 1
    assert section.count("<th>phase 1</th>") == 1 and section.count("<th>phase 2</th>") == 1


async def test_a_best_on_a_bound_widens_that_side(repo: Any, data: Any) -> None:
    """With 40 rounds, a learning rate in [0.001, 0.004] is best at its top: log loss falls as it grows."""
    space = {"learning_rate": {"type": "float", "low": 0.001, "high": 0.004, "log": True},
             "num_leaves": {"type": "int", "low": 8, "high": 16}}
    storage = optuna.storages.InMemoryStorage()
    result = await _tune(repo, data, "widen", storage, n_trials=8, phases=2, search_space=space, metric="log_loss",
                         enqueue=[{"learning_rate": 0.004, "num_leaves": 12}], warm_start=False,
                         enqueue_defaults=False)
    before = result.phases[1]["best_before"]
    study = optuna.load_study(study_name="widen", storage=storage)
    assert study.trials[before["trial"]].params["learning_rate"] == pytest.approx(0.004, rel=0.08)
    lr = result.phases[1]["ranges"]["learning_rate"]
    assert lr["high"] > 0.004 and lr["low"] > 0.001  # widened above the bound, narrowed below
    assert any(t.params["learning_rate"] > 0.004 for t in study.trials[result.phases[1]["start_trial"]:])


async def test_narrowing_needs_one_family(repo: Any, data: Any) -> None:
    with pytest.raises(ConfigurationError, match="one model family"):
        await run_hyperparameter_optimization("lightgbm,random_forest", "binary_classification", *data,
                                              n_trials=4, phases=2)
    with pytest.raises(ConfigurationError, match="phases must be an integer"):
        await run_hyperparameter_optimization("lightgbm", "binary_classification", *data, n_trials=4, phases=0)
