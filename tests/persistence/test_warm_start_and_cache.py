"""Warm start from history (F11) and the trial cache (F12), end to end on every history backend
(in memory and PostgreSQL): real LightGBM fits, real studies, the history recorder writing as usual."""

from __future__ import annotations

import threading
from typing import Any

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split

from src.mlops.objectives import ModelObjective
from src.mlops.optimizer import OptunaOptimizer
from src.mlops.optuna_optimizer import run_hyperparameter_optimization
from src.mlops.persistence import HistoryRecorder
from src.mlops.study_recipe import data_fingerprint
from src.mlops.trial_cache import CACHED_ATTR, CachedTrial, TrialCache
from src.mlops.types import SOURCE_ATTR


@pytest.fixture(scope="module")
def data() -> tuple[Any, ...]:
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    X = X.iloc[:, :10]
    X_tr, X_va, y_tr, y_va = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    return X_tr, y_tr, X_va, y_va


class CountingObjective(ModelObjective):
    """A real objective that counts its fits (``evaluate`` calls)."""

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.fits = 0
        self._count_lock = threading.Lock()

    def evaluate(self, sampled: Any, reporter: Any = None) -> Any:
        with self._count_lock:
            self.fits += 1
        return super().evaluate(sampled, reporter)


async def _tune(repo: Any, data: tuple[Any, ...], name: str, **kw: Any) -> Any:
    recorder = HistoryRecorder(repo)
    X_tr, y_tr, X_va, y_va = data
    options = dict(n_trials=6, seed=0, pruner="none", history=repo)
    options.update(kw)
    try:
        return await run_hyperparameter_optimization(
            "lightgbm", "binary_classification", X_tr, y_tr, X_va, y_va, study_name=name, listeners=[recorder],
            **options)
    finally:
        await recorder.aclose(timeout=30)


async def test_a_second_study_on_the_same_data_starts_with_the_best_trials_of_the_first(repo: Any, data: Any) -> None:
    first = await _tune(repo, data, "warm-1", warm_start_trials=3)
    assert first.warm_start["n_seeded"] == 0 and first.warm_start["matched_by"] is None
    best = await repo.best_trials(algorithm="lightgbm", problem_type="binary_classification",
                                  dataset_fingerprint=(await repo.get_study("warm-1")).dataset_fingerprint, limit=10)
    assert best, "the first study is in the history"

    storage = optuna.storages.InMemoryStorage()
    second = await _tune(repo, data, "warm-2", warm_start_trials=3, storage=storage)
    study = optuna.load_study(study_name="warm-2", storage=storage)
    trials = sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
    sources = [t.user_attrs.get(SOURCE_ATTR) for t in trials]
    assert sources[0] == "defaults"
    history = [t for t in trials if t.user_attrs.get(SOURCE_ATTR) == "history"]
    assert second.warm_start["n_seeded"] == len(history) >= 1
    assert second.warm_start["matched_by"] == "dataset"
    assert all(s.startswith("warm-1#") for s in second.warm_start["sources"])
    # seeded right after the defaults, with the params of the first study's best trials
    assert sources[1:1 + len(history)] == ["history"] * len(history)
    earlier = [bt.trial.params for bt in best]
    for t in history:
        assert t.params in earlier, t.params
    # the best trial of the first study (not the defaults: those are trial 0 already) is seeded
    first_best = next(p for p in earlier if p != trials[0].params)
    assert first_best in [t.params for t in history]

    off = await _tune(repo, data, "warm-3", warm_start=False)
    assert off.warm_start["n_seeded"] == 0 and off.warm_start["enabled"] is False


async def test_warm_start_falls_back_to_the_same_columns_and_fits_configs_to_the_space(repo: Any, data: Any) -> None:
    X_tr, y_tr, X_va, y_va = data
    await _tune(repo, data, "schema-1", n_trials=5)
    # other rows, same columns and types: no study of this data, one of this schema
    other = (X_tr.iloc[20:], y_tr.iloc[20:], X_va, y_va)
    narrow = {"num_leaves": {"type": "int", "low": 8, "high": 12}, "learning_rate": {"type": "float", "low": 0.05,
                                                                                     "high": 0.06}}
    storage = optuna.storages.InMemoryStorage()
    result = await _tune(repo, other, "schema-2", n_trials=4, search_space=narrow, storage=storage)
    assert result.warm_start["matched_by"] == "schema" and result.warm_start["n_seeded"] >= 1
    study = optuna.load_study(study_name="schema-2", storage=storage)
    for t in study.get_trials(deepcopy=False):
        if t.user_attrs.get(SOURCE_ATTR) == "history":
            assert set(t.params) <= set(narrow)  # params the space does not search were dropped
            assert 8 <= t.params["num_leaves"] <= 12 and 0.05 <= t.params["learning_rate"] <= 0.06  # clipped


