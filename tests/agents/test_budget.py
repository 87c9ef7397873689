"""The whole-run time budget's arithmetic: what the final fits will cost, measured corrections, and
the trial used when the best one cannot be refit in the time left."""

from __future__ import annotations

import asyncio
import time

import optuna
import pytest

from src.agents.ml_foundation.model_trainer.budget import (
    DEFAULT_FIT_RATIO,
    RATIO_SAMPLES,
    SAFETY,
    SWAP_SLACK_S,
    TIMINGS_FILE,
    PostStudyReserve,
    final_fit_estimate,
    measured_fit_ratio,
    measured_seconds,
    per_fit_seconds,
    record_fit_ratio,
    record_seconds,
    size_class,
    swap_slack,
)
from src.mlops.types import SOURCE_ATTR


def _trial(number: int, value: float, *, fit_seconds: float, fit_rows: int, best_iteration: int | None = None,
           folds: int = 0, source: str | None = None) -> optuna.trial.FrozenTrial:
    attrs: dict = {"fit_seconds": fit_seconds, "fit_rows": fit_rows}
    if best_iteration is not None:
        attrs["best_iteration"] = best_iteration
    if folds:
        attrs["fold_scores"] = [value] * folds
    if source:
        attrs[SOURCE_ATTR] = source
    t = optuna.trial.create_trial(params={"x": float(number)},
                                  distributions={"x": optuna.distributions.FloatDistribution(0, 100)},
                                  value=value, user_attrs=attrs)
    t.number = number
    return t


def test_a_fit_costs_its_share_of_the_trial_and_grows_with_rows_and_rounds() -> None:
    assert per_fit_seconds({"fit_seconds": 10.0, "fold_scores": [1, 2, 3, 4, 5]}) == 2.0
    assert per_fit_seconds({"fit_seconds": 3.0}) == 3.0 and per_fit_seconds({}) is None
    # not boosting: time grows with the rows only
    assert final_fit_estimate({"fit_seconds": 2.0, "fit_rows": 1000}, 2000, 1000) == pytest.approx(4.0)
    # boosting that stopped at round 100 (ran 150 with patience 50): the final fit on twice the rows
    # runs 200 rounds of twice the cost each
    attrs = {"fit_seconds": 1.5, "fit_rows": 1000, "best_iteration": 100}
    assert final_fit_estimate(attrs, 2000, 1000, patience=50) == pytest.approx(1.5 * 2 * 200 / 150)
    # without fit_rows, the default rows stand in
    assert final_fit_estimate({"fit_seconds": 1.0}, 300, 100) == pytest.approx(3.0)
    # a classifier's final fit runs sqrt(growth) x the rounds (src.mlops.fitting.rounds_growth)
    assert final_fit_estimate(attrs, 2000, 1000, patience=50, problem_type="binary_classification") == \
        pytest.approx(1.5 * 2 * 100 * 2 ** 0.5 / 150)


def test_the_reserve_follows_the_best_trial_and_counts_the_defaults_model_apart() -> None:
    reserve = PostStudyReserve(rows_trainval=1000, rows_all=1250, default_fit_rows=800, fit_ratio=0.5)
    ctx = type("C", (), {"direction": "maximize"})()
    asyncio.run(reserve.on_study_start(optuna.create_study(direction="maximize"), ctx))  # type: ignore[arg-type]
    study = None
    defaults = _trial(0, 0.80, fit_seconds=1.0, fit_rows=800, source="defaults")
    asyncio.run(reserve.on_trial_finished(study, defaults))  # type: ignore[arg-type]
    only_defaults = SAFETY * 0.5 * (1.0 * 1000 / 800 + 1.0 * 1250 / 800)
    assert reserve() == pytest.approx(only_defaults)  # the defaults model is the tuned one: fitted once
    slow = _trial(1, 0.85, fit_seconds=4.0, fit_rows=800)
    asyncio.run(reserve.on_trial_finished(study, slow))  # type: ignore[arg-type]
    expected = SAFETY * 0.5 * (4.0 * 1000 / 800 + 4.0 * 1250 / 800 + 1.0 * 1000 / 800)
    assert reserve() == pytest.approx(expected)
    worse = _trial(2, 0.70, fit_seconds=100.0, fit_rows=800)  # not the best: costs nothing
    asyncio.run(reserve.on_trial_finished(study, worse))  # type: ignore[arg-type]
    assert reserve() == pytest.approx(expected)


