"""``hpo worker`` (join_study) with the history database, on every history backend: it uses the trial
cache like ``hpo tune``, and a worker that is the first to start a study seeds the warm start with the
creator's settings (recorded in the study's recipe). Real LightGBM fits on a bundled dataset."""

from __future__ import annotations

from typing import Any

import optuna
from optuna.trial import TrialState

from src.mlops.optuna_optimizer import run_hyperparameter_optimization
from src.mlops.persistence import HistoryRecorder
from src.mlops.study_recipe import RECIPE_ATTR, join_study, load_data_source
from src.mlops.trial_cache import CACHED_ATTR
from src.mlops.types import SOURCE_ATTR

SOURCE = {"kind": "dataset", "name": "breast_cancer", "target": None, "problem_type": None, "time_column": None,
          "split": {"seed": 0, "rare_classes": "train"}}


async def _tune(repo: Any, storage: Any, name: str, **kw: Any) -> Any:
    data = load_data_source(SOURCE)
    recorder = HistoryRecorder(repo)
    try:
        return await run_hyperparameter_optimization(
            "lightgbm", "binary_classification", data.X_train, data.y_train, data.X_val, data.y_val, seed=0,
            pruner="none", fixed_params={"n_estimators": 30}, early_stopping_rounds=None, study_name=name,
            storage=storage, data_source=SOURCE, history=repo, listeners=[recorder], **kw)
    finally:
        await recorder.aclose(timeout=30)


async def test_a_worker_uses_the_trial_cache_and_the_creators_warm_start(repo: Any) -> None:
    storage = optuna.storages.InMemoryStorage()
    earlier = await _tune(repo, storage, "earlier", n_trials=4)
    assert earlier.n_completed == 4

    # `hpo tune` creates the study and runs the defaults only; the warm start (2 trials, as asked) is queued
    created = await _tune(repo, storage, "joined", n_trials=6, max_trials=1, warm_start_trials=2)
    assert created.warm_start["n_configs"] == 2
    recipe = optuna.load_study(study_name="joined", storage=storage).user_attrs[RECIPE_ATTR]
    assert recipe["study"]["warm_start_trials"] == 2 and recipe["study"]["trial_cache"] is True
    # a worker runs the rest: the history trials were trained by the earlier study -> served from the cache
    result = await join_study("joined", storage=storage, history=repo)
    study = optuna.load_study(study_name="joined", storage=storage)
    trials = study.get_trials(deepcopy=False)
    assert len(trials) == 6 and all(t.state == TrialState.COMPLETE for t in trials)
    seeded = [t for t in trials if t.user_attrs.get(SOURCE_ATTR) == "history"]
    assert len(seeded) == 2 and all(t.user_attrs.get(CACHED_ATTR) for t in seeded)
    assert result.n_cached >= 3  # the defaults too (trained by the earlier study)

    # a worker that is the first to start a study seeds the warm start with the creator's settings
    fresh = optuna.create_study(study_name="fresh", storage=storage, direction="maximize")
    fresh.set_user_attr(RECIPE_ATTR, {**recipe, "study": {**recipe["study"], "n_trials": 4}})
    first = await join_study("fresh", storage=storage, history=repo)
    assert first.warm_start["enabled"] and first.warm_start["n_seeded"] == 2  # 2, not the default 5
    sources = [t.user_attrs.get(SOURCE_ATTR) for t in sorted(fresh.get_trials(deepcopy=False), key=lambda t: t.number)]
    assert sources[:3] == ["defaults", "history", "history"]
    assert first.n_cached >= 3
