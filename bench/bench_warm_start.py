"""Warm start + trial cache vs a cold run at equal time (issue 12, measured): per table, in a fresh
HPO_HOME, ``hpo train --time-budget 30`` three times on the same CSV:

1. first: the first run (empty history: cold, but it also pays the embedded server's first start);
2. warm: the same command again (warm start from run 1's study + trial cache);
3. cold: the same command with --no-warm-start --no-cache (a cold run under the same conditions as 2).

    .venv/bin/python bench/bench_warm_start.py [--budget 30] [--tables carData::TitanicSurvival ...]

Prints one row per run (test metric, best validation value, trials, cached, seeded) and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from real_tables import find_tables, load_table  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TABLES = ["carData::TitanicSurvival", "carData::Chile", "carData::SLID"]


def run(home: Path, csv: Path, target: str, budget: float, extra: list[str], out: Path) -> dict:
    env = {**os.environ, "HPO_HOME": str(home)}
    cmd = [sys.executable, "-m", "src.cli", "train", "--data", str(csv), "--target", target, "--time-budget",
           str(budget), "--no-mlflow", "--quiet", "--output-json", str(out), *extra]
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        return {"error": p.stderr[-800:]}
    d = json.loads(out.read_text())
    hpo = d.get("hpo") or {}
    metric = hpo.get("metric")
    return {"metric": metric, "test": (d.get("test_metrics") or {}).get(metric), "val_best": hpo.get("best_value"),
            "val_defaults": hpo.get("defaults_value"), "n_trials": hpo.get("n_trials"),
            "n_completed": hpo.get("n_completed"), "n_pruned": hpo.get("n_pruned"), "n_cached": hpo.get("n_cached"),
            "n_seeded": (hpo.get("warm_start") or {}).get("n_seeded"), "study_s": hpo.get("duration_s"),
            "scheme": hpo.get("scheme"), "total_s": (d.get("timings") or {}).get("total")}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--budget", type=float, default=30)
    ap.add_argument("--tables", nargs="*", default=DEFAULT_TABLES)
    ap.add_argument("--out", default=str(ROOT / "bench" / "RESULTS-warm-start.json"))
    args = ap.parse_args()
    results = []
    for t in find_tables(args.tables):
        work = Path(tempfile.mkdtemp(prefix="hpo-warm-"))
        csv = work / f"{t.slug}.csv"
        load_table(t).to_csv(csv, index=False)
        home = work / "home"
        for arm, extra in (("first", []), ("warm", []), ("cold", ["--no-warm-start", "--no-cache"])):
            r = {"table": t.name, "arm": arm, **run(home, csv, t.target, args.budget, extra, work / f"{arm}.json")}
            results.append(r)
            print(json.dumps(r), flush=True)
        subprocess.run([sys.executable, "-c", "import pgserver,sys; pgserver.get_server(sys.argv[1]).cleanup()",
                        str(home / "pgdata")], capture_output=True)
    Path(args.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
