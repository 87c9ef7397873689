"""Model registry (F3): each family declares, as data, its estimators, defaults and search space.

``get_model_spec(name)`` returns a :class:`ModelSpec`; ``get_model_class(name, problem_type)`` the
estimator class. Names are case-insensitive and accept aliases ("XGBoost", "xgb", "lgbm", "rf"...).
The one generic objective (``objectives.py``) drives every family through the spec; nothing here
fits or scores.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import SearchSpaceError, UnknownModelError
from .pipeline_steps import check_step_names, is_step_param, split_step_params, step_param_names
from .problems import ANOMALY, BINARY, MULTICLASS, REGRESSION, normalize_problem_type
from .search_space import SearchSpace, parse_search_space

__all__ = ["ModelSpec", "get_model_spec", "get_model_class", "list_models", "MODEL_REGISTRY"]

_CLS = (BINARY, MULTICLASS)
_SUP = (BINARY, MULTICLASS, REGRESSION)


@dataclass(frozen=True)
class ModelSpec:
    """Everything the engine needs to know about one model family, as data.

    - ``estimators``: problem type -> "module:Class" (imported lazily).
    - ``defaults``: the params trial 0 evaluates (library defaults, made explicit, plus quiet/seed
      settings); ``problem_defaults`` adds per-problem ones.
    - ``space``: the default search space (dict format); ``problem_space`` adds per-problem params.
    - ``kind``: "lightgbm" | "xgboost" (per-round reports + early stopping), "sklearn", "anomaly".
    - ``native_categorical``: takes pandas ``category`` columns and NaN as they are; otherwise the
      preprocessing imputes and one-hot encodes. ``needs_scaling``: standardize numeric columns.
    """

    name: str
    aliases: tuple[str, ...]
    estimators: Mapping[str, str]
    defaults: Mapping[str, Any]
    space: Mapping[str, Any]
    kind: str = "sklearn"
    native_categorical: bool = False
    needs_scaling: bool = False
    seed_param: str | None = "random_state"
    n_jobs_param: str | None = None
    problem_defaults: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    problem_space: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    description: str = ""
    #: robust configurations tried right after the defaults (source "portfolio"), before the
    #: sampler's own proposals: on a short budget the sampler's first trials are random, and these
    #: known-good settings give it a strong start. Keys outside the search space are ignored.
    portfolio: tuple[Mapping[str, Any], ...] = ()

    @property
    def problem_types(self) -> tuple[str, ...]:
        return tuple(self.estimators)

    @property
    def is_boosting(self) -> bool:
        return self.kind in ("lightgbm", "xgboost")

    def supports(self, problem_type: str) -> bool:
        return normalize_problem_type(problem_type) in self.estimators

    def _check(self, problem_type: str) -> str:
        pt = normalize_problem_type(problem_type)
        if pt not in self.estimators:
            raise UnknownModelError(
                f"model {self.name!r} does not support problem type {pt!r}; it supports "
                f"{list(self.estimators)}. Models for {pt}: {list_models(pt)}"
            )
        return pt

    def estimator_class(self, problem_type: str) -> type:
        module, _, cls = self.estimators[self._check(problem_type)].partition(":")
        return getattr(importlib.import_module(module), cls)

    def default_params(self, problem_type: str, *, seed: int | None = None) -> dict[str, Any]:
        """The family's defaults for ``problem_type`` (what trial 0 evaluates)."""
        pt = self._check(problem_type)
        params = dict(self.defaults)
        params.update(self.problem_defaults.get(pt, {}))
        if self.seed_param and seed is not None:
            params[self.seed_param] = seed
        return params

    def search_space(self, problem_type: str) -> SearchSpace:
        pt = self._check(problem_type)
        spec = dict(self.space)
        spec.update(self.problem_space.get(pt, {}))
        return parse_search_space(spec)

    def documented_params(self, problem_type: str) -> frozenset[str]:
        """The estimator's constructor params and the family's own names (what an error lists)."""
        names = set(self.estimator_class(problem_type)().get_params(deep=False))
        names |= set(self.defaults) | set(self.space) | _ENCODINGS
        for extra in (*self.problem_defaults.values(), *self.problem_space.values()):
            names |= set(extra)
        return frozenset(names)

    def accepted_params(self, problem_type: str) -> frozenset[str]:
        """The param names a search space or a fixed config may use for this family: the documented
        ones and, for LightGBM, every native parameter and alias (its scikit-learn wrapper passes
        them on)."""
        names = self.documented_params(problem_type)
        return names | _lightgbm_native_params() if self.kind == "lightgbm" else names

    def check_params(self, names: Iterable[str], problem_type: str, *, what: str = "search space") -> None:
        """Refuse param names the family's estimator does not take (a misspelling would otherwise
        vary a setting the library ignores), naming the unknown ones and the accepted ones. Pipeline
        params ``step__param`` (:mod:`.pipeline_steps`) must name a step of this family and a param
        of that step."""
        names = [str(n) for n in names]
        check_step_names(self, problem_type, names, what=what)
        unknown = sorted(set(n for n in names if not is_step_param(n)) - self.accepted_params(problem_type))
        if unknown:
            hint = " (and LightGBM's native parameter names and aliases)" if self.kind == "lightgbm" else ""
            steps = step_param_names(self, problem_type)
            raise SearchSpaceError(
                f"{what}: {self.name} does not take {', '.join(map(repr, unknown))}; it takes "
                f"{', '.join(sorted(self.documented_params(problem_type)))}{hint}"
                + (f"; its pipeline steps take {', '.join(steps)}" if steps else "")
            )

    def build(self, params: Mapping[str, Any], problem_type: str, *, n_threads: int | None = None) -> Any:
        """An unfitted estimator for ``params`` (already merged with the defaults; pipeline params
        ``step__param`` configure the preprocessing, not the estimator, and are left out here)."""
        p = _translate(self, split_step_params(params)[0])
        if self.n_jobs_param and n_threads is not None and self.n_jobs_param not in params:
            p[self.n_jobs_param] = n_threads
        return self.estimator_class(problem_type)(**p)