def test_a_best_trial_too_slow_to_refit_in_the_time_left_gives_way_to_the_best_affordable_one() -> None:
    reserve = PostStudyReserve(rows_trainval=1000, rows_all=None, default_fit_rows=1000)
    reserve._maximize = True
    for t in (_trial(0, 0.80, fit_seconds=1.0, fit_rows=1000, source="defaults"),
              _trial(1, 0.82, fit_seconds=2.0, fit_rows=1000),
              _trial(2, 0.83, fit_seconds=30.0, fit_rows=1000)):
        asyncio.run(reserve.on_trial_finished(None, t))  # type: ignore[arg-type]
    assert reserve.affordable(1000.0) is None  # the best fits: use it
    number, params, attrs = reserve.affordable(5.0)
    assert number == 1 and params == {"x": 1.0} and attrs["_value"] == 0.82
    number, _, _ = reserve.affordable(0.1)  # nothing fits: the defaults, the cheapest fits there are
    assert number == 0


def test_the_fallback_is_never_worse_than_the_defaults_on_a_minimized_metric() -> None:
    """Before (a benchmark run on openintro::ames, RMSE): the best trial's fits did not fit in the
    time left and a cheap trial with 4x the defaults' RMSE was deployed (test RMSE 96,489 vs 22,870)."""
    reserve = PostStudyReserve(rows_trainval=1875, rows_all=2344, default_fit_rows=1406)
    reserve._maximize = False
    for t in (_trial(0, 24877.0, fit_seconds=0.6, fit_rows=1406, source="defaults"),
              _trial(4, 102140.0, fit_seconds=0.1, fit_rows=1406),   # cheap, awful
              _trial(9, 23500.0, fit_seconds=0.3, fit_rows=1406),    # cheap, better than the defaults
              _trial(18, 21000.0, fit_seconds=4.0, fit_rows=1406)):  # best, costly
        asyncio.run(reserve.on_trial_finished(None, t))  # type: ignore[arg-type]
    number, _, attrs = reserve.affordable(3.0)
    assert number == 9 and attrs["_value"] == 23500.0
    number, _, _ = reserve.affordable(1.2)  # only the defaults (one fit of each size) fit
    assert number == 0


def test_a_study_that_stopped_at_its_moving_deadline_keeps_its_best_trial() -> None:
    """Before: the study stops when the time left equals the padded estimate; a moment later the
    padded estimate was above the time left and the best trial gave way in most time-bounded runs."""
    reserve = PostStudyReserve(rows_trainval=1000, rows_all=2000, default_fit_rows=800)
    reserve._maximize = True
    for t in (_trial(0, 0.80, fit_seconds=1.0, fit_rows=800, source="defaults"),
              _trial(1, 0.83, fit_seconds=3.0, fit_rows=800)):
        asyncio.run(reserve.on_trial_finished(None, t))  # type: ignore[arg-type]
    padded = reserve()
    assert reserve.affordable(padded * 0.95) is None and reserve.affordable(padded / 1.3) is None
    assert reserve.affordable(padded / 1.3 - 1.0) is not None  # the unpadded estimate does not fit


