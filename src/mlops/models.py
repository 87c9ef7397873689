"""Model registry (F3): each family declares, as data, its estimators, defaults and search space.

``get_model_spec(name)`` returns a :class:`ModelSpec`; ``get_model_class(name, problem_type)`` the
estimator class. Names are case-insensitive and accept aliases ("XGBoost", "xgb", "lgbm", "rf"...).
The one generic objective (``objectives.py``) drives every family through the spec; nothing here
fits or scores.
"""

from __future__ import annotations

import os

from .errors import UnknownModelError
from .model_spec import ModelSpec
from .problems import ANOMALY, BINARY, MULTICLASS, REGRESSION, normalize_problem_type

__all__ = ["ModelSpec", "get_model_spec", "get_model_class", "list_models", "MODEL_REGISTRY"]

_CLS = (BINARY, MULTICLASS)
_SUP = (BINARY, MULTICLASS, REGRESSION)


_LOG_REG = {"type": "float", "low": 1e-8, "high": 10.0, "log": True}
_CLASS_WEIGHT = {"class_weight": {"type": "categorical", "choices": [None, "balanced"]}}
_FOREST_SPACE = {
    "n_estimators": {"type": "int", "low": 50, "high": 500, "step": 50},
    "max_depth": {"type": "categorical", "choices": [None, 4, 8, 12, 16, 24, 32]},
    "min_samples_split": {"type": "int", "low": 2, "high": 20},
    "min_samples_leaf": {"type": "int", "low": 1, "high": 20},
    "max_features": {"type": "categorical", "choices": ["sqrt", "log2", 0.3, 0.5, 0.7, 1.0]},
}
_FOREST_DEFAULTS = {"n_estimators": 100, "max_depth": None, "min_samples_split": 2, "min_samples_leaf": 1}

_LGBM_CATEGORICAL_SPACE = {
    "cat_smooth": {"type": "float", "low": 1.0, "high": 100.0, "log": True},
    "cat_l2": {"type": "float", "low": 1.0, "high": 100.0, "log": True},
    "min_data_per_group": {"type": "int", "low": 10, "high": 500, "log": True},
    "max_cat_to_onehot": {"type": "int", "low": 2, "high": 32, "log": True},
}

_LGBM_CATEGORICAL_DEFAULTS = {"cat_smooth": 10.0, "cat_l2": 10.0, "min_data_per_group": 100, "max_cat_to_onehot": 4}