async def test_a_repeated_configuration_is_served_from_the_cache_not_trained(repo: Any, data: Any) -> None:
    X_tr, y_tr, X_va, y_va = data
    configs = [{"num_leaves": 12, "learning_rate": 0.1}, {"num_leaves": 40, "learning_rate": 0.03}]

    async def run(name: str, objective: ModelObjective, fp: str) -> tuple[Any, list[Any]]:
        opt = OptunaOptimizer()
        recorder = HistoryRecorder(repo)
        opt.listeners.append(recorder)
        study = await opt.create_study(study_name=name, direction=objective.direction, sampler="random", seed=1,
                                       pruner="none")
        cache = TrialCache.for_objective(repo, objective, data_fingerprint=fp)
        result = await opt.optimize(study, objective, n_trials=3, enqueue=configs, enqueue_portfolio=False,
                                    trial_cache=cache)
        await recorder.aclose(timeout=30)
        return result, sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)

    fp = data_fingerprint(X_tr, y_tr, X_va, y_va)
    first_obj = CountingObjective("lightgbm", "binary_classification", X_tr, y_tr, X_va, y_va, seed=0)
    first, first_trials = await run("cache-1", first_obj, fp)
    assert first_obj.fits == 3 and first.n_cached == 0

    again = CountingObjective("lightgbm", "binary_classification", X_tr, y_tr, X_va, y_va, seed=0)
    second, trials = await run("cache-2", again, fp)
    # defaults + the two configs were trained by the first study: none is fitted again
    assert again.fits == 0 and second.n_cached == 3
    for old, new in zip(first_trials, trials):
        assert new.state == TrialState.COMPLETE and new.user_attrs[CACHED_ATTR] is True
        assert new.params == old.params and new.value == old.value
        assert new.user_attrs["cached_from"] == f"cache-1#{old.number}"
        assert new.user_attrs.get("best_iteration") == old.user_attrs.get("best_iteration")
    assert second.best_value == first.best_value

    # never across another metric, scheme or data
    for label, objective, data_fp in [
        ("metric", CountingObjective("lightgbm", "binary_classification", X_tr, y_tr, X_va, y_va, seed=0,
                                     metric="log_loss"), fp),
        ("scheme", CountingObjective("lightgbm", "binary_classification", X_tr, y_tr, cv=3, seed=0),
         data_fingerprint(X_tr, y_tr)),
        ("data", CountingObjective("lightgbm", "binary_classification", X_tr.iloc[5:], y_tr.iloc[5:], X_va, y_va,
                                   seed=0), data_fingerprint(X_tr.iloc[5:], y_tr.iloc[5:], X_va, y_va)),
    ]:
        result, _ = await run(f"cache-{label}", objective, data_fp)
        assert objective.fits == 3 and result.n_cached == 0, label


async def test_library_versions_are_part_of_the_key(repo: Any, data: Any) -> None:
    X_tr, y_tr, X_va, y_va = data
    objective = ModelObjective("lightgbm", "binary_classification", X_tr, y_tr, X_va, y_va, seed=0)
    fp = data_fingerprint(X_tr, y_tr, X_va, y_va)
    cache = TrialCache.for_objective(repo, objective, data_fingerprint=fp)
    key = cache.key({"num_leaves": 7})
    other = TrialCache(repo, identity={**cache.identity, "libraries": {**cache.identity["libraries"],
                                                                        "lightgbm": "0.0.1"}},
                       space=objective.search_space, defaults=objective.default_params)
    assert other.key({"num_leaves": 7}) != key
    await repo.put_cached_trial(CachedTrial(key=key, value=0.9, params={"num_leaves": 7}, study_name="s",
                                            trial_number=0))
    assert (await cache.lookup({"num_leaves": 7})).value == 0.9
    assert await other.lookup({"num_leaves": 7}) is None
    # the space's rounding: 7.0 is the int 7; the first result under a key stays
    assert cache.key({"num_leaves": 7.0}) == key
    await repo.put_cached_trial(CachedTrial(key=key, value=0.1, params={"num_leaves": 7}))
    assert (await repo.get_cached_trial(key)).value == 0.9


async def test_a_second_run_reuses_the_defaults_and_history_trials_from_the_cache(repo: Any, data: Any) -> None:
    await _tune(repo, data, "both-1", n_trials=5)
    second = await _tune(repo, data, "both-2", n_trials=5)
    # the defaults trial and every seeded history trial are results of the first study
    assert second.warm_start["n_seeded"] >= 1
    assert second.n_cached >= 1 + second.warm_start["n_seeded"]
    assert second.best_value >= (await repo.get_study("both-1")).best_value


async def test_compare_random_gives_defaults_random_and_tuned(repo: Any, data: Any) -> None:
    result = await _tune(repo, data, "cmp-1", n_trials=4, compare="random")
    c = result.comparison
    assert c["method"] == "random" and c["metric"] == "roc_auc"
    assert c["defaults"] == result.defaults_value and c["tuned"] == result.best_value
    assert isinstance(c["random"], float) and c["random_trials"] == result.n_trials == 4
    assert c["tuned"] >= c["defaults"]
    assert (await repo.get_study("cmp-1")) is not None
    assert all(s.study_name == "cmp-1" or not s.study_name.startswith("random-baseline")
               for s in await repo.list_studies())  # the baseline is not a study of the history
    df = pd.DataFrame([c])
    assert {"defaults", "random", "tuned"} <= set(df.columns)
