import optuna
import pytest

from src.mlops.errors import IncompatibleMetricError, UnknownMetricError, UnknownModelError, ConfigurationError
from src.mlops.metrics import PROBLEM_TYPES, get_metric, list_metrics
from src.mlops.models import MODEL_REGISTRY, get_model_spec, list_models
from src.mlops.optuna_optimizer import PrunerFactory, SamplerFactory, get_model_class


def test_aliases_are_case_insensitive():
    import lightgbm
    import xgboost

    assert get_model_class("XGBoost", "binary_classification") is xgboost.XGBClassifier
    assert get_model_class("xgb", "regression") is xgboost.XGBRegressor
    assert get_model_class("LGBM", "multiclass_classification") is lightgbm.LGBMClassifier
    assert get_model_spec("RF").name == "random_forest"


def test_unknown_algorithm_lists_the_known_ones():
    with pytest.raises(UnknownModelError) as e:
        get_model_class("catboostx", "binary_classification")
    for name in ("lightgbm", "xgboost", "random_forest", "mlp"):
        assert name in str(e.value)


def test_family_problem_mismatch_is_refused():
    with pytest.raises(UnknownModelError, match="does not support problem type"):
        get_model_class("lasso", "binary_classification")


def test_every_spec_family_is_registered():
    expected = {"xgboost", "lightgbm", "random_forest", "extra_trees", "hist_gradient_boosting",
                "logistic_regression", "ridge", "lasso", "elastic_net", "svm", "knn", "mlp",
                "isolation_forest", "one_class_svm", "local_outlier_factor"}
    assert expected == set(MODEL_REGISTRY)
    for pt in PROBLEM_TYPES:
        assert list_models(pt)


#: params the spec translates before they reach the estimator (see models._translate; tested apart).
_TRANSLATED = {"dart_rounds", "boosting_type", "bagging_fraction", "bagging_freq", "n_estimators", "hidden_layer_sizes"}


def _assert_reached(est, params):
    """Every param (but the translated ones) is the estimator's, with the value given."""
    got = est.get_params()
    for k, v in params.items():
        if k == "hidden_layer_sizes":
            assert got[k] == (tuple(int(x) for x in v.split("-")) if isinstance(v, str) else v)
        elif k not in _TRANSLATED:
            assert k in got and got[k] == v, (type(est).__name__, k, v, got.get(k, "<not a param>"))


@pytest.mark.parametrize("name", list(MODEL_REGISTRY))
def test_defaults_build_and_default_space_is_valid(name):
    """The defaults and any point of the default space build the family's estimator with exactly
    those params, and the seed reaches the estimator."""
    spec = get_model_spec(name)
    for pt in spec.problem_types:
        space = spec.search_space(pt)
        assert len(space) > 0
        defaults = spec.default_params(pt, seed=7)
        est = spec.build(defaults, pt)
        assert type(est) is spec.estimator_class(pt)
        _assert_reached(est, defaults)
        if spec.seed_param:
            assert est.get_params()[spec.seed_param] == 7
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        for _ in range(3):
            point = space.sample(study.ask())
            assert point and set(point) <= set(space.names)
            _assert_reached(spec.build({**defaults, **point}, pt), point)


def test_lightgbm_default_space_matches_the_issue():
    s = get_model_spec("lightgbm").search_space("binary_classification")
    assert s["boosting_type"].choices == ("gbdt", "dart", "goss")
    assert (s["num_leaves"].low, s["num_leaves"].high) == (10, 200)
    assert (s["learning_rate"].low, s["learning_rate"].high, s["learning_rate"].log) == (0.01, 0.3, True)
    for p in ("feature_fraction", "bagging_fraction"):
        assert (s[p].low, s[p].high) == (0.5, 1.0)
    assert (s["bagging_freq"].low, s["bagging_freq"].high) == (1, 10)
    assert (s["min_child_samples"].low, s["min_child_samples"].high) == (5, 100)
    for p in ("lambda_l1", "lambda_l2"):
        assert (s[p].low, s[p].high, s[p].log) == (1e-8, 10.0, True)
    assert (s["max_depth"].low, s["max_depth"].high) == (3, 12)
    assert (s["min_gain_to_split"].low, s["min_gain_to_split"].high) == (0.0, 1.0)
    assert (s["max_bin"].low, s["max_bin"].high) == (32, 512)
    assert s["drop_rate"].when == {"boosting_type": ("dart",)}
    assert (s["drop_rate"].high, s["max_drop"].low, s["max_drop"].high, s["skip_drop"].high) == (0.2, 3, 50, 1.0)
    assert s["bagging_fraction"].when == {"boosting_type": ("gbdt", "dart")}