_SPECS: list[ModelSpec] = [
    ModelSpec(
        name="lightgbm",
        aliases=("lgbm", "lgb", "lightgbm", "light_gbm"),
        estimators={BINARY: "lightgbm:LGBMClassifier", MULTICLASS: "lightgbm:LGBMClassifier",
                    REGRESSION: "lightgbm:LGBMRegressor"},
        kind="lightgbm",
        native_categorical=True,
        n_jobs_param="n_jobs",
        defaults={
            "boosting_type": "gbdt", "n_estimators": 100, "learning_rate": 0.1, "num_leaves": 31,
            "max_depth": -1, "min_child_samples": 20, "feature_fraction": 1.0, "bagging_fraction": 1.0,
            "bagging_freq": 0, "lambda_l1": 0.0, "lambda_l2": 0.0, "min_gain_to_split": 0.0, "max_bin": 255,
            # LightGBM's own defaults for categorical splits, made explicit (searched below)
            **_LGBM_CATEGORICAL_DEFAULTS,
            "verbose": -1,
        },
        space={
            "boosting_type": {"type": "categorical", "choices": ["gbdt", "dart", "goss"]},
            # gbdt/goss stop early on validation: n_estimators is only a cap. dart cannot stop
            # early and costs ~10x per round, so its round count is a separate, smaller range.
            "n_estimators": {"type": "int", "low": 100, "high": 2000, "log": True,
                             "when": {"boosting_type": ["gbdt", "goss"]}},
            "dart_rounds": {"type": "int", "low": 50, "high": 300, "step": 25, "when": {"boosting_type": ["dart"]}},
            "num_leaves": {"type": "int", "low": 10, "high": 200},
            "learning_rate": {"type": "float", "low": 0.01, "high": 0.3, "log": True},
            "feature_fraction": {"type": "float", "low": 0.5, "high": 1.0},
            "bagging_fraction": {"type": "float", "low": 0.5, "high": 1.0, "when": {"boosting_type": ["gbdt", "dart"]}},
            "bagging_freq": {"type": "int", "low": 1, "high": 10, "when": {"boosting_type": ["gbdt", "dart"]}},
            "min_child_samples": {"type": "int", "low": 5, "high": 100},
            "lambda_l1": _LOG_REG,
            "lambda_l2": _LOG_REG,
            "max_depth": {"type": "int", "low": 3, "high": 12},
            "min_gain_to_split": {"type": "float", "low": 0.0, "high": 1.0},
            "max_bin": {"type": "int", "low": 32, "high": 512},
            "drop_rate": {"type": "float", "low": 0.0, "high": 0.2, "when": {"boosting_type": ["dart"]}},
            "max_drop": {"type": "int", "low": 3, "high": 50, "when": {"boosting_type": ["dart"]}},
            "skip_drop": {"type": "float", "low": 0.0, "high": 1.0, "when": {"boosting_type": ["dart"]}},
            # categorical splits: a high-cardinality string column (a first name, an ad id) overfits
            # with the defaults on weak-signal tables; searched only when the data has categories
            **_LGBM_CATEGORICAL_SPACE,
        },
        categorical_params=tuple(_LGBM_CATEGORICAL_SPACE),
        problem_space={BINARY: _CLASS_WEIGHT, MULTICLASS: _CLASS_WEIGHT},
        description="LightGBM gradient boosting (gbdt/dart/goss), native categoricals and missing values",
        portfolio=(
            # moderate: the usual hand-tuned starting point
            {"boosting_type": "gbdt", "n_estimators": 2000, "learning_rate": 0.05, "num_leaves": 31,
             "feature_fraction": 0.8, "bagging_fraction": 0.8, "bagging_freq": 1, "min_child_samples": 20,
             "lambda_l1": 1e-8, "lambda_l2": 1.0, "max_depth": 12, "min_gain_to_split": 0.0, "max_bin": 255,
             "class_weight": None, **_LGBM_CATEGORICAL_DEFAULTS},
            # small and regularized: small or noisy data
            {"boosting_type": "gbdt", "n_estimators": 2000, "learning_rate": 0.03, "num_leaves": 15,
             "feature_fraction": 0.6, "bagging_fraction": 0.7, "bagging_freq": 1, "min_child_samples": 40,
             "lambda_l1": 0.1, "lambda_l2": 5.0, "max_depth": 6, "min_gain_to_split": 0.0, "max_bin": 127,
             "class_weight": None,
             # smoothed categorical splits (measured on resume and nassCDS: +0.01-0.06 ROC-AUC over the defaults)
             "cat_smooth": 50.0, "cat_l2": 10.0, "min_data_per_group": 200, "max_cat_to_onehot": 8},
            # large: many rows, interactions
            {"boosting_type": "gbdt", "n_estimators": 2000, "learning_rate": 0.05, "num_leaves": 96,
             "feature_fraction": 0.9, "bagging_fraction": 0.9, "bagging_freq": 1, "min_child_samples": 10,
             "lambda_l1": 1e-8, "lambda_l2": 0.1, "max_depth": 12, "min_gain_to_split": 0.0, "max_bin": 255,
             "class_weight": None, **_LGBM_CATEGORICAL_DEFAULTS},
        ),
    ),
    ModelSpec(
        name="xgboost",
        aliases=("xgb", "xgboost", "xgboost_model"),
        estimators={BINARY: "xgboost:XGBClassifier", MULTICLASS: "xgboost:XGBClassifier",
                    REGRESSION: "xgboost:XGBRegressor"},
        kind="xgboost",
        native_categorical=True,
        n_jobs_param="n_jobs",
        defaults={
            "n_estimators": 100, "learning_rate": 0.3, "max_depth": 6, "subsample": 1.0,
            "colsample_bytree": 1.0, "reg_alpha": 0.0, "reg_lambda": 1.0, "min_child_weight": 1.0,
            "tree_method": "hist", "enable_categorical": True, "max_cat_to_onehot": 1, "verbosity": 0,
        },
        space={
            "n_estimators": {"type": "int", "low": 100, "high": 1000, "step": 50},
            "learning_rate": {"type": "float", "low": 0.01, "high": 0.3, "log": True},
            "max_depth": {"type": "int", "low": 3, "high": 10},
            "subsample": {"type": "float", "low": 0.6, "high": 1.0},
            "colsample_bytree": {"type": "float", "low": 0.6, "high": 1.0},
            "reg_alpha": _LOG_REG,
            "reg_lambda": _LOG_REG,
            "min_child_weight": {"type": "float", "low": 0.5, "high": 20.0, "log": True},
        },
        description="XGBoost (hist), native categoricals and missing values",
        portfolio=(
            {"n_estimators": 1000, "learning_rate": 0.05, "max_depth": 6, "subsample": 0.8, "colsample_bytree": 0.8,
             "reg_alpha": 1e-8, "reg_lambda": 1.0, "min_child_weight": 1.0},
            {"n_estimators": 1000, "learning_rate": 0.03, "max_depth": 4, "subsample": 0.7, "colsample_bytree": 0.7,
             "reg_alpha": 0.1, "reg_lambda": 5.0, "min_child_weight": 5.0},
        ),
    ),
    ModelSpec(
        name="random_forest",
        aliases=("rf", "randomforest", "random_forest", "random-forest"),
        estimators={BINARY: "sklearn.ensemble:RandomForestClassifier",
                    MULTICLASS: "sklearn.ensemble:RandomForestClassifier",
                    REGRESSION: "sklearn.ensemble:RandomForestRegressor"},
        n_jobs_param="n_jobs",
        defaults={**_FOREST_DEFAULTS, "bootstrap": True},
        problem_defaults={BINARY: {"max_features": "sqrt"}, MULTICLASS: {"max_features": "sqrt"},
                          REGRESSION: {"max_features": 1.0}},
        space={**_FOREST_SPACE, "bootstrap": {"type": "categorical", "choices": [True, False]}},
        problem_space={BINARY: {"class_weight": {"type": "categorical", "choices": [None, "balanced", "balanced_subsample"]}},
                       MULTICLASS: {"class_weight": {"type": "categorical", "choices": [None, "balanced", "balanced_subsample"]}}},
    ),
    ModelSpec(
        name="extra_trees",
        aliases=("et", "extratrees", "extra_trees", "extra-trees", "extremely_randomized_trees"),
        estimators={BINARY: "sklearn.ensemble:ExtraTreesClassifier",
                    MULTICLASS: "sklearn.ensemble:ExtraTreesClassifier",
                    REGRESSION: "sklearn.ensemble:ExtraTreesRegressor"},
        n_jobs_param="n_jobs",
        defaults={**_FOREST_DEFAULTS, "bootstrap": False},
        problem_defaults={BINARY: {"max_features": "sqrt"}, MULTICLASS: {"max_features": "sqrt"},
                          REGRESSION: {"max_features": 1.0}},
        space=_FOREST_SPACE,
        problem_space={BINARY: _CLASS_WEIGHT, MULTICLASS: _CLASS_WEIGHT},
    ),
    ModelSpec(
        name="hist_gradient_boosting",
        aliases=("hgb", "histgb", "histgradientboosting", "hist_gradient_boosting", "hist_gbm"),
        estimators={BINARY: "sklearn.ensemble:HistGradientBoostingClassifier",
                    MULTICLASS: "sklearn.ensemble:HistGradientBoostingClassifier",
                    REGRESSION: "sklearn.ensemble:HistGradientBoostingRegressor"},
        native_categorical=True,
        defaults={"learning_rate": 0.1, "max_iter": 100, "max_leaf_nodes": 31, "min_samples_leaf": 20,
                  "l2_regularization": 0.0, "max_features": 1.0, "categorical_features": "from_dtype"},
        space={
            "learning_rate": {"type": "float", "low": 0.01, "high": 0.3, "log": True},
            "max_iter": {"type": "int", "low": 50, "high": 500, "step": 50},
            "max_leaf_nodes": {"type": "int", "low": 8, "high": 128},
            "min_samples_leaf": {"type": "int", "low": 5, "high": 100},
            "l2_regularization": _LOG_REG,
            "max_features": {"type": "float", "low": 0.3, "high": 1.0},
        },
        problem_space={BINARY: _CLASS_WEIGHT, MULTICLASS: _CLASS_WEIGHT},
    ),
    ModelSpec(
        name="logistic_regression",
        aliases=("logreg", "logistic", "lr", "logistic_regression", "logisticregression"),
        estimators={BINARY: "sklearn.linear_model:LogisticRegression",
                    MULTICLASS: "sklearn.linear_model:LogisticRegression"},
        needs_scaling=True,
        defaults={"C": 1.0, "max_iter": 2000},
        space={"C": {"type": "float", "low": 1e-4, "high": 100.0, "log": True}, **_CLASS_WEIGHT},
    ),
    ModelSpec(
        name="ridge",
        aliases=("ridge", "ridge_regression", "ridgeclassifier"),
        estimators={BINARY: "sklearn.linear_model:RidgeClassifier",
                    MULTICLASS: "sklearn.linear_model:RidgeClassifier",
                    REGRESSION: "sklearn.linear_model:Ridge"},
        needs_scaling=True,
        defaults={"alpha": 1.0},
        space={"alpha": {"type": "float", "low": 1e-4, "high": 100.0, "log": True}},
        problem_space={BINARY: _CLASS_WEIGHT, MULTICLASS: _CLASS_WEIGHT},
    ),
    ModelSpec(
        name="lasso",
        aliases=("lasso", "lasso_regression"),
        estimators={REGRESSION: "sklearn.linear_model:Lasso"},
        needs_scaling=True,
        defaults={"alpha": 1.0, "max_iter": 5000},
        space={"alpha": {"type": "float", "low": 1e-5, "high": 10.0, "log": True}},
    ),
    ModelSpec(
        name="elastic_net",
        aliases=("elasticnet", "elastic_net", "enet", "elastic-net"),
        estimators={REGRESSION: "sklearn.linear_model:ElasticNet"},
        needs_scaling=True,
        defaults={"alpha": 1.0, "l1_ratio": 0.5, "max_iter": 5000},
        space={"alpha": {"type": "float", "low": 1e-5, "high": 10.0, "log": True},
               "l1_ratio": {"type": "float", "low": 0.05, "high": 1.0}},
    ),
    ModelSpec(
        name="svm",
        aliases=("svm", "svc", "svr", "support_vector_machine"),
        estimators={BINARY: "sklearn.svm:SVC", MULTICLASS: "sklearn.svm:SVC", REGRESSION: "sklearn.svm:SVR"},
        needs_scaling=True,
        seed_param=None,
        defaults={"C": 1.0, "kernel": "rbf", "gamma": "scale"},
        space={
            "C": {"type": "float", "low": 1e-3, "high": 100.0, "log": True},
            "kernel": {"type": "categorical", "choices": ["rbf", "linear", "poly"]},
            "gamma": {"type": "categorical", "choices": ["scale", "auto"], "when": {"kernel": ["rbf", "poly"]}},
            "degree": {"type": "int", "low": 2, "high": 5, "when": {"kernel": ["poly"]}},
        },
        problem_space={BINARY: _CLASS_WEIGHT, MULTICLASS: _CLASS_WEIGHT,
                       REGRESSION: {"epsilon": {"type": "float", "low": 0.01, "high": 1.0, "log": True}}},
        problem_defaults={REGRESSION: {"epsilon": 0.1}},
    ),
    ModelSpec(
        name="knn",
        aliases=("knn", "k_nearest_neighbors", "kneighbors", "nearest_neighbors"),
        estimators={BINARY: "sklearn.neighbors:KNeighborsClassifier",
                    MULTICLASS: "sklearn.neighbors:KNeighborsClassifier",
                    REGRESSION: "sklearn.neighbors:KNeighborsRegressor"},
        needs_scaling=True,
        seed_param=None,
        n_jobs_param="n_jobs",
        defaults={"n_neighbors": 5, "weights": "uniform", "p": 2},
        space={
            "n_neighbors": {"type": "int", "low": 1, "high": 50},
            "weights": {"type": "categorical", "choices": ["uniform", "distance"]},
            "p": {"type": "categorical", "choices": [1, 2]},
        },
    ),
    ModelSpec(
        name="mlp",
        aliases=("mlp", "neural_network", "multilayer_perceptron", "nn"),
        estimators={BINARY: "sklearn.neural_network:MLPClassifier",
                    MULTICLASS: "sklearn.neural_network:MLPClassifier",
                    REGRESSION: "sklearn.neural_network:MLPRegressor"},
        needs_scaling=True,
        defaults={"hidden_layer_sizes": "100", "alpha": 1e-4, "learning_rate_init": 1e-3,
                  "activation": "relu", "max_iter": 300, "early_stopping": True},
        space={
            "hidden_layer_sizes": {"type": "categorical", "choices": ["32", "64", "100", "128", "64-32", "128-64", "128-64-32"]},
            "alpha": {"type": "float", "low": 1e-6, "high": 1e-1, "log": True},
            "learning_rate_init": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
            "activation": {"type": "categorical", "choices": ["relu", "tanh"]},
        },
    ),
    ModelSpec(
        name="isolation_forest",
        aliases=("iforest", "isolation_forest", "isolationforest"),
        estimators={ANOMALY: "sklearn.ensemble:IsolationForest"},
        kind="anomaly",
        n_jobs_param="n_jobs",
        defaults={"n_estimators": 100, "max_samples": "auto", "max_features": 1.0},
        space={
            "n_estimators": {"type": "int", "low": 50, "high": 500, "step": 50},
            "max_samples": {"type": "categorical", "choices": ["auto", 0.5, 0.8, 1.0]},
            "max_features": {"type": "float", "low": 0.5, "high": 1.0},
        },
    ),
    ModelSpec(
        name="one_class_svm",
        aliases=("ocsvm", "one_class_svm", "oneclasssvm", "one-class-svm"),
        estimators={ANOMALY: "sklearn.svm:OneClassSVM"},
        kind="anomaly",
        needs_scaling=True,
        seed_param=None,
        defaults={"nu": 0.5, "kernel": "rbf", "gamma": "scale"},
        space={
            "nu": {"type": "float", "low": 0.01, "high": 0.5},
            "kernel": {"type": "categorical", "choices": ["rbf", "sigmoid", "linear"]},
            "gamma": {"type": "categorical", "choices": ["scale", "auto"], "when": {"kernel": ["rbf", "sigmoid"]}},
        },
    ),
    ModelSpec(
        name="local_outlier_factor",
        aliases=("lof", "local_outlier_factor", "localoutlierfactor"),
        estimators={ANOMALY: "sklearn.neighbors:LocalOutlierFactor"},
        kind="anomaly",
        needs_scaling=True,
        seed_param=None,
        n_jobs_param="n_jobs",
        defaults={"n_neighbors": 20, "p": 2, "novelty": True},
        space={
            "n_neighbors": {"type": "int", "low": 5, "high": 100},
            "p": {"type": "categorical", "choices": [1, 2]},
        },
    ),
]