#: search-friendly encodings that ``_translate`` turns into estimator params.
_ENCODINGS = frozenset({"dart_rounds"})


def _lightgbm_native_params() -> frozenset[str]:
    """LightGBM's own parameter names and their aliases, from LightGBM's alias table (a private
    helper of lightgbm.basic; if a release drops it, only the scikit-learn names are accepted)."""
    try:
        from lightgbm.basic import _ConfigAliases

        table = _ConfigAliases._get_all_param_aliases()
    except (ImportError, AttributeError):  # pragma: no cover - depends on the LightGBM release
        return frozenset()
    names = set(table)
    for aliases in table.values():
        names |= set(aliases)
    return frozenset(names)


def _translate(spec: ModelSpec, p: dict[str, Any]) -> dict[str, Any]:
    """Map search-friendly param encodings onto what the estimator accepts."""
    dart_rounds = p.pop("dart_rounds", None)
    if spec.kind == "lightgbm" and p.get("boosting_type") == "dart" and dart_rounds is not None:
        p["n_estimators"] = dart_rounds  # dart cannot stop early: its round count is searched apart
    if spec.kind == "lightgbm" and p.get("boosting_type") == "goss":
        # LightGBM 4: GOSS is a data-sampling strategy on top of gbdt, and it excludes bagging.
        p["boosting_type"] = "gbdt"
        p["data_sample_strategy"] = "goss"
        p.pop("bagging_fraction", None)
        p.pop("bagging_freq", None)
    if "hidden_layer_sizes" in p and isinstance(p["hidden_layer_sizes"], str):
        p["hidden_layer_sizes"] = tuple(int(x) for x in p["hidden_layer_sizes"].split("-"))
    return p


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
        },
        problem_space={BINARY: _CLASS_WEIGHT, MULTICLASS: _CLASS_WEIGHT},
        description="LightGBM gradient boosting (gbdt/dart/goss), native categoricals and missing values",
        portfolio=(
            # moderate: the usual hand-tuned starting point
            {"boosting_type": "gbdt", "n_estimators": 2000, "learning_rate": 0.05, "num_leaves": 31,
             "feature_fraction": 0.8, "bagging_fraction": 0.8, "bagging_freq": 1, "min_child_samples": 20,
             "lambda_l1": 1e-8, "lambda_l2": 1.0, "max_depth": 12, "min_gain_to_split": 0.0, "max_bin": 255,
             "class_weight": None},
            # small and regularized: small or noisy data
            {"boosting_type": "gbdt", "n_estimators": 2000, "learning_rate": 0.03, "num_leaves": 15,
             "feature_fraction": 0.6, "bagging_fraction": 0.7, "bagging_freq": 1, "min_child_samples": 40,
             "lambda_l1": 0.1, "lambda_l2": 5.0, "max_depth": 6, "min_gain_to_split": 0.0, "max_bin": 127,
             "class_weight": None},
            # large: many rows, interactions
            {"boosting_type": "gbdt", "n_estimators": 2000, "learning_rate": 0.05, "num_leaves": 96,
             "feature_fraction": 0.9, "bagging_fraction": 0.9, "bagging_freq": 1, "min_child_samples": 10,
             "lambda_l1": 1e-8, "lambda_l2": 0.1, "max_depth": 12, "min_gain_to_split": 0.0, "max_bin": 255,
             "class_weight": None},
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


def threads_per_trial(n_jobs: int, n_rows: int | None = None) -> int:
    """CPU threads one trial may use when ``n_jobs`` trials run at once on ``n_rows`` rows."""
    if n_rows is not None and n_rows < SMALL_DATA_ROWS:
        return 1
    return max(1, (os.cpu_count() or 1) // max(1, n_jobs))

