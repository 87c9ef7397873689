"""Study analysis (F14) on constructed studies: each rule fires on the study built to trigger it and
stays quiet on the one built not to."""

from __future__ import annotations

import json
import time

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

from src.mlops.analysis import analyze_study, gap_recommendations

SPACE = {"lr": {"type": "float", "low": 0.001, "high": 0.3, "log": True},
         "depth": {"type": "int", "low": 2, "high": 12}}
DISTS = {"lr": FloatDistribution(0.001, 0.3, log=True), "depth": IntDistribution(2, 12)}


def _study(values, params=None, *, direction="maximize", states=None, space=SPACE, dists=DISTS):
    study = optuna.create_study(direction=direction)
    if space is not None:
        study.set_user_attr("search_space", space)
    for i, value in enumerate(values):
        state = (states or {}).get(i, TrialState.COMPLETE)
        p = params[i] if params else {"lr": 0.01 + 0.001 * (i % 50), "depth": 2 + i % 10}
        study.add_trial(create_trial(params=p, distributions={k: dists[k] for k in p},
                                     value=value if state == TrialState.COMPLETE else None, state=state,
                                     intermediate_values={0: 0.5} if state == TrialState.PRUNED else None))
    return study


def kinds(analysis):
    return [r["kind"] for r in analysis.recommendations]


def test_plateau_is_detected_with_its_evidence():
    values = [0.80, 0.85, 0.90] + [0.88] * 37  # best at trial 2, then 37 trials without gain
    a = analyze_study(_study(values))
    c = a.convergence
    assert c["status"] == "plateaued"
    assert c["last_improvement_trial"] == 2
    assert c["complete_trials_since_improvement"] == 37
    assert c["gain_last_half"] == pytest.approx(0.0)
    assert c["gain_total"] == pytest.approx(0.10)
    assert "plateaued" in kinds(a) and "still_improving" not in kinds(a)


def test_a_study_still_improving_is_not_called_a_plateau():
    values = [0.5 + 0.01 * i for i in range(30)]  # better every trial
    a = analyze_study(_study(values))
    assert a.convergence["status"] == "improving"
    assert a.convergence["complete_trials_since_improvement"] == 0
    assert a.convergence["gain_last_half"] > 0
    assert "still_improving" in kinds(a) and "plateaued" not in kinds(a)


def test_minimize_direction_and_too_few_trials():
    a = analyze_study(_study([3.0, 2.0, 2.5], direction="minimize"))
    assert a.best_value == 2.0 and a.best_trial == 1
    assert a.convergence["status"] == "too_few_trials"
    assert a.importances == {} and "at least" in a.importance_note


def test_best_value_on_an_upper_bound_is_reported():
    params = [{"lr": 0.3 if i == 5 else 0.01, "depth": 6} for i in range(12)]
    values = [0.7] * 12
    values[5] = 0.95
    a = analyze_study(_study(values, params))
    recs = [r for r in a.recommendations if r["kind"] == "range_bound"]
    assert [(r["param"], r["side"]) for r in recs] == [("lr", "upper")]
    assert "0.3" in recs[0]["message"] and "upper bound" in recs[0]["message"]


def test_bounds_are_the_widest_of_the_study_range_and_the_one_the_best_trial_was_drawn_from():
    # adaptive narrowing widened lr to [0.001, 0.6] in a later phase; the study's space says [0.001, 0.3]
    wide = {**DISTS, "lr": optuna.distributions.FloatDistribution(0.001, 0.6, log=True)}
    params = [{"lr": 0.4 if i == 5 else 0.01, "depth": 6} for i in range(12)]
    values = [0.7] * 12
    values[5] = 0.95
    assert "range_bound" not in kinds(analyze_study(_study(values, params, dists=wide)))
    params[5] = {"lr": 0.59, "depth": 6}
    recs = [r for r in analyze_study(_study(values, params, dists=wide)).recommendations if r["kind"] == "range_bound"]
    assert [(r["param"], r["side"], r["high"]) for r in recs] == [("lr", "upper", 0.6)]
    # a phase narrowed lr to [0.005, 0.02]: its edge is not the study's bound
    narrow = {**DISTS, "lr": optuna.distributions.FloatDistribution(0.005, 0.02, log=True)}
    params[5] = {"lr": 0.0199, "depth": 6}
    assert "range_bound" not in kinds(analyze_study(_study(values, params, dists=narrow)))


def test_best_value_inside_its_ranges_raises_no_bound_recommendation():
    params = [{"lr": 0.05, "depth": 7} for _ in range(12)]
    a = analyze_study(_study([0.7 + 0.001 * i for i in range(12)], params))
    assert "range_bound" not in kinds(a)


def test_bound_on_a_log_range_is_judged_in_log_space():
    # 0.006 is 2 % of [0.001, 0.3] linearly from the bottom but 31 % in log space: not on a bound
    params = [{"lr": 0.006, "depth": 7} for _ in range(12)]
    a = analyze_study(_study([0.7 + 0.001 * i for i in range(12)], params))
    assert "range_bound" not in kinds(a)
    params = [{"lr": 0.00105, "depth": 7} for _ in range(12)]
    a = analyze_study(_study([0.7 + 0.001 * i for i in range(12)], params))
    assert [r["side"] for r in a.recommendations if r["kind"] == "range_bound"] == ["lower"]