MODEL_REGISTRY: dict[str, ModelSpec] = {s.name: s for s in _SPECS}
_ALIASES: dict[str, str] = {}
for _s in _SPECS:
    for _a in (_s.name, *_s.aliases):
        _ALIASES[_a.lower().replace("-", "_").replace(" ", "_")] = _s.name


def _key(name: str) -> str:
    return str(name).strip().lower().replace("-", "_").replace(" ", "_")


def list_models(problem_type: str | None = None) -> list[str]:
    """Registered family names (those supporting ``problem_type`` when given)."""
    if problem_type is None:
        return list(MODEL_REGISTRY)
    pt = normalize_problem_type(problem_type)
    return [n for n, s in MODEL_REGISTRY.items() if pt in s.estimators]


def get_model_spec(algorithm: str | ModelSpec, problem_type: str | None = None) -> ModelSpec:
    """The :class:`ModelSpec` for ``algorithm`` (case-insensitive, aliases allowed)."""
    if isinstance(algorithm, ModelSpec):
        spec = algorithm
    else:
        name = _ALIASES.get(_key(algorithm))
        if name is None:
            raise UnknownModelError(
                f"unknown algorithm {algorithm!r}; known algorithms: {list(MODEL_REGISTRY)} "
                f"(aliases such as 'xgb', 'lgbm', 'rf' work too)"
            )
        spec = MODEL_REGISTRY[name]
    if problem_type is not None:
        spec._check(problem_type)
    return spec


def get_model_class(algorithm: str, problem_type: str = BINARY) -> type:
    """The estimator class of ``algorithm`` for ``problem_type`` (e.g. ``LGBMClassifier``)."""
    return get_model_spec(algorithm).estimator_class(problem_type)


#: Below this many training rows a fit is single-threaded: OpenMP threads on small data spend more
#: time synchronizing (and spin-waiting whenever another process holds a core) than computing.
SMALL_DATA_ROWS = 10_000


def usable_cpus() -> int:
    """The CPUs this process may run on: its affinity mask (``taskset``, a container's cpuset, a batch
    scheduler), not the machine's count. Two OpenMP threads on one allowed core spin-wait on each
    other: bench_real's cells, pinned to one core, fitted dplyr::storms' final models 1.6 times slower
    than its single-threaded trials."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # no affinity API (macOS, Windows)
        return max(1, os.cpu_count() or 1)


def threads_per_trial(n_jobs: int, n_rows: int | None = None) -> int:
    """CPU threads one trial may use when ``n_jobs`` trials run at once on ``n_rows`` rows."""
    if n_rows is not None and n_rows < SMALL_DATA_ROWS:
        return 1
    return max(1, usable_cpus() // max(1, n_jobs))

