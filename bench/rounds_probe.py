"""How many boosting rounds should a refit on more rows run? (issue 7: the rule behind
``src.mlops.fitting.ROUNDS_EXPONENT``)

The product finds a configuration's round count by early stopping on fits of fewer rows than the final
models get (under ``cv=5`` a fold trains on 80 % of train+val; the deployed model is fitted on
train+val+test: 1.56x a fold's rows). This probe mirrors that on the bench's dev/test splits: per
(table, seed) and LightGBM configuration (three fixed ones: the portfolio's moderate and small
configurations and a fast one), 5-fold CV with early stopping (patience 50, on LightGBM's default loss)
on a random 80 % of dev finds ``B`` (the mean over folds); then LightGBM is fitted on all of dev with
``B`` rounds (``none``), ``B * sqrt(g)`` (``sqrt``) and ``B * g`` (``linear``), g = 1.5625, and
scored on the bench's raw test rows (log loss for classification, with ROC-AUC for binary; RMSE for
regression). One core, deterministic (seeds fixed).

    .venv/bin/python bench/rounds_probe.py > bench/results-rounds.jsonl            # ~50 min on one core
    .venv/bin/python bench/rounds_probe.py --tables Chile bfi                       # a subset
    .venv/bin/python bench/rounds_probe.py --report bench/results-rounds.jsonl --md bench/RESULTS-rounds.md
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peers import as_categories, score_model  # noqa: E402
from real_tables import FRESH_TABLES, TABLES, dev_test_split, load_table  # noqa: E402

CONFIGS: dict[str, dict[str, Any]] = {
    "moderate": dict(learning_rate=0.05, num_leaves=31, colsample_bytree=0.8, subsample=0.8, subsample_freq=1,
                     min_child_samples=20, reg_lambda=1.0),
    "small": dict(learning_rate=0.03, num_leaves=15, colsample_bytree=0.6, subsample=0.7, subsample_freq=1,
                  min_child_samples=40, reg_alpha=0.1, reg_lambda=5.0, max_depth=6),
    "fast": dict(learning_rate=0.1, num_leaves=63, min_child_samples=10),
}
RULES = ("none", "sqrt", "linear")
SEEDS = (0, 1, 2)
MAX_ROUNDS, PATIENCE = 3000, 50


def probe(names: list[str] | None) -> None:
    import lightgbm as lgb
    from sklearn.model_selection import KFold, StratifiedKFold, train_test_split

    warnings.filterwarnings("ignore")
    for t in (*TABLES, *FRESH_TABLES):
        if names and not any(n in t.name for n in names):
            continue
        frame = load_table(t)
        for seed in SEEDS:
            dev, test = dev_test_split(frame, t, seed)
            X_dev, X_test = as_categories(dev.drop(columns=[t.target]), test.drop(columns=[t.target]))
            y_dev, y_test = dev[t.target], test[t.target]
            pt = t.problem_type
            X_tv, _, y_tv, _ = train_test_split(X_dev, y_dev, test_size=0.2, random_state=seed,
                                                stratify=None if pt == "regression" else y_dev)
            Model = lgb.LGBMRegressor if pt == "regression" else lgb.LGBMClassifier
            folds = (KFold if pt == "regression" else StratifiedKFold)(5, shuffle=True, random_state=seed)
            for name, cfg in CONFIGS.items():
                found = []
                for tr, va in folds.split(X_tv, y_tv):
                    m = Model(n_estimators=MAX_ROUNDS, random_state=seed, n_jobs=1, verbose=-1, **cfg)
                    m.fit(X_tv.iloc[tr], y_tv.iloc[tr], eval_set=[(X_tv.iloc[va], y_tv.iloc[va])],
                          callbacks=[lgb.early_stopping(PATIENCE, verbose=False)])
                    found.append(m.best_iteration_ or MAX_ROUNDS)
                B, g = float(np.mean(found)), len(X_dev) / (0.8 * len(X_tv))
                row: dict[str, Any] = {"table": t.name, "seed": seed, "pt": pt, "config": name, "B": B, "g": g}
                for rule, rounds in zip(RULES, (B, B * math.sqrt(g), B * g)):
                    m = Model(n_estimators=max(1, round(rounds)), random_state=seed, n_jobs=1, verbose=-1, **cfg)
                    s = score_model(m.fit(X_dev, y_dev), pt, X_test, y_test)
                    row[rule] = s["rmse"] if pt == "regression" else s["log_loss"]
                    if pt == "binary_classification":
                        row[f"{rule}_auc"] = s["roc_auc"]
                print(json.dumps(row), flush=True)


def report(rows: list[dict[str, Any]]) -> str:
    """Win/loss and mean relative difference of ``none`` and ``sqrt`` against ``linear`` (+ = better)."""
    def rel(r: dict[str, Any], a: str) -> float:  # both metrics: lower is better
        return (r["linear"] - r[a]) / abs(r["linear"])

    out = ["| problem | pairs | rule | vs linear, test loss: better/worse | mean | median | ROC-AUC vs linear: better/worse, mean |",
           "|---|---|---|---|---|---|---|"]
    groups = ["binary_classification", "multiclass_classification", "regression"]
    for pt in groups:
        sel = [r for r in rows if r["pt"] == pt]
        for rule in ("none", "sqrt"):
            d = np.array([rel(r, rule) for r in sel])
            auc = ""
            if pt == "binary_classification":
                a = np.array([r[f"{rule}_auc"] - r["linear_auc"] for r in sel])
                auc = f"{(a > 1e-4).sum()}/{(a < -1e-4).sum()}, {a.mean():+.4f}"
            out.append(f"| {pt} | {len(sel)} | {rule} | {(d > 1e-4).sum()}/{(d < -1e-4).sum()} | "
                       f"{100 * d.mean():+.2f} % | {100 * np.median(d):+.2f} % | {auc} |")
    per = defaultdict(list)
    for r in rows:
        per[r["table"], r["pt"]].append(rel(r, "sqrt"))
    out += ["", "Per table, `sqrt` against `linear` (mean relative difference of the test loss over seeds and configurations):", ""]
    out += [f"- {t} ({pt.split('_')[0]}): {100 * np.mean(v):+.2f} %" for (t, pt), v in per.items()]
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tables", nargs="+", help="names (or parts) of bench/real_tables.py tables (default: all 24)")
    ap.add_argument("--report", type=Path, help="write the report of this JSONL instead of probing")
    ap.add_argument("--md", type=Path, help="markdown report path (with --report; default: stdout)")
    args = ap.parse_args()
    if args.report is None:
        probe(args.tables)
        return
    rows = [json.loads(line) for line in args.report.read_text().splitlines() if line.startswith("{")]
    text = (f"# rounds_probe: a refit's rounds on 1.56x the rows (none / sqrt / linear growth)\n\n"
            f"{__doc__.split(chr(10) + chr(10))[1]}\n\n{len(rows)} (table, seed, configuration) rows from "
            f"`{args.report}`.\n\n{report(rows)}\n")
    if args.md:
        args.md.write_text(text)
    else:
        print(text)


if __name__ == "__main__":
    main()
