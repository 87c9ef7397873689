"""A small saved model for the tracking tests: fitted on messy raw rows, written as the trainer does."""

from __future__ import annotations

import numpy as np
import pandas as pd


def saved_model(tmp_path, steps=None):
    """A LightGBM classifier fitted on messy raw rows: its skops file, its preparer file, the raw rows.
    ``steps``: pipeline-search step params (e.g. a feature selection) fitted into the model."""
    from src.mlops.features import prepare_features, save_preparer
    from src.mlops.model_io import dump_model
    from src.mlops.models import get_model_spec
    from src.mlops.objectives import LabelCodec, fit_model

    rng = np.random.default_rng(0)
    n = 200
    raw = pd.DataFrame({
        "income": [f"${v:,.2f}" for v in rng.lognormal(10, 0.5, n)],
        "age": rng.integers(18, 80, n),
        "plan": rng.choice(["basic", "plus", "premium"], n),
        "churn": rng.choice(["no", "yes"], n),
    })
    prepared = prepare_features(raw, "churn")
    codec = LabelCodec(prepared.y)
    spec = get_model_spec("lightgbm")
    params = {**spec.default_params("binary_classification", seed=0), "n_estimators": 20, **(steps or {})}
    model = fit_model(spec, "binary_classification", params, prepared.X, codec.encode(prepared.y), codec=codec).model
    model_file = dump_model(model, tmp_path / "model.skops")
    preparer_file = save_preparer(prepared.preparer, tmp_path)
    return model, model_file, preparer_file, raw


