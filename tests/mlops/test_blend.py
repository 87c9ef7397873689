"""A family search's blend (issue 10): greedy ensemble selection over the best trials' validation
predictions, across families, and its weighted final model. Real fits on small data."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from sklearn.datasets import load_diabetes
from sklearn.model_selection import train_test_split

from src.mlops.blend import PredictionStore, greedy_blend
from src.mlops.family_search import MODEL_PARAM, FamilySearchObjective, split_family_params
from src.mlops.fitted import AveragedModel
from src.mlops.fitting import average_fits
from src.mlops.metrics import get_metric, score_predictions
from src.mlops.optuna_optimizer import run_hyperparameter_optimization

RMSE = get_metric("rmse", "regression")


def _folds(seed: int = 0) -> tuple[list[np.ndarray], dict[str, list[np.ndarray]]]:
    """Two folds of a target and three predictors: one biased up, one biased down (their mean is
    better than either), and a noisy one."""
    rng = np.random.default_rng(seed)
    ys = [rng.normal(size=200) for _ in range(2)]
    preds = {"up": [y + 0.5 + rng.normal(scale=0.1, size=y.size) for y in ys],
             "down": [y - 0.6 + rng.normal(scale=0.1, size=y.size) for y in ys],
             "noisy": [y + rng.normal(scale=2.0, size=y.size) for y in ys]}
    return ys, preds


def _store(preds: dict[str, list[np.ndarray]], ys: list[np.ndarray]) -> tuple[PredictionStore, list[dict]]:
    store = PredictionStore("minimize")
    cands = []
    for name, p in preds.items():
        value = float(np.mean([score_predictions(RMSE, y, q) for y, q in zip(ys, p)]))
        store.add({"m": name}, value, p)
        cands.append({"number": len(cands), "value": value, "params": {"m": name}})
    cands.sort(key=lambda c: c["value"])
    return store, cands


def test_the_blend_mixes_complementary_predictions_and_scores_them_like_a_trial():
    ys, preds = _folds()
    store, cands = _store(preds, ys)
    blend = greedy_blend(cands, store, ys, RMSE, max_members=3)
    assert blend is not None
    names = [m["params"]["m"] for m in blend.members]
    assert names[0] == cands[0]["params"]["m"] == "up" and set(names) == {"up", "down"}  # the noisy one adds nothing
    assert abs(sum(blend.weights) - 1) < 1e-12 and all(w > 0 for w in blend.weights)
    assert blend.single_value == cands[0]["value"] and blend.value < 0.5 * blend.single_value
    # the value is the weighted mean's score per fold, averaged over folds (as a trial is scored)
    mixed = [sum(w * store.get(m["params"])[i] for m, w in zip(blend.members, blend.weights)) for i in range(2)]
    assert blend.value == pytest.approx(np.mean([score_predictions(RMSE, y, p) for y, p in zip(ys, mixed)]))
    assert blend.to_dict()["members"][0] == {"number": cands[0]["number"], "weight": round(blend.weights[0], 4)}


def test_no_blend_without_two_candidates_with_predictions_or_without_a_gain():
    ys, preds = _folds()
    store, cands = _store(preds, ys)
    assert greedy_blend(cands, store, ys, RMSE, max_members=1) is None
    assert greedy_blend(cands[:1], store, ys, RMSE) is None
    unknown = {"number": 99, "value": 0.0, "params": {"m": "never evaluated"}}
    assert greedy_blend([unknown, *cands], store, ys, RMSE) is None  # the best one has no predictions
    # two copies of the same predictions: no mix scores above one alone
    same = PredictionStore("minimize")
    for k in ("a", "b"):
        same.add({"m": k}, 1.0, preds["up"])
    assert greedy_blend([{"number": 0, "value": 1.0, "params": {"m": "a"}},
                         {"number": 1, "value": 1.0, "params": {"m": "b"}}], same, ys, RMSE) is None


def test_the_store_keeps_the_best_evaluations_and_pickles_empty():
    store = PredictionStore("maximize", limit=2)
    for i, v in enumerate([0.5, 0.9, 0.7]):
        store.add({"i": i}, v, [np.zeros(3)])
    assert len(store) == 2 and store.get({"i": 0}) is None and store.get({"i": 1}) is not None
    copy = pickle.loads(pickle.dumps(store))  # a worker process starts empty: its predictions never come back
    assert len(copy) == 0
    copy.add({"i": 5}, 1.0, [np.ones(3)])
    assert copy.get({"i": 5})[0].tolist() == [1.0, 1.0, 1.0]


def test_a_weighted_average_weighs_its_members_predictions():
    X, y = load_diabetes(return_X_y=True, as_frame=True)
    objective = FamilySearchObjective("lightgbm,ridge", "regression", X.iloc[:300], y.iloc[:300],
                                      X.iloc[300:], y.iloc[300:], seed=0)
    fits = [objective.fit_final(p, refit="train+val") for p in objective.defaults_trials()]
    model = average_fits(fits, [3.0, 1.0]).model
    assert isinstance(model, AveragedModel) and model.weights == [0.75, 0.25]
    rows = X.iloc[:5]
    expected = 0.75 * fits[0].model.predict(rows) + 0.25 * fits[1].model.predict(rows)
    assert np.allclose(model.predict(rows), expected)
    assert {m.algorithm for m in model.members} == {"lightgbm", "ridge"}
    with pytest.raises(ValueError, match="one non-negative number per member"):
        AveragedModel.of([f.model for f in fits], [1.0])
    with pytest.raises(ValueError, match="one non-negative number per member"):
        AveragedModel.of([f.model for f in fits], [1.0, -1.0])


async def test_a_family_search_blends_its_best_trials_across_families():
    X, y = load_diabetes(return_X_y=True, as_frame=True)
    X_tr, _, y_tr, _ = train_test_split(X, y, test_size=0.3, random_state=0)
    result = await run_hyperparameter_optimization("lightgbm,ridge", "regression", X_tr, y_tr, cv=3, n_trials=10,
                                                   seed=0, blend_members=3)
    blend = result.blend
    assert blend is not None, result.top_trials
    numbers = [m["number"] for m in blend["members"]]
    assert numbers[0] == result.best_trial_number and 2 <= len(numbers) <= 3
    by_number = {t["number"]: t for t in result.top_trials}
    assert {split_family_params(by_number[n]["params"])[0] for n in numbers} == {"lightgbm", "ridge"}
    assert blend["single_value"] == result.best_value and blend["value"] < result.best_value
    assert abs(sum(m["weight"] for m in blend["members"]) - 1) < 1e-3
    # the blend's members, refit and averaged with its weights, predict like one model
    objective = FamilySearchObjective("lightgbm,ridge", "regression", X_tr, y_tr, cv=3, seed=0)
    model = average_fits([objective.fit_final(by_number[n]["params"]) for n in numbers],
                         [m["weight"] for m in blend["members"]]).model
    assert np.isfinite(model.predict(X.iloc[:10])).all()


async def test_no_blend_for_label_metrics_worker_processes_or_unasked():
    X, y = load_diabetes(return_X_y=True, as_frame=True)
    labels = (y > y.median()).astype(int)
    accuracy = await run_hyperparameter_optimization("lightgbm,logistic_regression", "binary", X, labels, cv=3,
                                                     metric="accuracy", n_trials=4, seed=0, blend_members=3)
    assert accuracy.blend is None and accuracy.n_completed >= 2  # labels do not average
    workers = await run_hyperparameter_optimization("lightgbm,ridge", "regression", X, y, cv=3, n_trials=4, seed=0,
                                                    blend_members=3, trial_timeout=120)
    assert workers.blend is None and workers.n_completed >= 2  # a worker process's predictions stay there
    unasked = await run_hyperparameter_optimization("lightgbm,ridge", "regression", X, y, cv=3, n_trials=4, seed=0)
    assert unasked.blend is None  # nothing is kept unless a blend is asked for


async def test_a_one_family_study_blends_its_own_best_configurations():
    X, y = load_diabetes(return_X_y=True, as_frame=True)
    result = await run_hyperparameter_optimization("lightgbm", "regression", X, y, cv=3, n_trials=8, seed=0,
                                                   blend_members=3)
    assert result.blend is not None and MODEL_PARAM not in result.best_params
    numbers = [m["number"] for m in result.blend["members"]]
    assert numbers[0] == result.best_trial_number and set(numbers) <= {t["number"] for t in result.top_trials}
    assert result.blend["value"] < result.blend["single_value"] == result.best_value


@pytest.mark.parametrize("name,problem", [("rmse", "regression"), ("log_loss", "multiclass"), ("log_loss", "binary"),
                                          ("roc_auc", "binary"), ("roc_auc", "multiclass"), ("mae", "regression")])
def test_the_blends_scores_equal_the_trials(name, problem):
    """The blend scores its mixes in numpy for the default metrics: the same numbers as a trial's."""
    from src.mlops.blend import _scorer

    metric = get_metric(name, problem)
    rng = np.random.default_rng(3)
    k = 4 if problem == "multiclass" else 2
    y = rng.integers(0, k, 300)
    if problem == "regression":
        y, p = rng.normal(size=300), rng.normal(size=300)
    elif name == "roc_auc" and problem == "binary":
        p = np.round(rng.random(300), 1)  # ties count half
    else:
        p = rng.dirichlet(np.ones(k), 300)
        p[0] = [1.0] + [0.0] * (k - 1)  # a certain prediction: clipped, not infinite
    labels = None if problem == "regression" else list(range(k))
    assert _scorer(metric, labels)(y, p) == pytest.approx(score_predictions(metric, y, p, labels=labels), rel=1e-9)
