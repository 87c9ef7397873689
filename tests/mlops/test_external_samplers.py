"""Other search backends (SPEC F29, issue 10 item 4): Hyperopt's TPE and scikit-optimize behind
``SamplerFactory``, driving the engine's ask/tell loop on a real model. Real fits on small data."""

from __future__ import annotations

import optuna
import pytest

from src.mlops.errors import ConfigurationError
from src.mlops.external_samplers import HyperoptSampler, SkoptSampler
from src.mlops.factories import SamplerFactory
from src.mlops.optuna_optimizer import run_hyperparameter_optimization
from src.mlops.search_space import parse_search_space

SPACE = {
    "C": {"type": "float", "low": 1e-3, "high": 1e2, "log": True},
    "class_weight": {"type": "categorical", "choices": [None, "balanced"]},
    "max_iter": {"type": "int", "low": 50, "high": 400, "step": 50},
}

N_TRIALS = 8


async def _run(sampler: str, data, seed: int, storage) -> list[dict]:
    X_tr, y_tr, X_va, y_va = data
    result = await run_hyperparameter_optimization(
        "logistic_regression", "binary_classification", X_tr, y_tr, X_va, y_va, metric="accuracy",
        search_space=SPACE, n_trials=N_TRIALS, seed=seed, sampler=sampler,
        # skopt refits a Gaussian process at every ask (0.5-4 s on a busy 2-core machine): fewer trials
        sampler_options={"n_startup_jobs": 5} if sampler == "hyperopt" else {"n_initial_points": 4, "acq_func": "EI"},
        storage=storage, study_name=f"{sampler}-{seed}", trial_cache=False, warm_start=False)
    assert result.n_completed == result.n_trials == N_TRIALS and result.n_failed == 0
    study = optuna.load_study(study_name=f"{sampler}-{seed}", storage=storage)
    assert study.user_attrs["sampler"] == {"hyperopt": "HyperoptSampler", "skopt": "SkoptSampler"}[sampler]
    return [t.params for t in sorted(study.trials, key=lambda t: t.number)]


@pytest.mark.parametrize("sampler", ["hyperopt", "skopt"])
async def test_a_study_completes_inside_the_space_and_a_seed_repeats_it(sampler, small_data) -> None:
    data = small_data["binary_classification"]
    storage = optuna.storages.InMemoryStorage()
    first = await _run(sampler, data, 7, storage)
    again = await _run(sampler, data, 7, storage)
    other = await _run(sampler, data, 8, storage)
    space = parse_search_space(SPACE)
    for params in first[1:]:  # trial 0 is the family's defaults (they lie in the space too)
        assert set(params) == set(SPACE)
        assert space.project(params) == params
        assert 1e-3 <= params["C"] <= 1e2 and params["max_iter"] % 50 == 0 and 50 <= params["max_iter"] <= 400
        assert params["class_weight"] in (None, "balanced")
    assert first == again  # same seed, same params
    assert first[1:] != other[1:]
    # the backend proposes from the history once its start-up points are used: not all random draws
    assert len({round(p["C"], 12) for p in first}) > 1


def test_factory_names_options_and_single_objective() -> None:
    assert isinstance(SamplerFactory.create("hyperopt", seed=1), HyperoptSampler)
    assert isinstance(SamplerFactory.create("scikit-optimize", seed=1, n_initial_points=3), SkoptSampler)
    with pytest.raises(ConfigurationError, match=r"sampler 'hyperopt' does not take option\(s\) \['n_initial'\]"):
        SamplerFactory.create("hyperopt", n_initial=3)
    with pytest.raises(ConfigurationError, match=r"sampler 'skopt' does not take option\(s\) \['bogus'\]"):
        SamplerFactory.create("skopt", bogus=3)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=SamplerFactory.create("hyperopt"))
    with pytest.raises(ConfigurationError, match="single-objective"):
        study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
