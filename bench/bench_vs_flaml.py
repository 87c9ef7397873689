"""Our model-trainer graph vs FLAML vs hand-written Optuna, at equal time budgets, on messy tables.

Run:  ./run bench bench_vs_flaml [--budget 30] [--datasets churn segments] [--seeds 0 1]
                                 [--arms ours flaml flaml_lgbm optuna] [--out results.json]

Datasets (bench/messy_data.py, generated, fixed seed): churn (binary, 9 % positives, id/constant/
100-level city/NaNs), segments (4 string classes, money as text), house_prices (skewed regression),
noisy_signup (weak signal, label noise, date as text). Each is split once per bench seed into dev
(80 %) and test (20 %, stratified for classification). Every arm sees dev only and is scored on the
same test rows:

* ours        build_model_trainer_graph().ainvoke with context.data = dev frame, timeout=budget,
              n_trials=None, lightgbm, in-memory Optuna storage, no MLflow. The graph makes its own
              train/val/test split of dev; the bench scores the saved artifacts (state["model_path"]
              and state["defaults_model_path"]) on its own test rows. Wall = ainvoke end to end.
* flaml       flaml.AutoML().fit(X_dev, y_dev, time_budget=budget, default estimator list).
* flaml_lgbm  the same with estimator_list=["lgbm"].
* optuna      LGBM with a typical space, TPE, fit on 75 % of dev / score on 25 %, study.optimize(
              timeout=budget), refit of the best params on all of dev.

The peer arms and the scoring live in bench/peers.py (shared with bench_real).

The baselines get the raw frame as a typical user passes it: object columns cast to pandas
``category`` (test rows with the dev categories), nothing dropped. Everything runs on one thread
(n_jobs=1) and sequentially. Metrics: binary ROC-AUC (+ log loss, accuracy), multiclass log loss
(+ accuracy), regression RMSE (+ R^2).
"""

from __future__ import annotations

import sys

try:
    import flaml  # noqa: F401
except ImportError:
    print("FLAML is not installed. Install it into the project's venv with:\n"
          "    .venv/bin/pip install 'flaml>=2,<3'\n"
          "(flaml's [automl] extra pins xgboost<3 and installs the 'xgboost' wheel over the project's "
          "xgboost-cpu 3.x; lightgbm, xgboost-cpu, scipy, pandas and scikit-learn are already there.)",
          file=sys.stderr)
    sys.exit(2)

import argparse
import asyncio
import json
import logging
import os
import tempfile
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

import lightgbm as lgb  # noqa: E402
import numpy as np  # noqa: E402
import optuna  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

if __package__ in (None, ""):  # run as a script (./run bench ...): make `src` and `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.messy_data import DATASETS, make_dataset  # noqa: E402
from bench.peers import PRIMARY, run_peer, score  # noqa: E402

_t0 = time.perf_counter()
from src.agents.ml_foundation.model_trainer import ModelTrainerContext, build_model_trainer_graph  # noqa: E402
from src.agents.ml_foundation.model_trainer.artifacts import load_run_artifact  # noqa: E402

OURS_IMPORT_S = time.perf_counter() - _t0

warnings.filterwarnings("ignore")
optuna.logging.set_verbosity(optuna.logging.WARNING)
logging.getLogger("flaml").setLevel(logging.ERROR)
logging.getLogger("flaml.automl.logger").setLevel(logging.ERROR)

ARMS = ("ours", "flaml", "flaml_lgbm", "optuna")


# --------------------------------------------------------------------------------------------- data
def dev_test_split(name: str, seed: int) -> dict[str, Any]:
    frame, target, pt = make_dataset(name, seed=0)  # the data is fixed; the bench seed moves the split
    X, y = frame.drop(columns=[target]), frame[target]
    strat = y if pt != "regression" else None
    X_dev, X_te, y_dev, y_te = train_test_split(X, y, test_size=0.2, random_state=1000 + seed, stratify=strat)
    return {"frame": frame, "target": target, "problem_type": pt,
            "X_dev": X_dev, "y_dev": y_dev, "X_test": X_te, "y_test": y_te}


# --------------------------------------------------------------------------------------------- ours
def _predict_ours(model: Any, X: pd.DataFrame, pt: str) -> dict[str, float]:
    if pt == "regression":
        return {"pred": model.predict(X)}  # type: ignore[dict-item]
    return {"proba": model.predict_proba(X)}  # type: ignore[dict-item]