def test_a_best_trial_out_of_reach_when_it_completes_does_not_stop_the_study() -> None:
    """Before (bench_real at 30 s, dplyr::storms): a 2,000-round portfolio trial became the best 5 s
    into a 21 s study; its final fits needed 22.6 s, the reserve followed it, the study stopped at once
    and the defaults were deployed with 16 s of the budget unused."""
    trials = (_trial(0, 5.43, fit_seconds=0.5, fit_rows=9377, source="defaults"),
              _trial(1, 4.50, fit_seconds=4.0, fit_rows=9377, best_iteration=1950),   # best, out of reach
              _trial(2, 4.90, fit_seconds=0.6, fit_rows=9377, best_iteration=300))   # better than the defaults
    kwargs = dict(rows_trainval=12503, rows_all=15629, default_fit_rows=9377, fit_ratio=0.7)

    def reserve_after(study_end):
        r = PostStudyReserve(**kwargs, study_end=study_end)
        r._maximize = False
        seen = []
        for t in trials:
            asyncio.run(r.on_trial_finished(None, t))  # type: ignore[arg-type]
            seen.append(r())
        return r, seen

    old, old_seen = reserve_after(None)  # no study end known: the reserve follows the best trial
    assert old_seen[1] == pytest.approx(old.best_seconds()) and old_seen[1] > 10.0
    r, seen = reserve_after(time.time() + 10.0)
    assert seen[1] == pytest.approx(seen[0])  # trial 1 needs more than the 10 s left: not followed
    assert seen[0] < seen[2] < 10.0  # trial 2 can be deployed: the study keeps time for it
    assert r.best_seconds() > 10.0  # the best trial is still the best; its cost is reported
    number, _, attrs = r.affordable(seen[2])  # the study stopped for trial 2: it is the one used
    assert number == 2 and attrs["_value"] == 4.90
    assert r.affordable(0.1)[0] == 0  # far past: the defaults, as before
    # the same test as at the study's end: a trial the end would keep is followed (storms, seed 2 at 60 s:
    # its padded fits needed 27.3 s with 23 s left, unpadded 21 s; refused, trial 1 was deployed)
    padded = old.best_seconds()
    unpadded = padded / SAFETY  # no family overheads here
    r, seen = reserve_after(time.time() + (padded + unpadded) / 2)
    assert seen[1] == pytest.approx(padded)  # followed: the study stops at once and keeps it
    assert r.affordable((padded + unpadded) / 2 - 0.2) is None


def test_a_best_trial_whose_fits_take_less_than_the_slack_is_kept_when_no_time_is_left() -> None:
    """Before (bench_real at 60 s, 7 of 20 runs): the study's wrap-up used the last second, and a best
    trial whose final fits needed 0.2-2.9 s gave way to the defaults trial: the tuning was thrown away
    to save a second. A run may overrun its budget by max(3 s, 5 %); half of that is the slack."""
    assert swap_slack(None) == SWAP_SLACK_S and swap_slack(60) == 1.5 and swap_slack(600) == 15.0
    reserve = PostStudyReserve(rows_trainval=3117, rows_all=3896, default_fit_rows=2494, fit_ratio=0.7)
    reserve._maximize = True
    for t in (_trial(0, 0.705, fit_seconds=0.05, fit_rows=2494, source="defaults"),
              _trial(7, 0.708, fit_seconds=0.3, fit_rows=2494)):
        asyncio.run(reserve.on_trial_finished(None, t))  # type: ignore[arg-type]
    assert 0.3 < reserve() < 1.0
    assert reserve.affordable(0.0) is not None  # the old slack: the defaults replace the best
    assert reserve.affordable(0.0, slack=swap_slack(60)) is None  # the best trial is deployed
    assert reserve.affordable(-5.0, slack=swap_slack(60)) is not None  # far past the deadline: give way


def test_measured_seconds_are_a_running_average_and_survive_a_bad_file(tmp_path) -> None:
    assert measured_seconds(tmp_path, "upload", 2.0) == 2.0
    record_seconds(tmp_path, "upload", 4.0)
    assert measured_seconds(tmp_path, "upload", 2.0) == 4.0
    record_seconds(tmp_path, "upload", 2.0)
    assert measured_seconds(tmp_path, "upload", 9.0) == pytest.approx(3.0)
    (tmp_path / TIMINGS_FILE).write_text("{not json")
    assert measured_seconds(tmp_path, "upload", 2.0) == 2.0
    record_seconds(tmp_path, "upload", 1.0)  # a corrupt file is replaced, never fatal
    assert measured_seconds(tmp_path, "upload", 2.0) == 1.0


