"""Does averaging the top-k configurations of a study beat deploying the single best? (issue 7)

The plain-Optuna protocol of ``peers.run_plain_optuna`` (TPE over a typical LightGBM space, a 75/25
split of dev, ``BUDGET`` seconds), then the k best distinct trials are each refit on all of dev and
their predictions averaged; one JSON line per (table, seed) with the test score of k = 1, 3, 5.

    .venv/bin/python bench/ensemble_probe.py 25 [TABLE ...] > bench/RESULTS-ensemble-probe.jsonl

This is the probe that motivated ``--ensemble`` (``src/mlops/ensemble.py``); the product's own
figures come from ``bench_real`` with an ``--ensemble`` variant.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import optuna

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peers import PRIMARY, _lgbm_class, as_categories, optuna_space, score_model  # noqa: E402
from real_tables import dev_test_split, find_tables, load_table  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402


class _Average:
    """The mean of fitted models' probabilities (classification) or predictions (regression)."""

    def __init__(self, models: list, problem_type: str) -> None:
        self.models, self.problem_type = models, problem_type
        self.classes_ = getattr(models[0], "classes_", None)

    def predict_proba(self, X):
        return np.mean([m.predict_proba(X) for m in self.models], axis=0)

    def predict(self, X):
        if self.problem_type == "regression":
            return np.mean([m.predict(X) for m in self.models], axis=0)
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


def main(budget: float, names: list[str] | None) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for t in find_tables(names):
        frame = load_table(t)
        for seed in (0, 1):
            dev, test = dev_test_split(frame, t, seed)
            y, yt = dev[t.target], test[t.target]
            X, Xt = as_categories(dev.drop(columns=[t.target]), test.drop(columns=[t.target]))
            pt = t.problem_type
            Model, (metric, higher) = _lgbm_class(pt), PRIMARY[pt]
            Xtr, Xva, ytr, yva = train_test_split(X, y, test_size=0.25, random_state=seed,
                                                  stratify=y if pt != "regression" else None)

            def fit(params, A, b):
                return Model(**params, random_state=seed, n_jobs=1, verbose=-1).fit(A, b)

            study = optuna.create_study(direction="maximize" if higher else "minimize",
                                        sampler=optuna.samplers.TPESampler(seed=seed))
            study.optimize(lambda tr: score_model(fit(optuna_space(tr), Xtr, ytr), pt, Xva, yva)[metric],
                           timeout=budget)
            done = sorted((tr for tr in study.trials if tr.value is not None), key=lambda tr: tr.value,
                          reverse=higher)
            models = [fit(optuna_space(optuna.trial.FixedTrial(tr.params)), X, y) for tr in done[:5]]
            row = {"table": t.name, "seed": seed, "metric": metric, "n": len(done)}
            for k in (1, 3, 5):
                row[f"top{k}"] = score_model(_Average(models[:k], pt), pt, Xt, yt)[metric]
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main(float(sys.argv[1]), sys.argv[2:] or None)