def test_lightgbm_searches_its_categorical_splits_only_when_the_data_has_categories():
    """cat_smooth, cat_l2, min_data_per_group and max_cat_to_onehot act on category features only:
    searched when there are some, left at LightGBM's defaults otherwise; trial 0 keeps the defaults."""
    import numpy as np
    import pandas as pd
    from src.mlops.objectives import ModelObjective

    spec = get_model_spec("lightgbm")
    cat = ("cat_smooth", "cat_l2", "min_data_per_group", "max_cat_to_onehot")
    assert spec.categorical_params == cat
    lgbm_defaults = {"cat_smooth": 10.0, "cat_l2": 10.0, "min_data_per_group": 100, "max_cat_to_onehot": 4}
    assert {k: spec.default_params("binary")[k] for k in cat} == lgbm_defaults
    rng = np.random.default_rng(0)
    numeric = pd.DataFrame({"a": rng.normal(size=200), "b": rng.normal(size=200)})
    with_cat = numeric.assign(c=pd.Categorical(rng.choice(["x", "y", "z"], 200)))
    y = rng.integers(0, 2, 200)
    def objective(X):
        return ModelObjective("lightgbm", "binary", X[:150], y[:150], X[150:], y[150:], metric="roc_auc")
    assert not set(cat) & set(objective(numeric).search_space.names)
    searched = objective(with_cat)
    assert set(cat) <= set(searched.search_space.names)
    assert {k: searched.defaults_trial_params()[k] for k in cat} == lgbm_defaults
    regularized = [p for p in searched.portfolio_trial_params() if p["cat_smooth"] != 10.0]
    assert len(regularized) == 1 and regularized[0]["min_data_per_group"] == 200
    # the estimator receives them
    built = spec.build({**spec.default_params("binary"), "cat_smooth": 50.0}, "binary")
    assert built.get_params()["cat_smooth"] == 50.0


def test_lightgbm_round_counts_cap_early_stopping_and_dart_searches_its_own():
    spec = get_model_spec("lightgbm")
    s = spec.search_space("regression")
    assert s["n_estimators"].when == {"boosting_type": ("gbdt", "goss")}  # a cap: early stopping decides
    assert (s["dart_rounds"].low, s["dart_rounds"].high) == (50, 300)
    assert s["dart_rounds"].when == {"boosting_type": ("dart",)}
    params = {**spec.default_params("regression"), "boosting_type": "dart", "dart_rounds": 75}
    assert spec.build(params, "regression").get_params()["n_estimators"] == 75
    assert "dart_rounds" not in spec.build(params, "regression").get_params()
    gbdt = {**spec.default_params("regression"), "dart_rounds": 75}  # ignored unless dart
    assert spec.build(gbdt, "regression").get_params()["n_estimators"] == 100


@pytest.mark.parametrize("algorithm", ["lightgbm", "xgboost"])
def test_portfolio_configs_lie_in_the_default_space(algorithm):
    spec = get_model_spec(algorithm)
    assert spec.portfolio
    for pt in spec.problem_types:
        space = spec.search_space(pt)
        for config in spec.portfolio:
            inside = {k: v for k, v in config.items() if k in space.names}
            assert space.project(config) == inside, (pt, config)


def test_xgboost_default_space_matches_the_issue():
    s = get_model_spec("xgboost").search_space("regression")
    assert (s["n_estimators"].low, s["n_estimators"].high, s["n_estimators"].step) == (100, 1000, 50)
    assert (s["learning_rate"].low, s["learning_rate"].high, s["learning_rate"].log) == (0.01, 0.3, True)
    assert (s["max_depth"].low, s["max_depth"].high) == (3, 10)
    for p in ("subsample", "colsample_bytree"):
        assert (s[p].low, s[p].high) == (0.6, 1.0)
    for p in ("reg_alpha", "reg_lambda"):
        assert (s[p].low, s[p].high, s[p].log) == (1e-8, 10.0, True)
    assert "min_child_weight" in s


