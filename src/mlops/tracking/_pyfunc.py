"""The MLflow pyfunc model: the user's raw rows in, predictions out (loaded in any environment built
from the model's logged requirements; the code it needs is logged with it, see :mod:`._model`).

>>> model = mlflow.pyfunc.load_model("models:/<model_id>")
>>> model.predict(raw_rows)                                               # original labels / numbers
>>> model.predict(raw_rows, params={"predict_method": "predict_proba"})   # classifiers: one column per class
>>> model.predict(raw_rows, params={"predict_method": "score_samples"})   # anomaly detection

The fitted model is read from its skops file with the trusted types of :mod:`src.mlops.model_io`
(no pickle), the cleaning from ``preparer.json`` (plain JSON).
"""

from __future__ import annotations

from typing import Any

import mlflow.pyfunc
import pandas as pd

__all__ = ["RawRowsPyfunc", "PREDICT_METHODS"]

#: values of the ``predict_method`` param.
PREDICT_METHODS = ("predict", "predict_proba", "score_samples")


class RawRowsPyfunc(mlflow.pyfunc.PythonModel):
    """``predict(raw_rows, params={"predict_method": ...})`` of a model saved by the trainer."""

    # The model validates raw rows itself (its logged signature names the raw columns); MLflow's
    # type-hint wrapping would only warn at class definition ("Add type hints to predict") and
    # infer an AnyType schema from a DataFrame hint. This class attribute is MLflow's switch for it.
    _skip_type_hint_validation = True

    def load_context(self, context: Any) -> None:
        from src.mlops.features import load_preparer
        from src.mlops.model_io import RawRowsModel, load_model

        preparer = context.artifacts.get("preparer")
        self.model = RawRowsModel(load_model(context.artifacts["model"]),
                                  load_preparer(preparer) if preparer else None)

    def predict(self, context, model_input, params=None):  # noqa: ANN001 - MLflow's own signature
        """Predictions for raw rows; ``predict_proba`` gives a DataFrame with one column per class."""
        method = (params or {}).get("predict_method") or "predict"
        if method not in PREDICT_METHODS:
            raise ValueError(f"predict_method must be one of {list(PREDICT_METHODS)}, but got {method!r}")
        rows = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        if method == "predict_proba":
            classes = self.model.classes_
            if classes is None:
                raise ValueError("predict_method='predict_proba' needs a classifier; this model predicts numbers")
            return pd.DataFrame(self.model.predict_proba(rows), columns=[str(c) for c in classes], index=rows.index)
        if method == "score_samples":
            return self.model.score_samples(rows)
        return self.model.predict(rows)
