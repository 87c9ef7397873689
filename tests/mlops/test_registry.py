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


@pytest.mark.parametrize("name", list(MODEL_REGISTRY))
def test_defaults_build_and_default_space_is_valid(name):
    spec = get_model_spec(name)
    for pt in spec.problem_types:
        space = spec.search_space(pt)
        assert len(space) > 0
        est = spec.build(spec.default_params(pt, seed=0), pt)
        assert est is not None


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


@pytest.mark.parametrize("name", ["tpe", "random", "cmaes", "qmc", "nsga2", "nsga3", "bruteforce"])
def test_sampler_factory_builds_each_sampler(name):
    assert isinstance(SamplerFactory.create(name, seed=1), optuna.samplers.BaseSampler)


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
    ("hyperband", {}, optuna.pruners.HyperbandPruner),
    ("threshold", {"lower": 0.5}, optuna.pruners.ThresholdPruner),
    ("patient", {"patience": 3, "wrapped": "median"}, optuna.pruners.PatientPruner),
    ("none", {}, optuna.pruners.NopPruner),
])
def test_pruner_factory_builds_each_pruner(name, options, cls):
    assert isinstance(PrunerFactory.create(name, **options), cls)


def test_factories_refuse_unknown_names_and_options():
    with pytest.raises(ConfigurationError, match="known pruners"):
        PrunerFactory.create("medium")
    with pytest.raises(ConfigurationError, match="does not take option"):
        PrunerFactory.create("median", n_startup=3)
    with pytest.raises(ConfigurationError, match="known samplers"):
        SamplerFactory.create("bayes")