def test_goss_disables_bagging_in_the_built_model():
    spec = get_model_spec("lightgbm")
    est = spec.build({**spec.default_params("binary_classification"), "boosting_type": "goss",
                      "bagging_fraction": 0.7, "bagging_freq": 3}, "binary_classification")
    params = est.get_params()
    assert params.get("data_sample_strategy") == "goss"
    assert "bagging_fraction" not in params and "bagging_freq" not in params


def test_metrics_have_directions_and_refuse_mismatches():
    assert get_metric("roc_auc").direction == "maximize"
    assert get_metric("RMSE").direction == "minimize"
    assert get_metric("log_loss").direction == "minimize"
    with pytest.raises(IncompatibleMetricError, match="does not fit problem type 'regression'"):
        get_metric("roc_auc", "regression")
    with pytest.raises(IncompatibleMetricError):
        get_metric("rmse", "binary_classification")
    with pytest.raises(UnknownMetricError, match="known metrics"):
        get_metric("banana")
    assert {"f1", "f1_macro", "f1_weighted", "precision", "recall", "balanced_accuracy"} <= set(list_metrics())
    assert {"rmse", "mae", "r2", "mape"} == set(list_metrics("regression"))


def _options(obj):
    """The constructor options Optuna keeps on a sampler or pruner (its ``_name`` attributes)."""
    return {k.lstrip("_"): v for k, v in vars(obj).items()}


def _walk(sampler, n=6):
    """The params a sampler proposes for n trials of a small mixed space."""
    study = optuna.create_study(sampler=sampler)
    out = []
    for _ in range(n):
        t = study.ask()
        params = (t.suggest_float("x", -3.0, 3.0, step=0.25), t.suggest_int("k", 0, 9), t.suggest_categorical("c", ["a", "b", "c"]))
        study.tell(t, (params[0] - 1) ** 2 + params[1] + ("abc".index(params[2])))
        out.append(params)
    return out


@pytest.mark.parametrize("name, cls, options", [
    ("tpe", optuna.samplers.TPESampler, {"n_startup_trials": 3}),
    ("random", optuna.samplers.RandomSampler, {}),
    ("cmaes", optuna.samplers.CmaEsSampler, {"n_startup_trials": 2}),
    ("qmc", optuna.samplers.QMCSampler, {"qmc_type": "halton", "scramble": True}),
    ("nsga2", optuna.samplers.NSGAIISampler, {"population_size": 4}),
    ("nsga3", optuna.samplers.NSGAIIISampler, {"population_size": 4}),
    ("bruteforce", optuna.samplers.BruteForceSampler, {"avoid_premature_stop": True}),
])
def test_sampler_factory_passes_options_and_the_seed(name, cls, options):
    sampler = SamplerFactory.create(name, seed=1, **options)
    assert type(sampler) is cls
    kept = _options(sampler)
    for k, v in options.items():
        assert kept[k] == v, (name, k)
    # the seed reached it: the same seed proposes the same points, past the startup trials
    assert _walk(SamplerFactory.create(name, seed=1, **options)) == _walk(sampler)


@pytest.mark.parametrize("name", ["tpe", "random", "cmaes", "nsga2"])
def test_sampler_factory_seed_changes_the_points(name):
    assert _walk(SamplerFactory.create(name, seed=1)) != _walk(SamplerFactory.create(name, seed=2))


def test_tpe_defaults_to_multivariate_and_options_override_the_defaults():
    assert _options(SamplerFactory.create("tpe", seed=0))["multivariate"] is True
    assert _options(SamplerFactory.create("tpe", seed=0, multivariate=False))["multivariate"] is False


def test_grid_sampler_from_our_space_and_gp_needs_its_extra():
    grid = SamplerFactory.create("grid", search_space={"x": ("float", 0.0, 1.0), "k": ("categorical", ["a", "b"])})
    assert isinstance(grid, optuna.samplers.GridSampler)
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        with pytest.raises(ConfigurationError, match=r"\[gp\]"):
            SamplerFactory.create("gp")
    else:
        assert isinstance(SamplerFactory.create("gp"), optuna.samplers.GPSampler)