def test_steps_measured_on_a_large_table_are_not_kept_for_a_small_one(tmp_path) -> None:
    """bench_real's shared home kept Chem97's 7 s of evaluation for a 2.5k-row table and swapped a
    tuned model for the defaults: the overhead is measured per size class (half decades of rows)."""
    assert [size_class(n) for n in (999, 1000, 2500, 3163, 9999, 31022)] == ["3e2", "1e3", "1e3", "3e3", "3e3", "1e4"]
    assert size_class(0) is None and size_class(None) is None
    record_seconds(tmp_path, "post", 7.0, rows=31022)
    assert measured_seconds(tmp_path, "post", 4.0, rows=31022) == 7.0
    # no measurement of this size yet: any table's, then the default
    assert measured_seconds(tmp_path, "post", 4.0, rows=2532) == 7.0
    record_seconds(tmp_path, "post", 1.0, rows=2532)
    assert measured_seconds(tmp_path, "post", 4.0, rows=2532) == 1.0
    assert measured_seconds(tmp_path, "post", 4.0, rows=31022) == 7.0  # the large table's own stays
    assert measured_seconds(tmp_path, "post", 4.0) == pytest.approx(4.0)  # any table: the running average
    assert measured_seconds(tmp_path, "other", 4.0, rows=2532) == 4.0


def test_the_reserve_keeps_time_for_the_ensemble_members_within_their_cap() -> None:
    """ensemble_size=3: the study keeps time for the final fits of the 2 next best configurations
    (at least as good as the defaults, padded cost within the cap); at the end only those whose fits
    still fit in the time left join; a slow best never gives way because of the members."""
    def reserve_with(cap):
        r = PostStudyReserve(rows_trainval=800, rows_all=None, default_fit_rows=800, fit_ratio=1.0, members=3,
                             members_cap=cap)
        r._maximize = True
        for t in (_trial(0, 0.80, fit_seconds=1.0, fit_rows=800, source="defaults"),
                  _trial(1, 0.90, fit_seconds=2.0, fit_rows=800),
                  _trial(2, 0.70, fit_seconds=0.1, fit_rows=800),   # worse than the defaults: never a member
                  _trial(3, 0.88, fit_seconds=3.0, fit_rows=800),
                  _trial(4, 0.85, fit_seconds=5.0, fit_rows=800)):
            asyncio.run(r.on_trial_finished(None, t))  # type: ignore[arg-type]
        return r

    alone = SAFETY * (2.0 + 1.0)  # the best and the defaults model
    assert reserve_with(None)() == pytest.approx(SAFETY * (2.0 + 3.0 + 5.0 + 1.0))
    assert reserve_with(SAFETY * 4.0)() == pytest.approx(SAFETY * (2.0 + 3.0 + 1.0))  # trial 4 is over the cap
    assert reserve_with(0.0)() == pytest.approx(alone)
    r = reserve_with(None)
    assert r.ensemble(100.0) == [3, 4]
    assert r.ensemble(3.0 + 3.0 + 1.0) == [3]  # trial 4's fits do not fit any more
    assert r.ensemble(3.5) == []
    assert r.affordable(3.0) is None  # the best alone fits: it is kept, whatever the members cost
    # with one member (the default) nothing changes
    one = PostStudyReserve(rows_trainval=800, rows_all=None, default_fit_rows=800, fit_ratio=1.0)
    one._maximize = True
    for t in (_trial(0, 0.80, fit_seconds=1.0, fit_rows=800, source="defaults"), _trial(1, 0.90, fit_seconds=2.0, fit_rows=800)):
        asyncio.run(one.on_trial_finished(None, t))  # type: ignore[arg-type]
    assert one() == pytest.approx(alone) and one.ensemble(100.0) == []


def _family_trial(number: int, value: float, family: str, *, fit_seconds: float,
                  source: str | None = None) -> optuna.trial.FrozenTrial:
    attrs: dict = {"fit_seconds": fit_seconds, "fit_rows": 800}
    if source:
        attrs[SOURCE_ATTR] = source
    t = optuna.trial.create_trial(params={"model": family},
                                  distributions={"model": optuna.distributions.CategoricalDistribution(
                                      ["lightgbm", "random_forest", "extra_trees"])},
                                  value=value, user_attrs=attrs)
    t.number = number
    return t


