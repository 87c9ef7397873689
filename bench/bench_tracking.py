"""MLflow tracking overhead: 50 LightGBM trials on breast_cancer, tracking on vs off, side by side.

Run:  ./run bench bench_tracking [--n-trials 50] [--repeats 3]

Each repeat runs the same seeded study twice in one process, once with an MLflowTracker on a fresh
local SQLite store (parent run + one nested run per trial + summary; the wall time includes the
tracker's final flush) and once without, alternating the order. Reports the median wall times and
the overhead ratio (target: at most 10 %).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import warnings
from pathlib import Path

from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split

from src.mlops.optuna_optimizer import run_hyperparameter_optimization
from src.mlops.tracking import MLflowTracker

warnings.filterwarnings("ignore")


async def one(data, n_trials: int, seed: int, tracking_dir: Path | None) -> tuple[float, int]:
    X_tr, y_tr, X_va, y_va = data
    tracker = None
    if tracking_dir is not None:
        tracker = MLflowTracker(f"sqlite:///{tracking_dir / 'mlflow.db'}", experiment_name="bench")
    t0 = time.perf_counter()
    await run_hyperparameter_optimization("lightgbm", "binary_classification", X_tr, y_tr, X_va, y_va,
                                          n_trials=n_trials, seed=seed, listeners=[tracker] if tracker else [],
                                          study_name=f"bench-{seed}-{tracking_dir is not None}")
    dropped = 0
    if tracker is not None:
        await tracker.aclose()
        dropped = tracker.dropped_writes
    return time.perf_counter() - t0, dropped


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-trials", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    X_tr, X_va, y_tr, y_va = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    data = (X_tr, y_tr, X_va, y_va)
    on, off = [], []
    with tempfile.TemporaryDirectory() as d:
        # One store for the whole bench, as a user has: the first use pays imports and schema creation.
        await one(data, 2, 99, Path(d))
        for r in range(args.repeats):
            order = [True, False] if r % 2 == 0 else [False, True]
            for tracked in order:
                t, dropped = await one(data, args.n_trials, r, Path(d) if tracked else None)
                (on if tracked else off).append(t)
                print(f"  repeat {r}: tracking {'on ' if tracked else 'off'} {t:6.2f} s"
                      + (f" (dropped writes: {dropped})" if tracked else ""))
    m_on, m_off = statistics.median(on), statistics.median(off)
    pair = statistics.median(a / b - 1 for a, b in zip(on, off))
    print(f"\nLightGBM, breast_cancer, {args.n_trials} trials, median of {args.repeats}:")
    print(f"  tracking off {m_off:6.2f} s | tracking on (SQLite store) {m_on:6.2f} s | "
          f"overhead {100 * (m_on / m_off - 1):+.1f} % (median of paired ratios {100 * pair:+.1f} %)")


if __name__ == "__main__":
    asyncio.run(main())