def test_tpe_uses_group_mode_for_conditional_spaces():
    s = SamplerFactory.create("tpe", seed=0, search_space=get_model_spec("lightgbm").search_space("regression"))
    assert s._group is True


@pytest.mark.parametrize("name, options, cls", [
    ("median", {"n_startup_trials": 2, "n_warmup_steps": 3, "interval_steps": 2}, optuna.pruners.MedianPruner),
    ("percentile", {"percentile": 25.0}, optuna.pruners.PercentilePruner),
    ("successive_halving", {"min_resource": 1, "reduction_factor": 3, "min_early_stopping_rate": 0},
     optuna.pruners.SuccessiveHalvingPruner),
    ("hyperband", {"min_resource": 2, "max_resource": 30, "reduction_factor": 2}, optuna.pruners.HyperbandPruner),
    ("threshold", {"lower": 0.5}, optuna.pruners.ThresholdPruner),
    ("patient", {"patience": 3, "wrapped": "median", "wrapped_options": {"n_startup_trials": 1}}, optuna.pruners.PatientPruner),
    ("none", {}, optuna.pruners.NopPruner),
])
def test_pruner_factory_builds_each_pruner_with_its_options(name, options, cls):
    pruner = PrunerFactory.create(name, **options)
    assert type(pruner) is cls
    kept = _options(pruner)
    for k, v in options.items():
        if k == "wrapped":
            assert type(kept["wrapped_pruner"]) is optuna.pruners.MedianPruner
        elif k == "wrapped_options":
            assert _options(kept["wrapped_pruner"])["n_startup_trials"] == 1
        else:
            assert kept[k] == v, (name, k)


def test_median_pruner_options_act_on_trials():
    """n_startup_trials=2, n_warmup_steps=3: nothing is pruned before two finished trials or before step 3."""
    study = optuna.create_study(direction="maximize", pruner=PrunerFactory.create("median", n_startup_trials=2,
                                                                                 n_warmup_steps=3))

    def low_trial(steps):
        t = study.ask()
        for step in range(steps):
            t.report(0.0, step)
        return t

    first = low_trial(5)
    assert not first.should_prune()  # no finished trial yet
    study.tell(first, 0.0)
    for _ in range(2):
        t = study.ask()
        for step in range(5):
            t.report(1.0, step)
        study.tell(t, 1.0)
    assert not low_trial(3).should_prune()  # step 2 < n_warmup_steps
    assert low_trial(4).should_prune()  # step 3: below the median of the finished trials


def test_factories_refuse_unknown_names_and_options():
    with pytest.raises(ConfigurationError, match="known pruners"):
        PrunerFactory.create("medium")
    with pytest.raises(ConfigurationError, match="does not take option"):
        PrunerFactory.create("median", n_startup=3)
    with pytest.raises(ConfigurationError, match="known samplers"):
        SamplerFactory.create("bayes")


@pytest.mark.parametrize("name", sorted(MODEL_REGISTRY))
def test_every_family_takes_its_own_default_space_and_defaults(name):
    spec = get_model_spec(name)
    for problem_type in spec.problem_types:
        spec.check_params(spec.search_space(problem_type).names, problem_type)
        spec.check_params(spec.default_params(problem_type, seed=0), problem_type)


def test_a_misspelled_param_is_refused_naming_the_accepted_ones():
    """Before: {"num_leave": ...} was accepted and trials varied a setting LightGBM ignores."""
    from src.mlops.errors import SearchSpaceError

    with pytest.raises(SearchSpaceError) as e:
        get_model_spec("lightgbm").check_params(["num_leave", "learning_rate"], "binary_classification")
    message = str(e.value)
    assert "'num_leave'" in message and "num_leaves" in message and "'learning_rate'" not in message
    with pytest.raises(SearchSpaceError, match="random_forest does not take 'num_leaves'"):
        get_model_spec("random_forest").check_params(["num_leaves"], "regression")
    # LightGBM's scikit-learn wrapper passes native names and aliases on: those are accepted
    get_model_spec("lightgbm").check_params(["feature_fraction", "bagging_fraction", "lambda_l1", "min_data_in_leaf"],
                                            "regression")