def test_bounds_come_from_the_recipe_when_the_study_has_no_space_attribute():
    study = _study([0.7] * 11 + [0.9], [{"lr": 0.01, "depth": 12}] * 12, space=None)
    study.set_user_attr("hpo.recipe", {"objective": {"search_space": SPACE, "metric": "roc_auc"}})
    a = analyze_study(study)
    assert a.metric == "roc_auc"
    assert [(r["param"], r["side"]) for r in a.recommendations if r["kind"] == "range_bound"] == [("depth", "upper")]


def test_mostly_pruned_is_detected():
    states = {i: TrialState.PRUNED for i in range(2, 20)}
    a = analyze_study(_study([0.8] * 20, states=states))
    assert a.n_pruned == 18 and a.n_complete == 2
    assert "mostly_pruned" in kinds(a)
    few = analyze_study(_study([0.8] * 20, states={i: TrialState.PRUNED for i in range(2, 6)}))
    assert "mostly_pruned" not in kinds(few)


def test_importances_name_the_param_that_matters():
    import random

    rng = random.Random(0)
    params, values = [], []
    for _ in range(120):
        lr, depth = 10 ** rng.uniform(-3, -0.53), rng.randint(2, 12)
        params.append({"lr": lr, "depth": depth})
        values.append(-((depth - 7) ** 2) + rng.gauss(0, 0.01))  # only depth matters
    a = analyze_study(_study(values, params))
    assert list(a.importances)[0] == "depth"
    assert a.importances["depth"] > 0.7
    assert sum(a.importances.values()) == pytest.approx(1.0, abs=1e-3)
    assert "PED-ANOVA on 120" in a.importance_note


def test_a_family_that_never_came_close_is_named():
    dists = {"algorithm": CategoricalDistribution(["lightgbm", "knn"]), "lr": FloatDistribution(0.001, 0.3, log=True)}
    params = [{"algorithm": "lightgbm", "lr": 0.05}] * 10 + [{"algorithm": "knn", "lr": 0.05}] * 5
    values = [0.9 + 0.001 * i for i in range(10)] + [0.7, 0.72, 0.71, 0.69, 0.7]
    a = analyze_study(_study(values, params, dists=dists, space=None))
    by_family = {r["family"]: r for r in a.families}
    assert by_family["knn"]["never_close"] and not by_family["lightgbm"]["never_close"]
    assert by_family["knn"]["gap_to_best"] == pytest.approx(0.909 - 0.72)
    assert [r["family"] for r in a.recommendations if r["kind"] == "family_never_close"] == ["knn"]


def test_gap_recommendations():
    recs = gap_recommendations("maximize", validation=0.99, test=0.90, metric="roc_auc")
    assert [r["kind"] for r in recs] == ["validation_test_gap"]
    assert "roc_auc" in recs[0]["message"]
    assert gap_recommendations("maximize", validation=0.99, test=0.98) == []
    assert gap_recommendations("maximize", validation=0.90, test=0.99) == []  # test better: no warning
    recs = gap_recommendations("minimize", validation=100.0, test=130.0, train=50.0, metric="rmse")
    assert [r["kind"] for r in recs] == ["validation_test_gap", "train_validation_gap"]
    with pytest.raises(ValueError, match="direction"):
        gap_recommendations("up", validation=1.0, test=1.0)


def test_gap_advice_fits_how_the_study_scored():
    """The advice on a validation-test gap never tells a CV study to use CV, names a small test split
    as noise, and does not blame selection when the study kept the defaults."""
    holdout, = gap_recommendations("minimize", validation=0.05, test=0.13, scheme="holdout", test_rows=5000)
    assert "--scheme cv=5x2" in holdout["message"] and "noise" not in holdout["message"]
    cv, = gap_recommendations("minimize", validation=0.05, test=0.13, scheme="cv=5x2", test_rows=36)
    assert "--scheme cv=5x2" not in cv["message"] and "cv=5x3" in cv["message"]
    assert "only 36 rows" in cv["message"]
    kept, = gap_recommendations("minimize", validation=0.05, test=0.13, scheme="cv=5x2", defaults_selected=True)
    assert "kept the defaults" in kept["message"] and "--scheme" not in kept["message"]


def test_multi_objective_study_and_json_round_trip():
    study = optuna.create_study(directions=["maximize", "minimize"])
    for i in range(15):
        study.add_trial(create_trial(params={"lr": 0.01 * (i + 1)}, distributions={"lr": FloatDistribution(0.001, 0.3)},
                                     values=[0.5 + 0.01 * i, float(i)]))
    a = analyze_study(study)
    assert a.convergence["status"] == "multi_objective" and a.convergence["pareto_size"] == 15
    assert a.importances and "first objective" in a.importance_note
    assert json.loads(json.dumps(a.to_dict()))["directions"] == ["maximize", "minimize"]