async def run_ours(d: dict[str, Any], budget: float, seed: int, options: dict[str, Any] | None = None) -> dict[str, Any]:
    pt = d["problem_type"]
    dev = d["X_dev"].copy()
    dev[d["target"]] = d["y_dev"]
    with tempfile.TemporaryDirectory(prefix="bench-ours-") as home:
        t0 = time.perf_counter()
        graph = build_model_trainer_graph()
        build_s = time.perf_counter() - t0
        ctx = ModelTrainerContext(hpo_home=Path(home), optuna_storage=None, tracker=None, data=dev)
        inputs = {"target": d["target"], "algorithm": "lightgbm", "timeout": float(budget), "n_trials": None,
                  "seed": seed, **(options or {})}
        node_s: dict[str, float] = {}
        state: dict[str, Any] = {}
        t0 = time.perf_counter()
        last = t0
        async for mode, chunk in graph.astream(inputs, context=ctx, stream_mode=["updates", "values"]):
            now = time.perf_counter()
            if mode == "updates":
                for node in chunk:
                    node_s[node] = round(now - last, 3)
                last = now
            else:
                state = chunk
        wall = time.perf_counter() - t0
        out: dict[str, Any] = {"wall_s": wall, "graph_build_s": build_s, "node_s": node_s,
                               "status": state.get("status"), "error": state.get("error")}
        if state.get("status") != "completed":
            out["failed"] = f"graph status {state.get('status')}: {state.get('error')}"
            return out
        hpo = state.get("hpo") or {}
        model, meta = load_run_artifact(state, state["model_path"])
        dmodel, _ = load_run_artifact(state, state["defaults_model_path"])
        # the saved artifacts are scored on the raw test rows, as a user would (they apply the cleaning)
        t1 = time.perf_counter()
        test = score(pt, d["y_test"], model.classes_, **_predict_ours(model, d["X_test"], pt))
        dtest = score(pt, d["y_test"], dmodel.classes_, **_predict_ours(dmodel, d["X_test"], pt))
        prep_s = time.perf_counter() - t1
        out.update({
            "test": test, "defaults_test": dtest, "test_prep_s": prep_s,
            "study_s": hpo.get("duration_s"), "n_trials": hpo.get("n_trials"), "n_completed": hpo.get("n_completed"),
            "n_pruned": hpo.get("n_pruned"), "n_failed": hpo.get("n_failed"), "stop_reason": hpo.get("stop_reason"),
            "best_val": hpo.get("best_value"), "defaults_val": hpo.get("defaults_value"),
            "best_params": hpo.get("best_params"), "internal_test_metrics": state.get("test_metrics"),
            "internal_defaults_test_metrics": state.get("defaults_test_metrics"),
            "split_sizes": state.get("split_sizes"), "dropped_columns": state.get("dropped_columns"),
            "problem_type": state.get("problem_type"), "training": state.get("training"),
            "n_features": len(model.feature_names or []),
            "failure_reasons": hpo.get("failure_reasons"),
        })
        return out


# --------------------------------------------------------------------------------------------- main
def fmt(v: Any, nd: int = 4) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{nd}f}" if abs(v) < 1000 else f"{v:,.0f}"
    return str(v)


_SHORT = {"load_data": "load", "split_data": "split", "hyperparameter_tuner": "tune", "training_executor": "fit",
          "model_evaluator": "eval", "register_model": "reg"}


def print_table(results: list[dict[str, Any]]) -> None:
    print(f"\n{'dataset':<13} {'seed':>4} {'arm':<15} {'primary':>9} {'test':>10} {'2nd':>9} {'test 2nd':>10} "
          f"{'wall s':>7} {'study s':>7} {'trials':>7}  note")
    for r in results:
        pt = r["problem_type"]
        metric, _ = PRIMARY[pt]
        second = {"roc_auc": "log_loss", "log_loss": "accuracy", "rmse": "r2"}[metric]
        rows = [(r["arm"], r)]
        if r["arm"] == "ours" and "defaults_test" in r:
            rows.append(("ours-defaults", {"test": r["defaults_test"]}))
        for label, x in rows:
            if "failed" in x:
                print(f"{r['dataset']:<13} {r['seed']:>4} {label:<15} FAILED: {x['failed'][:120]}")
                continue
            t = x.get("test", {})
            note = ""
            if label == "ours":
                note = (f"{x.get('n_completed')} done/{x.get('n_pruned')} pruned/{x.get('n_failed')} failed; "
                        "nodes s: " + " ".join(f"{_SHORT.get(k, k)} {v:.2f}" for k, v in x["node_s"].items()))
            elif label.startswith("flaml"):
                note = f"best={x.get('best_estimator')}"
            print(f"{r['dataset']:<13} {r['seed']:>4} {label:<15} {metric:>9} {fmt(t.get(metric)):>10} {second:>9} "
                  f"{fmt(t.get(second)):>10} {fmt(x.get('wall_s'), 1):>7} {fmt(x.get('study_s'), 1):>7} "
                  f"{fmt(x.get('n_trials')):>7}  {note}")


