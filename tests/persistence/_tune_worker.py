"""Subprocess used by the kill -9 test: tunes LightGBM on breast_cancer into a PostgreSQL study."""

from __future__ import annotations

import asyncio
import json
import sys

from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split

from src.mlops.optuna_optimizer import run_hyperparameter_optimization
from src.mlops.persistence import HistoryRecorder, PostgresHistoryRepository, create_pool


async def main(dsn: str, study_name: str, n_trials: int) -> None:
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    X_tr, X_va, y_tr, y_va = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    async with await create_pool(dsn, max_size=2) as db:
        recorder = HistoryRecorder(PostgresHistoryRepository(db))
        try:
            r = await run_hyperparameter_optimization(
                "lightgbm", "binary_classification", X_tr, y_tr, X_va, y_va, n_trials=n_trials, seed=0,
                pruner="none", study_name=study_name, storage=dsn, listeners=[recorder],
                fixed_params={"n_estimators": 300}, space_overrides={"n_estimators": None},
                early_stopping_rounds=None)
        finally:
            await recorder.aclose()
    print(json.dumps({"n_trials": r.n_trials, "n_completed": r.n_completed, "n_failed": r.n_failed}))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
