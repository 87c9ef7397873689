"""LightGBM on scikit-learn's breast_cancer: defaults vs 30 tuned trials, on a fixed split.

Run:  ./run bench bench_breast_cancer [--n-trials 30] [--seeds 0 1 2]

Prints, for each seed, the defaults' validation ROC-AUC (trial 0), the tuned validation ROC-AUC,
and the wall time of run_hyperparameter_optimization; plus plain Optuna's TPE (``study.optimize``
over the same search space, same budget, no defaults trial, no pruning) side by side, so the
ratio of wall times is measured in one run on this (shared, noisy) machine.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import warnings

import optuna
from sklearn.datasets import load_breast_cancer
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

from src.mlops.models import get_model_spec
from src.mlops.optuna_optimizer import run_hyperparameter_optimization

warnings.filterwarnings("ignore")
optuna.logging.set_verbosity(optuna.logging.WARNING)


def fixed_split():
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    X_tr, X_rest, y_tr, y_rest = train_test_split(X, y, test_size=0.4, random_state=2024, stratify=y)
    X_va, X_te, y_va, y_te = train_test_split(X_rest, y_rest, test_size=0.5, random_state=2024, stratify=y_rest)
    return X_tr, y_tr, X_va, y_va


def plain_optuna(X_tr, y_tr, X_va, y_va, n_trials: int, seed: int) -> tuple[float, float]:
    spec = get_model_spec("lightgbm")
    space = spec.search_space("binary_classification")

    def objective(trial):
        params = {**spec.default_params("binary_classification", seed=seed), **space.sample(trial)}
        model = spec.build(params, "binary_classification")
        model.fit(X_tr, y_tr)
        return roc_auc_score(y_va, model.predict_proba(X_va)[:, 1])

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    t0 = time.perf_counter()
    study.optimize(objective, n_trials=n_trials)
    return study.best_value, time.perf_counter() - t0


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-trials", type=int, default=30)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = ap.parse_args()
    X_tr, y_tr, X_va, y_va = fixed_split()
    print(f"breast_cancer fixed split: train={len(X_tr)} val={len(X_va)}; LightGBM, {args.n_trials} trials, TPE")
    print(f"{'seed':>4} {'defaults AUC':>13} {'tuned AUC':>10} {'ours s':>7} {'plain optuna AUC':>17} {'plain s':>8} {'time ratio':>10}")
    for seed in args.seeds:
        t0 = time.perf_counter()
        r = await run_hyperparameter_optimization("lightgbm", "binary_classification", X_tr, y_tr, X_va, y_va,
                                                  metric="roc_auc", n_trials=args.n_trials, seed=seed)
        ours = time.perf_counter() - t0
        p_best, p_time = plain_optuna(X_tr, y_tr, X_va, y_va, args.n_trials, seed)
        print(f"{seed:>4} {r.defaults_value:>13.5f} {r.best_value:>10.5f} {ours:>7.2f} {p_best:>17.5f} {p_time:>8.2f} "
              f"{ours / p_time:>10.2f}   ({r.n_completed} complete, {r.n_pruned} pruned)")


if __name__ == "__main__":
    asyncio.run(main())