def print_diffs(results: list[dict[str, Any]]) -> None:
    print("\nours minus baseline on the test set (primary metric; '+' = ours better), per dataset (mean over seeds):")
    by: dict[tuple[str, str], list[float]] = {}
    pts: dict[str, str] = {}
    for r in results:
        pts[r["dataset"]] = r["problem_type"]
        if "test" in r:
            by.setdefault((r["dataset"], r["arm"]), []).append(r["test"][PRIMARY[r["problem_type"]][0]])
            if r["arm"] == "ours":
                by.setdefault((r["dataset"], "ours-defaults"), []).append(
                    r["defaults_test"][PRIMARY[r["problem_type"]][0]])
    for ds, pt in pts.items():
        metric, higher = PRIMARY[pt]
        ours = by.get((ds, "ours"))
        parts = []
        for other in ("flaml", "flaml_lgbm", "optuna", "ours-defaults"):
            o = by.get((ds, other))
            if ours and o:
                diff = (np.mean(ours) - np.mean(o)) * (1 if higher else -1)
                rel = diff / abs(np.mean(o)) * 100
                parts.append(f"vs {other}: {diff:+.4g} ({rel:+.2f}%)")
        print(f"  {ds:<13} [{metric}, {'higher' if higher else 'lower'} is better] "
              + ("; ".join(parts) if parts else "(nothing to compare)"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--budget", type=float, default=30.0, help="time budget per arm in seconds (default 30)")
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    ap.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    ap.add_argument("--ours-options", type=json.loads, default={},
                    help='graph inputs for our arm, as JSON, e.g. \'{"pruner": "none", "refit": "train"}\'')
    args = ap.parse_args()

    print(f"budget {args.budget:g}s per arm; datasets {args.datasets}; seeds {args.seeds}; arms {args.arms}; "
          f"cpu_count {os.cpu_count()}; flaml {flaml.__version__}, lightgbm {lgb.__version__}, optuna {optuna.__version__}; "
          f"import of our graph package {OURS_IMPORT_S:.2f}s", flush=True)
    results: list[dict[str, Any]] = []
    t_start = time.perf_counter()
    for seed in args.seeds:
        for name in args.datasets:
            d = dev_test_split(name, seed)
            pt = d["problem_type"]
            print(f"\n== {name} seed {seed}: {pt}, dev {len(d['X_dev'])} rows, test {len(d['X_test'])} rows, "
                  f"{d['X_dev'].shape[1]} raw columns", flush=True)
            for arm in args.arms:
                rec: dict[str, Any] = {"dataset": name, "seed": seed, "arm": arm, "problem_type": pt,
                                       "budget_s": args.budget}
                try:
                    if arm == "ours":
                        rec.update(asyncio.run(run_ours(d, args.budget, seed, args.ours_options)))
                    else:
                        rec.update(run_peer(arm, d["X_dev"], d["y_dev"], d["X_test"], d["y_test"], pt, args.budget,
                                            seed))
                except Exception as e:  # noqa: BLE001 - one broken arm must not end the bench
                    rec["failed"] = f"{type(e).__name__}: {e}"
                    rec["traceback"] = traceback.format_exc()
                results.append(rec)
                metric = PRIMARY[pt][0]
                msg = rec.get("failed") or (f"{metric}={fmt(rec['test'][metric])} wall={rec['wall_s']:.1f}s"
                                            + (f" defaults {metric}={fmt(rec['defaults_test'][metric])}"
                                               if arm == "ours" else ""))
                print(f"   {arm:<11} {msg}", flush=True)
    print_table(results)
    print_diffs(results)
    print(f"\ntotal {time.perf_counter() - t_start:.0f}s")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        meta = {"budget_s": args.budget, "seeds": args.seeds, "datasets": args.datasets, "arms": args.arms,
                "versions": {"flaml": flaml.__version__, "lightgbm": lgb.__version__, "optuna": optuna.__version__},
                "ours_import_s": OURS_IMPORT_S}
        args.out.write_text(json.dumps({"meta": meta, "results": results}, indent=2, default=str) + "\n")
        print(f"results written to {args.out}")


if __name__ == "__main__":
    main()
