"""Model files that cannot run code when they are read: skops with an explicit list of trusted types.

A pickle (``joblib``, ``cloudpickle``) runs whatever its bytes say while it loads, so a model file
someone swapped runs their code. skops stores the object tree as data; loading constructs only the
types the caller trusts, and :func:`skops.io.get_untrusted_types` lists what a file needs *before*
anything is constructed. This module trusts the types of :data:`TRUSTED_TYPES` and nothing else --
never "whatever the file asks for":

* :func:`dump_model` refuses a model holding a type outside the list (so every file we write can be
  loaded by :func:`load_model`); the message names the types to review;
* :func:`load_model` refuses a file that is not a skops archive or that needs an untrusted type,
  then checks the loaded object's type.

The list covers the fitted models of every family in :mod:`src.mlops.models` (LightGBM, XGBoost and
the scikit-learn families; ``tests/mlops/test_model_io.py`` round-trips each on every problem type it
supports) plus our wrapper classes. skops also trusts its own defaults (builtin containers, numpy
arrays, most scikit-learn estimators). A new family whose model needs a new type fails in
:func:`dump_model` with the type's name: add it here after checking that constructing it runs no
user-controlled code (a class whose ``__setstate__`` only stores data, not a callable such as
``builtins.eval`` or ``os.system``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .datasets import write_atomically
from .errors import DataValidationError, MLOpsError
from .feature_selection import FeatureSelector
from .features import FeaturePreparer
from .objectives import AveragedModel, TunedModel
from .preprocessing import CategoryEncoder

__all__ = ["MODEL_FORMAT", "TRUSTED_TYPES", "RawRowsModel", "UntrustedModelError", "dump_model", "load_model",
           "trusted_types"]

#: the format of model files written by :func:`dump_model`.
MODEL_FORMAT = "skops"


class UntrustedModelError(MLOpsError, ValueError):
    """A model file that cannot be loaded without trusting more than :data:`TRUSTED_TYPES`."""


def _name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


#: Types a model file may hold beyond skops's defaults. Ours are named through the classes, so a
#: moved class moves its entry along.
TRUSTED_TYPES: tuple[str, ...] = (
    # our wrapper and model-level preprocessing
    _name(TunedModel),
    _name(AveragedModel),  # an ensemble of TunedModels (its members are TunedModels)
    _name(CategoryEncoder),
    f"{CategoryEncoder.__module__}._ToString",
    _name(FeatureSelector),  # the select step of pipeline search (a boolean mask and scores)
    # LightGBM
    "lightgbm.basic.Booster",
    "lightgbm.sklearn.LGBMClassifier",
    "lightgbm.sklearn.LGBMRegressor",
    # XGBoost
    "xgboost.core.Booster",
    "xgboost.sklearn.XGBClassifier",
    "xgboost.sklearn.XGBRegressor",
    # scikit-learn internals of the tree, neighbour, MLP and histogram-boosting families
    "sklearn.tree._tree.Tree",
    "sklearn.neighbors._kd_tree.KDTree",
    "sklearn.neighbors._ball_tree.BallTree",
    "sklearn.metrics._dist_metrics.EuclideanDistance64",
    "sklearn.metrics._dist_metrics.ManhattanDistance64",
    "sklearn.metrics._dist_metrics.MinkowskiDistance64",
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
    "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.utils.validation.check_array",
    # plain data containers
    "numpy.dtype",
    "collections.OrderedDict",
    # HistGradientBoosting keeps ``partial(check_array, ...)``; the wrapped callable must itself be
    # trusted (it is a separate node of the file), so this admits no other function.
    "functools.partial",
)


def trusted_types() -> list[str]:
    """:data:`TRUSTED_TYPES` as a list (what :func:`skops.io.load` takes)."""
    return list(TRUSTED_TYPES)


def _untrusted(*, data: bytes | None = None, file: Path | None = None) -> list[str]:
    import skops.io as sio

    needed = sio.get_untrusted_types(data=data) if data is not None else sio.get_untrusted_types(file=file)
    return sorted(t for t in needed if t not in TRUSTED_TYPES)


def dump_model(model: Any, path: str | os.PathLike[str]) -> Path:
    """Write ``model`` as a skops file at ``path`` (atomically); returns the path.

    Raises:
        UntrustedModelError: ``model`` holds a type outside :data:`TRUSTED_TYPES` (the file could
            not be loaded back by :func:`load_model`).
    """
    import skops.io as sio

    path = Path(path)
    data = sio.dumps(model)
    outside = _untrusted(data=data)
    if outside:
        raise UntrustedModelError(
            f"cannot save {type(model).__name__} as a safe model file: it holds types outside the trusted "
            f"list {outside}; review them and add them to TRUSTED_TYPES in src/mlops/model_io.py "
            "if constructing them runs no code"
        )
    write_atomically(path, lambda tmp: Path(tmp).write_bytes(data))
    return path


def load_model(path: str | os.PathLike[str], *, expected_type: type | tuple[type, ...] = TunedModel) -> Any:
    """Read a model written by :func:`dump_model`, constructing trusted types only.

    Raises:
        UntrustedModelError: not a skops file, a type outside :data:`TRUSTED_TYPES` is needed, or
            the object is not an ``expected_type``.
    """
    import skops.io as sio

    path = Path(path)
    try:
        outside = _untrusted(file=path)
    except Exception as e:  # noqa: BLE001 - any parse failure means "not our format"
        raise UntrustedModelError(
            f"model file {str(path)!r} is not a skops archive ({type(e).__name__}: {e}); model files are "
            f"never read as pickles: save the model again with save_model_artifact"
        ) from None
    if outside:
        raise UntrustedModelError(
            f"model file {str(path)!r} needs types outside the trusted list: {outside}; it was not written "
            "by this project (or by a newer version): refusing to load it"
        )
    obj = sio.load(path, trusted=trusted_types())
    if not isinstance(obj, expected_type):
        names = [t.__name__ for t in (expected_type if isinstance(expected_type, tuple) else (expected_type,))]
        raise UntrustedModelError(
            f"model file {str(path)!r} holds a {type(obj).__module__}.{type(obj).__qualname__}, not one of {names}"
        )
    return obj


class RawRowsModel:
    """A fitted model that predicts on raw rows: the training table's cleaning, then the model.

    ``predict`` / ``predict_proba`` / ``score_samples`` take the rows as they are in the training
    table (same columns; the target and extra columns are ignored) and clean them exactly like
    training did (:class:`~src.mlops.features.FeaturePreparer`). ``model`` is the bare
    :class:`~src.mlops.objectives.TunedModel` for already-prepared features; every other attribute
    (``classes_``, ``feature_names``, ``predict_for_metric``, ``encode_labels``...) is the
    TunedModel's and works on prepared features. Without a preparer the rows go to the TunedModel
    as they are.
    """

    def __init__(self, model: Any, preparer: FeaturePreparer | None = None) -> None:
        self.model = model
        self.preparer = preparer

    def prepare(self, rows: Any) -> Any:
        """The model's features of raw ``rows`` (a DataFrame).

        Raises:
            DataValidationError: a raw column the model needs is missing.
        """
        if self.preparer is None:
            return rows
        try:
            return self.preparer.transform(rows)
        except DataValidationError as e:
            names = getattr(self.model, "feature_names", None) or []
            if names and isinstance(rows, pd.DataFrame) and set(names) <= {str(c) for c in rows.columns}:
                raise DataValidationError(
                    f"{e} These rows hold the model's prepared feature columns instead: "
                    "pass prepared features to `.model` (the bare TunedModel)."
                ) from e
            raise

    def predict(self, rows: Any) -> np.ndarray:
        """Predictions for raw rows (original class labels, numbers, or 1 = anomaly)."""
        return self.model.predict(self.prepare(rows))  # type: ignore[no-any-return]

    def predict_proba(self, rows: Any) -> np.ndarray:
        """Class probabilities for raw rows, columns in ``classes_`` order."""
        return self.model.predict_proba(self.prepare(rows))  # type: ignore[no-any-return]

    def score_samples(self, rows: Any) -> np.ndarray:
        """Anomaly scores for raw rows (higher = more anomalous)."""
        return self.model.score_samples(self.prepare(rows))  # type: ignore[no-any-return]

    def __getattr__(self, name: str) -> Any:
        if name in ("model", "preparer") or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.model, name)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.model!r}, preparer={'yes' if self.preparer is not None else 'no'})"