def test_the_objective_refuses_a_misspelled_space_or_fixed_param():
    import numpy as np

    from src.mlops.errors import SearchSpaceError
    from src.mlops.objectives import ModelObjective

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(60, 3)), np.tile([0, 1], 30)
    with pytest.raises(SearchSpaceError, match="does not take 'max_dept'"):
        ModelObjective("xgboost", "binary", X, y, X, y, search_space={"max_dept": {"type": "int", "low": 2, "high": 6}})
    with pytest.raises(SearchSpaceError, match="fixed params: logistic_regression does not take 'C_'"):
        ModelObjective("logistic_regression", "binary", X, y, X, y, fixed_params={"C_": 1.0})
    ModelObjective("xgboost", "binary", X, y, X, y, search_space={"max_depth": {"type": "int", "low": 2, "high": 6}})


def test_the_percentile_pruners_engine_default_prunes_only_the_worst_quarter():
    """Before: ``tuning_defaults("percentile")`` said "keeps the top 75 %" and gave Optuna
    ``percentile=25.0``, which keeps the top 25 %: three trials in four were pruned."""
    options = PrunerFactory.tuning_defaults("percentile", cv=True)
    pruner = PrunerFactory.create("percentile", **{**options, "n_startup_trials": 1, "n_warmup_steps": 0})
    study = optuna.create_study(direction="maximize", pruner=pruner)
    for i in range(20):  # completed trials scoring 0.00, 0.05, ... 0.95 at step 0
        t = study.ask()
        t.report(i / 20, 0)
        study.tell(t, i / 20)
    pruned = 0
    for i in range(20):  # new trials at the same 20 levels
        t = study.ask()
        t.report(i / 20, 0)
        pruned += t.should_prune()
        study.tell(t, state=optuna.trial.TrialState.FAIL)
    assert pruned == 5  # the worst quarter


def test_threads_follow_the_cpus_this_process_may_use_not_the_machines(monkeypatch):
    """Two OpenMP threads on one allowed core spin-wait on each other (a LightGBM fit ran 2.2 times
    slower pinned with ``taskset -c 1`` and 2 threads than with 1): a process limited to some cores
    (taskset, a container's cpuset) gives each fit only those."""
    from src.mlops import models
    monkeypatch.setattr(models.os, "cpu_count", lambda: 8)
    monkeypatch.setattr(models.os, "sched_getaffinity", lambda pid: {3}, raising=False)
    assert models.usable_cpus() == 1 and models.threads_per_trial(1, 50_000) == 1
    monkeypatch.setattr(models.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    assert models.threads_per_trial(1, 50_000) == 4 and models.threads_per_trial(2, 50_000) == 2
    assert models.threads_per_trial(1, 5_000) == 1  # small data: one thread whatever the cores
    monkeypatch.delattr(models.os, "sched_getaffinity", raising=False)  # no affinity API: the machine's count
    assert models.usable_cpus() == 8


def test_final_fits_run_one_thread_where_a_trial_would_run_several(monkeypatch):
    """A final fit (train+val, all rows) is single-threaded even on a large table with cores to spare:
    after the trials' threads, two OpenMP threads made carData::GSSvocab's deployed refit 3-5x slower
    than one on 2 unpinned cores (8.2-14.2 s against 2.5-2.6 s), and 30 s runs ended at 33-41 s."""
    import numpy as np
    import pandas as pd

    from src.mlops import models
    from src.mlops.objectives import FINAL_FIT_THREADS, ModelObjective

    assert FINAL_FIT_THREADS == 1
    monkeypatch.setattr(models.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    n = models.SMALL_DATA_ROWS + 2_000
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    y = (X["a"] + rng.normal(size=n) > 0).astype(int).to_numpy()
    assert models.threads_per_trial(1, n) == 4  # what a trial on these rows gets
    objective = ModelObjective("lightgbm", "binary", X.iloc[:-500], y[:-500], X.iloc[-500:], y[-500:])
    params = {"n_estimators": 20}
    for fitted in (objective.fit_final(params, n_rounds=20, rounds_rows=n - 500),
                   objective.fit_rows(params, X, y, n_rounds=20, rounds_rows=n - 500, label="all")):
        assert fitted.model.estimator.get_params()["n_jobs"] == 1