def _family_reserve(other: str, other_defaults_s: float, **options) -> PostStudyReserve:
    """A family search's reserve after three trials: LightGBM's defaults (0.80, 1 s per fit), the
    ``other`` family's defaults (0.70) and a LightGBM trial in the lead (0.90, 2 s)."""
    r = PostStudyReserve(rows_trainval=800, rows_all=None, default_fit_rows=800, fit_ratio=1.0,
                         family_of=lambda params: params["model"], **options)
    r._maximize = True
    for t in (_family_trial(0, 0.80, "lightgbm", fit_seconds=1.0, source="defaults"),
              _family_trial(1, 0.70, other, fit_seconds=other_defaults_s, source="defaults"),
              _family_trial(2, 0.90, "lightgbm", fit_seconds=2.0)):
        asyncio.run(r.on_trial_finished(None, t))  # type: ignore[arg-type]
    return r


def test_a_family_search_reserves_the_defaults_fit_of_the_best_trials_family_only() -> None:
    """Every family has a defaults trial, but the final defaults model is the chosen family's: a slow
    random forest's defaults must not hold back time once a LightGBM trial leads (measured: an
    --algorithm auto run on a 30k-row table ended 18 s before its 60 s budget)."""
    r = _family_reserve("random_forest", 20.0)
    assert r() == pytest.approx(SAFETY * (2.0 + 1.0))
    # a random forest trial takes the lead: its family's defaults are what the final fits will need
    asyncio.run(r.on_trial_finished(None, _family_trial(3, 0.95, "random_forest", fit_seconds=25.0)))  # type: ignore[arg-type]
    assert r() == pytest.approx(SAFETY * (25.0 + 20.0))
    # the swap fallback prices each candidate with its own family's defaults: the LightGBM trial and its
    # defaults (3.9 s padded) fit in 3.5 s + the 0.5 s slack
    assert r.affordable(3.5) == (2, {"model": "lightgbm"}, {"fit_seconds": 2.0, "fit_rows": 800, "_value": 0.90})


def test_the_fit_ratio_is_a_high_quantile_of_the_latest_runs_not_the_last_ones(tmp_path) -> None:
    assert measured_fit_ratio(tmp_path) == DEFAULT_FIT_RATIO  # nothing measured yet
    record_fit_ratio(tmp_path, 0.3)  # one low measurement does not lower the reserve
    assert measured_fit_ratio(tmp_path) == DEFAULT_FIT_RATIO
    record_fit_ratio(tmp_path, 1.2)
    assert measured_fit_ratio(tmp_path) == pytest.approx(1.2)  # a high one raises it at once
    for r in (0.5, 0.6, 0.7, 1.1, 0.4, 0.55, 0.45, 0.5):  # a 20k-row table's 1.1-1.2 among small ones'
        record_fit_ratio(tmp_path, r)
    # ten ratios, sorted: 0.3 0.4 0.45 0.5 0.5 0.55 0.6 0.7 1.1 1.2; the 80th percentile interpolates 0.7..1.1
    assert measured_fit_ratio(tmp_path) == pytest.approx(0.7 + 0.2 * 0.4)
    # a running average weighted to the last runs would have dropped to about 0.5 here
    for _ in range(RATIO_SAMPLES):  # only the latest are kept
        record_fit_ratio(tmp_path, 0.5)
    assert measured_fit_ratio(tmp_path) == pytest.approx(0.5)
    record_fit_ratio(tmp_path, float("nan"))  # not a measurement
    assert measured_fit_ratio(tmp_path) == pytest.approx(0.5)
    (tmp_path / TIMINGS_FILE).write_text("{not json", encoding="utf-8")
    assert measured_fit_ratio(tmp_path) == DEFAULT_FIT_RATIO


