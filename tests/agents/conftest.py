"""Fixtures of the model-trainer graph tests: real components on small data.

``pg_uri`` starts an embedded PostgreSQL (pgserver) once per session, or uses ``DATABASE_URL``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from src.agents.ml_foundation.model_trainer import ModelTrainerContext


@pytest.fixture
def hpo_home(tmp_path: Path) -> Path:
    return tmp_path / "hpo"


@pytest.fixture
def context(hpo_home: Path) -> ModelTrainerContext:
    return ModelTrainerContext(hpo_home=hpo_home)


def make_messy_frame(n: int = 600, seed: int = 0) -> pd.DataFrame:
    """Churn-like data: an ID column, string categoricals, missing values, ~10% positives."""
    rng = np.random.default_rng(seed)
    age = rng.normal(45, 12, n).round()
    income = rng.lognormal(10, 0.5, n)
    city = rng.choice(["paris", "rome", "oslo", "lima"], n).astype(object)
    plan = rng.choice(["basic", "plus", "premium"], n, p=[0.6, 0.3, 0.1]).astype(object)
    tenure = rng.integers(0, 120, n).astype(float)
    score = -0.04 * tenure + 1.2 * (plan == "basic") + 0.8 * (city == "rome") + 0.02 * (age - 45)
    score += rng.normal(0, 0.5, n)
    churn = np.where(score > np.quantile(score, 0.9), "yes", "no")  # ~10% positives
    age[rng.random(n) < 0.1] = np.nan
    city[rng.random(n) < 0.08] = None
    tenure[rng.random(n) < 0.05] = np.nan
    return pd.DataFrame({
        "customer_id": rng.permutation(np.arange(10_000, 10_000 + n)),
        "age": age,
        "income": income.round(2),
        "city": city,
        "plan": plan,
        "tenure_months": tenure,
        "churn": churn,
    })


@pytest.fixture
def messy_csv(tmp_path: Path) -> Path:
    path = tmp_path / "churn.csv"
    make_messy_frame().to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def pg_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A PostgreSQL URI: ``DATABASE_URL`` or an embedded server for the session."""
    if os.environ.get("DATABASE_URL"):
        yield os.environ["DATABASE_URL"]
        return
    pgserver = pytest.importorskip("pgserver")
    server = pgserver.get_server(tmp_path_factory.mktemp("pgdata"), cleanup_mode="stop")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
