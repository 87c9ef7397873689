"""Win/tie/loss of the ours:narrow3 arm (--phases 3) against ours per (table, seed) in a bench_real cells file,
with bench_real's tie tolerance; also which phases each narrowed cell reached.  Run: python bench/narrowing_wtl.py CELLS.jsonl"""
import json
import sys
rows = [json.loads(l) for l in open(sys.argv[1] if len(sys.argv) > 1 else "bench/results-real/cells.jsonl")]
by = {(r["table"], r["seed"], r["arm"]): r for r in rows}
w = t = l = 0
for (table, seed, arm), off in sorted(by.items()):
    if arm != "ours" or (table, seed, "ours:narrow3") not in by:
        continue
    on = by[(table, seed, "ours:narrow3")]
    m = off["metric"]; a = on["test"][m] if isinstance(on["test"], dict) else on["test"]; b = off["test"][m] if isinstance(off["test"], dict) else off["test"]
    tol = 1e-4 * abs(b) if m == "rmse" else 1e-4
    better = (a - b) if m == "roc_auc" else (b - a)
    res = "tie" if abs(a - b) <= tol else ("win" if better > 0 else "loss")
    w += res == "win"; t += res == "tie"; l += res == "loss"
    trials = lambda r: (r.get("run") or {}).get("hpo", {}).get("n_trials")
    print(f"| {table} | {seed} | {m} | {b:.6g} | {a:.6g} | {res} | {trials(off)} / {trials(on)} |")
print(f"narrowing on vs off: {w} win, {t} tie, {l} loss")
for r in rows:
    if r["arm"] == "ours:narrow3":
        phases = ((r.get("run") or {}).get("hpo") or {}).get("phases") or []
        print(f"{r['table']} seed {r['seed']}: phases (phase, first trial, trials) "
              f"{[(p['phase'], p['start_trial'], p['n_trials']) for p in phases]}")