def test_hundreds_of_trials_are_analysed_well_under_a_second():
    import random

    rng = random.Random(1)
    params = [{"lr": 10 ** rng.uniform(-3, -0.53), "depth": rng.randint(2, 12)} for _ in range(600)]
    study = _study([rng.random() for _ in range(600)], params)
    analyze_study(study)  # imports and caches out of the measurement
    started = time.perf_counter()
    a = analyze_study(study)
    assert time.perf_counter() - started < 1.0
    assert a.n_complete == 600 and a.importances


async def test_the_result_of_a_real_study_carries_its_analysis(small_data):
    from src.mlops.optuna_optimizer import run_hyperparameter_optimization

    X_tr, y_tr, X_va, y_va = small_data["binary_classification"]
    result = await run_hyperparameter_optimization(
        "random_forest", "binary_classification", X_tr, y_tr, X_va, y_va, n_trials=4, seed=0,
        space_overrides={"n_estimators": {"type": "int", "low": 5, "high": 20}})
    a = result.analysis
    assert a["study_name"] == result.study_name and a["n_complete"] == result.n_completed == 4
    assert a["best_value"] == pytest.approx(result.best_value)
    assert a["metric"] == "roc_auc"
    assert a["convergence"]["status"] == "too_few_trials"
    assert json.loads(json.dumps(result.to_dict()))["analysis"]["n_trials"] == 4


def test_bounds_are_not_judged_on_enqueued_configurations_nor_at_a_natural_zero():
    params = [{"lr": 0.3, "depth": 12} for _ in range(12)]
    study = _study([0.7] * 11 + [0.9], params)
    study.set_user_attr("search_space", SPACE)
    study2 = optuna.create_study(direction="maximize")
    study2.set_user_attr("search_space", SPACE)
    for i, t in enumerate(study.get_trials()):  # the same trials, the best one a portfolio configuration
        study2.add_trial(create_trial(params=t.params, distributions=t.distributions, value=t.value,
                                      user_attrs={"source": "portfolio"} if i == 11 else {}))
    assert "range_bound" in kinds(analyze_study(study))
    assert "range_bound" not in kinds(analyze_study(study2))
    zero = {"alpha": {"type": "float", "low": 0.0, "high": 1.0}, "l1": {"type": "float", "low": 1e-8, "high": 10,
                                                                         "log": True}}
    dists = {"alpha": FloatDistribution(0.0, 1.0), "l1": FloatDistribution(1e-8, 10, log=True)}
    a = analyze_study(_study([0.7] * 11 + [0.9], [{"alpha": 0.0, "l1": 1e-8}] * 12, space=zero, dists=dists))
    assert "range_bound" not in kinds(a)


def test_a_share_at_its_upper_bound_of_one_is_not_a_range_to_widen():
    """Before: feature_fraction = 0.994 in [0.5, 1] was reported as 'the optimum may lie above 1'."""
    from src.mlops.analysis import _at_bound
    from src.mlops.search_space import parse_search_space

    space = parse_search_space({"feature_fraction": {"type": "float", "low": 0.5, "high": 1.0},
                                "learning_rate": {"type": "float", "low": 0.01, "high": 0.3, "log": True}})
    assert _at_bound(space["feature_fraction"], 0.9942) is None
    assert _at_bound(space["learning_rate"], 0.2999) == "upper"


def test_a_round_cap_early_stopping_ended_below_and_a_count_from_1_raise_no_bound_recommendation():
    # seen on psych::bfi: n_estimators = 1968 of [100, 2000] with 101 rounds used, bagging_freq = 1 of [1, 10]
    space = {"n_estimators": {"type": "int", "low": 100, "high": 2000, "log": True},
             "bagging_freq": {"type": "int", "low": 1, "high": 10}}
    dists = {"n_estimators": IntDistribution(100, 2000, log=True), "bagging_freq": IntDistribution(1, 10)}
    params = [{"n_estimators": 1968 if i == 5 else 300, "bagging_freq": 1 if i == 5 else 5} for i in range(12)]
    values = [0.7] * 12
    values[5] = 0.95

    def bound_params(rounds):
        study = optuna.create_study(direction="maximize")
        study.set_user_attr("search_space", space)
        for t in _study(values, params, space=space, dists=dists).trials:
            if t.number == 5 and rounds is not None:
                t.set_user_attr("best_iteration", rounds)
            study.add_trial(t)
        return [(r["param"], r["side"]) for r in analyze_study(study).recommendations if r["kind"] == "range_bound"]

    assert bound_params(101) == []  # stopped early at 101 rounds: the cap did not bind
    assert bound_params(1950) == [("n_estimators", "upper")]  # ran to (nearly) the cap
    assert bound_params(None) == [("n_estimators", "upper")]  # no early stopping (a forest's tree count)
    # a family search prefixes the family: lightgbm__n_estimators
    space = {f"lightgbm__{k}": v for k, v in space.items()}
    dists = {f"lightgbm__{k}": v for k, v in dists.items()}
    params = [{f"lightgbm__{k}": v for k, v in p.items()} for p in params]
    assert bound_params(101) == []
    assert bound_params(1950) == [("lightgbm__n_estimators", "upper")]