def test_what_a_family_takes_after_the_study_is_measured_apart_and_reserved_when_it_leads(tmp_path) -> None:
    """An --algorithm auto run on mediation::jobs chose extra trees: saving, evaluating and uploading
    its models took 6 s after the study where the home had measured 2.5 s (boosters), and the run
    ended 4.6 s late. The steps after the study are measured per family too, and a family search
    reserves the leading family's excess."""
    record_seconds(tmp_path, "post", 1.0, rows=900, family="lightgbm")
    record_seconds(tmp_path, "post", 5.0, rows=900, family="extra_trees")
    assert measured_seconds(tmp_path, "post", 4.0, rows=900, family="extra_trees") == 5.0
    assert measured_seconds(tmp_path, "post", 4.0, rows=900, family="lightgbm") == 1.0
    assert measured_seconds(tmp_path, "post", 4.0, rows=900) == pytest.approx(3.0)  # any family
    assert measured_seconds(tmp_path, "post", 4.0, rows=900, family="ridge") == pytest.approx(3.0)  # not measured yet
    assert measured_seconds(tmp_path, "post", 4.0, rows=40000, family="extra_trees") == 5.0  # any size
    r = _family_reserve("extra_trees", 0.5, overheads={"extra_trees": 3.0, "lightgbm": 0.0})
    assert r() == pytest.approx(SAFETY * (2.0 + 1.0))
    asyncio.run(r.on_trial_finished(None, _family_trial(3, 0.95, "extra_trees", fit_seconds=1.0)))  # type: ignore[arg-type]
    assert r() == pytest.approx(SAFETY * (1.0 + 0.5) + 3.0)
    # at the end, 3.5 s left: the leading extra trees need 1.5 s of fits + 3 s, the LightGBM trial 3.9 s padded
    assert r.affordable(3.5, slack=0.5) == (2, {"model": "lightgbm"}, {"fit_seconds": 2.0, "fit_rows": 800, "_value": 0.90})
    assert r.affordable(4.6, slack=0.5) is None  # with time for the extra trees' 4.5 s, they stay


def test_a_blends_final_fits_count_every_member_and_the_overhead_of_another_family() -> None:
    """A blend's extra members (any family) need their final fits with the best trial's and the
    defaults', plus the overhead of a family other than the best one's; over the members' cap (or an
    unknown trial) there is no estimate: the blend is not deployed."""
    r = _family_reserve("extra_trees", 1.5, overheads={"extra_trees": 2.0})
    asyncio.run(r.on_trial_finished(None, _family_trial(3, 0.85, "extra_trees", fit_seconds=1.5)))  # type: ignore[arg-type]
    best_alone = 2.0 + 1.0  # the LightGBM trial's fit and its family's defaults (unpadded)
    assert r.blend_seconds([0]) == pytest.approx(best_alone + 1.0)  # LightGBM's defaults as a member: no overhead
    assert r.blend_seconds([3, 0]) == pytest.approx(best_alone + 1.5 + 1.0 + 2.0)  # extra trees bring their overhead
    assert r.blend_seconds([3, 99]) is None  # a trial the reserve never saw complete
    capped = _family_reserve("extra_trees", 1.5, members_cap=SAFETY * 0.9)
    assert capped.blend_seconds([0]) is None  # over the cap, whatever the time left


def test_a_family_search_keeps_time_for_the_next_best_trials_of_any_family() -> None:
    """blend=True (a family search, whose final model may blend families): the study keeps time for the
    final fits of the next best trials whatever their family, and for the steps after the study a
    family other than the best one's takes; the fallback average still takes the best one's family
    (here none: LightGBM's only other trial has the same params as the best, so it is no other member)."""
    r = _family_reserve("extra_trees", 1.5, overheads={"extra_trees": 2.0}, members=3, blend=True)
    asyncio.run(r.on_trial_finished(None, _family_trial(3, 0.85, "extra_trees", fit_seconds=1.5)))  # type: ignore[arg-type]
    # the LightGBM trial (2 s) leads; the next best: extra trees (0.85, 1.5 s) and LightGBM's defaults (0.80, 1 s)
    assert r() == pytest.approx(SAFETY * (2.0 + 1.5 + 1.0 + 1.0) + 2.0)
    assert r.ensemble(100.0) == []  # the fallback average: LightGBM's other configurations (none here)
    same = _family_reserve("extra_trees", 1.5, overheads={"extra_trees": 2.0}, members=3)
    asyncio.run(same.on_trial_finished(None, _family_trial(3, 0.85, "extra_trees", fit_seconds=1.5)))  # type: ignore[arg-type]
    assert same() == pytest.approx(SAFETY * (2.0 + 1.0))  # without a blend: the best and its defaults model
