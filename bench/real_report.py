"""bench_real's report: per budget, the (table, seed) scores of every arm, ours' win/tie/loss per peer,
mean ranks, a paired test against LightGBM defaults, issue 7's >= share, and ours' wall time vs budget.

Conventions (they are printed in the report too):

* primary metric: binary ROC-AUC (higher is better), multiclass log loss, regression RMSE (lower).
* tie: |diff| <= 1e-4 absolute for ROC-AUC and log loss; |diff| <= 1e-4 x |peer| for RMSE.
* a failed cell (crash, hard kill) is worse than any score; two failed cells tie. A cell not run yet
  leaves its (table, seed) pair out of every comparison that needs it.
* ranks: within each (table, seed) pair, rank = 1 + (arms better) + (arms tied) / 2, i.e. 1 = best and
  a tie group shares its average rank (tie tolerance as above).
* paired test: Wilcoxon signed-rank on the per-pair relative difference
  ``(ours - peer) / |peer|``, sign flipped for lower-is-better metrics, so + means ours is better;
  zero differences dropped (``zero_method="wilcox"``); the one-sided p is for "ours is worse".
* wall-time target (issue 7, item 3): wall <= budget + max(3 s, 5 % of budget).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

PRIMARY = {"binary_classification": ("roc_auc", True), "multiclass_classification": ("log_loss", False),
           "regression": ("rmse", False)}
TIE_ABS, TIE_REL = 1e-4, 1e-4
PEERS = ("lgbm_defaults", "optuna", "flaml_lgbm", "flaml")
TARGET_PEERS = ("optuna", "flaml_lgbm")  # issue 7: ours >= these on >= 80 % of pairs

Cells = dict[tuple[float, str, int, str], dict[str, Any]]  # (budget, table, seed, arm) -> record


def is_ours(arm: str) -> bool:
    """ours, ours_defaults, ours-auto and the variants ours:NAME."""
    return arm.startswith("ours")


def value(rec: dict[str, Any] | None, pt: str) -> float | None:
    """The primary test score of a finished cell; None if it failed."""
    if rec is None or not rec.get("ok"):
        return None
    v = (rec.get("test") or {}).get(PRIMARY[pt][0])
    return float(v) if v is not None and math.isfinite(float(v)) else None


def compare(a: float | None, b: float | None, pt: str) -> int:
    """+1 if a is better than b, 0 for a tie (tolerance above), -1 if worse; None (failed) is worst."""
    if a is None or b is None:
        return 0 if a is None and b is None else (-1 if a is None else 1)
    metric, higher = PRIMARY[pt]
    tol = TIE_REL * abs(b) if metric == "rmse" else TIE_ABS
    if abs(a - b) <= tol:
        return 0
    return 1 if (a > b) == higher else -1


def _pairs(cells: Cells, budget: float, tables: Iterable[tuple[str, str]], seeds: list[int], arms: list[str]):
    """(table, pt, seed, {arm: record}) for the pairs where every arm has a record (finished or failed)."""
    for name, pt in tables:
        for seed in seeds:
            recs = {a: cells.get((budget, name, seed, a)) for a in arms}
            if all(r is not None for r in recs.values()):
                yield name, pt, seed, recs


def win_tie_loss(cells: Cells, budget: float, tables: list[tuple[str, str]], seeds: list[int], arm: str,
                 peer: str) -> dict[str, int]:
    out = {"win": 0, "tie": 0, "loss": 0, "arm_failed": 0, "peer_failed": 0}
    for _, pt, _, recs in _pairs(cells, budget, tables, seeds, [arm, peer]):
        a, b = value(recs[arm], pt), value(recs[peer], pt)
        out["arm_failed"] += a is None
        out["peer_failed"] += b is None
        out[{1: "win", 0: "tie", -1: "loss"}[compare(a, b, pt)]] += 1
    out["n"] = out["win"] + out["tie"] + out["loss"]
    return out


def mean_ranks(cells: Cells, budget: float, tables: list[tuple[str, str]], seeds: list[int],
               arms: list[str]) -> dict[str, Any]:
    """Mean rank of each arm over the pairs where all of ``arms`` have a record (1 = best)."""
    sums = dict.fromkeys(arms, 0.0)
    n = 0
    for _, pt, _, recs in _pairs(cells, budget, tables, seeds, arms):
        vals = [value(recs[a], pt) for a in arms]
        # rank i = 1 + (arms strictly better) + (arms tied, counted half): the average rank of a tie group
        for i, a in enumerate(arms):
            better = sum(compare(vals[j], vals[i], pt) > 0 for j in range(len(arms)) if j != i)
            ties = sum(compare(vals[j], vals[i], pt) == 0 for j in range(len(arms)) if j != i)
            sums[a] += 1 + better + ties / 2
        n += 1
    return {"n_pairs": n, "mean_rank": {a: (sums[a] / n if n else None) for a in arms}}


def rel_diff(a: float | None, b: float | None, pt: str) -> float | None:
    """(a - b) / |b|, + when a is better; None when either failed."""
    if a is None or b is None or b == 0:
        return None
    return (a - b) / abs(b) * (1 if PRIMARY[pt][1] else -1)


def paired_test(cells: Cells, budget: float, tables: list[tuple[str, str]], seeds: list[int], arm: str,
                peer: str) -> dict[str, Any]:
    """Wilcoxon signed-rank of the per-pair relative differences, plus per-table sign counts."""
    from scipy.stats import wilcoxon

    diffs: list[float] = []
    per_table: dict[str, dict[str, Any]] = {}
    n_failed = 0
    for name, pt, _, recs in _pairs(cells, budget, tables, seeds, [arm, peer]):
        a, b = value(recs[arm], pt), value(recs[peer], pt)
        t = per_table.setdefault(name, {"better": 0, "tie": 0, "worse": 0, "rel_diffs": []})
        t[{1: "better", 0: "tie", -1: "worse"}[compare(a, b, pt)]] += 1
        d = rel_diff(a, b, pt)
        if d is None:
            n_failed += 1
            continue
        diffs.append(d)
        t["rel_diffs"].append(d)
    for t in per_table.values():
        t["mean_rel_diff"] = float(np.mean(t.pop("rel_diffs"))) if t.get("rel_diffs") else None
    out: dict[str, Any] = {"n": len(diffs), "n_failed_pairs": n_failed, "per_table": per_table,
                           "test": "Wilcoxon signed-rank (zero_method='wilcox') on (ours - peer)/|peer|, "
                                   "+ = ours better"}
    if diffs:
        out["median_rel_diff"], out["mean_rel_diff"] = float(np.median(diffs)), float(np.mean(diffs))
    nonzero = [d for d in diffs if d != 0]
    if len(nonzero) >= 2:
        two = wilcoxon(diffs, zero_method="wilcox", alternative="two-sided")
        less = wilcoxon(diffs, zero_method="wilcox", alternative="less")
        out.update(statistic=float(two.statistic), p_two_sided=float(two.pvalue), p_ours_worse=float(less.pvalue))
    return out


def share_at_least(cells: Cells, budget: float, tables: list[tuple[str, str]], seeds: list[int], arm: str,
                   peers: Iterable[str]) -> dict[str, Any]:
    """Share of pairs where ``arm`` >= every one of ``peers`` (ties count as >=)."""
    peers = list(peers)
    n = k = 0
    for _, pt, _, recs in _pairs(cells, budget, tables, seeds, [arm, *peers]):
        n += 1
        k += all(compare(value(recs[arm], pt), value(recs[p], pt), pt) >= 0 for p in peers)
    return {"n": n, "k": k, "share": (k / n if n else None)}


def wall_stats(cells: Cells, budget: float, tables: list[tuple[str, str]], seeds: list[int],
               arm: str) -> dict[str, Any]:
    walls = [r["wall_s"] for (b, name, s, a), r in cells.items()
             if b == budget and a == arm and r.get("wall_s") is not None and not r.get("timed_out")
             and any(name == t for t, _ in tables) and s in seeds]
    if not walls:
        return {"n": 0}
    tol = max(3.0, 0.05 * budget)
    over = [w - budget for w in walls]
    return {"n": len(walls), "median_s": float(np.median(walls)), "max_s": float(max(walls)),
            "max_overshoot_s": float(max(over)), "tolerance_s": tol,
            "n_within": int(sum(o <= tol for o in over)), "all_within": all(o <= tol for o in over)}


def budget_report(cells: Cells, budget: float, tables: list[tuple[str, str]], seeds: list[int],
                  arms: list[str]) -> dict[str, Any]:
    """Every figure of one budget (see the module docstring)."""
    ours_like = [a for a in arms if is_ours(a)]
    peers = [p for p in PEERS if p in arms]
    core = [a for a in ("ours", *peers) if a in arms]
    rep: dict[str, Any] = {"budget": budget, "arms": arms}
    rep["win_tie_loss"] = {a: {p: win_tie_loss(cells, budget, tables, seeds, a, p) for p in peers} for a in ours_like}
    rep["vs_ours"] = {a: win_tie_loss(cells, budget, tables, seeds, a, "ours")
                      for a in ours_like if a not in ("ours", "ours_defaults") and "ours" in arms}
    rep["mean_ranks"] = mean_ranks(cells, budget, tables, seeds, core)
    rep["mean_ranks_in_place_of_ours"] = {
        a: mean_ranks(cells, budget, tables, seeds, [a, *peers]) for a in ours_like if a != "ours"}
    if "lgbm_defaults" in arms:
        rep["paired_vs_lgbm_defaults"] = {a: paired_test(cells, budget, tables, seeds, a, "lgbm_defaults")
                                          for a in ours_like}
    targets = [p for p in TARGET_PEERS if p in arms]
    rep["share_at_least"] = {
        a: {**{p: share_at_least(cells, budget, tables, seeds, a, [p]) for p in targets},
            **({"+".join(targets): share_at_least(cells, budget, tables, seeds, a, targets)} if len(targets) > 1 else {})}
        for a in ours_like}
    rep["wall"] = {a: wall_stats(cells, budget, tables, seeds, a) for a in arms if a != "ours_defaults"}
    rows = []
    for name, pt in tables:
        for seed in seeds:
            row: dict[str, Any] = {"table": name, "seed": seed, "metric": PRIMARY[pt][0]}
            for a in arms:
                r = cells.get((budget, name, seed, a))
                row[a] = None if r is None else (value(r, pt) if r.get("ok") else "FAILED")
            ours = cells.get((budget, name, seed, "ours"))
            if ours is not None:
                run = ours.get("run") or {}
                hpo = run.get("hpo") or {}
                row["ours_wall_s"] = ours.get("wall_s")
                row["ours_run"] = {"scheme": hpo.get("scheme") or run.get("scheme"), "n_trials": hpo.get("n_trials"),
                                   "best_val": hpo.get("best_value"), "hpo_s": hpo.get("duration_s"),
                                   "budget_flag": ours.get("budget_flag")}
            rows.append(row)
    rep["pairs"] = rows
    return rep


# ------------------------------------------------------------------------------------------ markdown
def fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    a = abs(v)
    return f"{v:,.0f}" if a >= 10000 else f"{v:,.1f}" if a >= 1000 else f"{v:.3f}" if a >= 10 else f"{v:.4f}"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.0f} %"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows]


def budget_markdown(rep: dict[str, Any], pts: dict[str, str]) -> list[str]:
    B, arms = rep["budget"], rep["arms"]
    out = [f"## Budget {B:g} s", ""]
    wtl = rep["win_tie_loss"]
    if wtl:
        peers = [p for p in PEERS if p in arms]
        share_keys = sorted({k for v in rep["share_at_least"].values() for k in v})
        rows = []
        for a, per in wtl.items():
            cells = [f"{c['win']}/{c['tie']}/{c['loss']}" + (f" ({c['arm_failed']} failed)" if c["arm_failed"] else "")
                     for c in (per[p] for p in peers)]
            shares = [f"{_pct(rep['share_at_least'][a][k]['share'])} ({rep['share_at_least'][a][k]['k']}/"
                      f"{rep['share_at_least'][a][k]['n']})" for k in share_keys]
            rows.append([f"**{a}**", *cells, *shares])
        out += ["Win/tie/loss of each ours arm against each peer over the (table, seed) pairs, and the share of "
                "pairs where it is >= the peer(s) (issue 7's target: >= 80 %):", ""]
        out += _table(["arm", *[f"vs {p}" for p in peers], *[f">= {k}" for k in share_keys]], rows) + [""]
    for a, c in (rep.get("vs_ours") or {}).items():
        if c["n"]:
            out += [f"{a} against ours on the same pairs (win/tie/loss): {c['win']}/{c['tie']}/{c['loss']}"
                    + (f" ({c['arm_failed']} {a} cells failed)" if c["arm_failed"] else "") + ".", ""]
    mr = rep["mean_ranks"]
    if mr["n_pairs"]:
        ranks = sorted(mr["mean_rank"].items(), key=lambda kv: kv[1])
        out += [f"Mean rank over {mr['n_pairs']} pairs (1 = best of {len(ranks)}): "
                + ", ".join(f"{a} **{r:.2f}**" if i == 0 else f"{a} {r:.2f}" for i, (a, r) in enumerate(ranks)) + "."]
        for a, m in rep["mean_ranks_in_place_of_ours"].items():
            if m["n_pairs"]:
                out.append(f"In place of ours, {a} would rank {m['mean_rank'][a]:.2f} ({m['n_pairs']} pairs).")
        out.append("")
    for a, t in (rep.get("paired_vs_lgbm_defaults") or {}).items():
        if "p_two_sided" in t:
            line = (f"{a} vs lgbm_defaults, paired: Wilcoxon signed-rank on the relative difference (+ = {a} better), "
                    f"n = {t['n']}, median {100 * t['median_rel_diff']:+.2f} %, mean {100 * t['mean_rel_diff']:+.2f} %, "
                    f"p two-sided = {t['p_two_sided']:.3g}, p({a} worse) = {t['p_ours_worse']:.3g}")
        else:
            line = f"{a} vs lgbm_defaults, paired: too few non-zero differences for a test (n = {t['n']})"
        signs = "; ".join(f"{name} {s['better']}/{s['tie']}/{s['worse']}" for name, s in t["per_table"].items())
        out += [line + (f" ({t['n_failed_pairs']} pairs with a failed cell left out)." if t["n_failed_pairs"] else "."),
                f"Per table, seeds where {a} is better/tie/worse than lgbm_defaults: {signs}.", ""]
    wall_rows = []
    for a, w in rep["wall"].items():
        if w.get("n"):
            wall_rows.append([a, f"{w['median_s']:.1f}", f"{w['max_s']:.1f}", f"{w['max_overshoot_s']:+.1f}",
                              f"{w['n_within']}/{w['n']}"])
    if wall_rows:
        tol = max(3.0, 0.05 * B)
        out += ["Wall time per cell (s; ours: the whole `hpo train` command; peers: their fit; killed cells left out):",
                ""] + _table(["arm", "median", "max", "max over budget", f"within budget + {tol:g} s"], wall_rows) + [""]
    core = [a for a in arms if a in ("ours", *PEERS)]
    extra = [a for a in arms if a not in core]
    header = ["table", "seed", "metric", *core, *extra, "ours wall s", "ours: scheme, trials, best val, HPO s"]
    rows = []
    for row in rep["pairs"]:
        pt = pts[row["table"]]
        vals = {a: row.get(a) for a in core}
        best = [a for a, v in vals.items() if isinstance(v, float)
                and all(compare(v, w if isinstance(w, float) else None, pt) >= 0 for w in vals.values())]
        cells = [f"**{fmt(row.get(a))}**" if a in best else fmt(row.get(a)) for a in core]
        run = row.get("ours_run") or {}
        hpo_s = run.get("hpo_s")
        run_s = (f"{run.get('scheme') or '-'}, {run.get('n_trials') or '-'}, {fmt(run.get('best_val'))}, "
                 f"{'-' if hpo_s is None else f'{float(hpo_s):.1f}'}") if run else "-"
        wall = row.get("ours_wall_s")
        arrow = "↑" if PRIMARY[pt][1] else "↓"
        rows.append([row["table"], str(row["seed"]), f"{row['metric']} {arrow}", *cells,
                     *[fmt(row.get(a)) for a in extra], "-" if wall is None else f"{wall:.1f}", run_s])
    out += ["Test score per (table, seed) (bold: best of the core arms within the tie tolerance; - = not run):", ""]
    out += _table(header, rows) + [""]
    return out


def failures_markdown(failures: list[dict[str, Any]]) -> list[str]:
    if not failures:
        return ["## Failed cells", "", "None.", ""]
    rows = [[f["table"], str(f["seed"]), f"{f['budget']:g}", f["arm"], ("killed: " if f.get("timed_out") else "")
             + str(f.get("error") or "")[:300].replace("|", "/").replace("\n", " ")] for f in failures]
    return ["## Failed cells", ""] + _table(["table", "seed", "budget", "arm", "error"], rows) + [""]


def markdown(meta: dict[str, Any], facts: list[dict[str, Any]], budgets: dict[str, dict[str, Any]],
             failures: list[dict[str, Any]], pts: dict[str, str]) -> str:
    """The whole report: header (command, date, machine, product), tables, one section per budget, failures."""
    load = meta.get("loadavg_1m_at_cell_end")
    lines = ["# bench_real: `hpo train` vs LightGBM defaults, plain Optuna and FLAML on real tables", ""]
    if meta["note"]:
        lines += [meta["note"], ""]
    trees: dict[tuple[str, str | None], list[str]] = {}
    for p in meta["ours_products"]:
        trees.setdefault((p.get("tree", "?"), p.get("dirty_digest")), []).append(p["commit"][:12])
    prods = "; ".join(f"product tree `{tree}`" + (f" + uncommitted changes `{dirty}`" if dirty else "")
                      + f" (commit{'s' if len(c) > 1 else ''} {', '.join(f'`{x}`' for x in c)})"
                      for (tree, dirty), c in trees.items()) or "-"
    lines += [f"- command: `{meta['command']}`"
              + ("" if meta["cells_run_by"] in ([], [meta["command"]]) else "; cells run by (where recorded): " + ", ".join(f"`{c}`" for c in meta["cells_run_by"])),
              f"- date: {meta['date'][:10]}; machine: nproc {meta['nproc']} "
              f"({meta['cpu']}), {'/'.join(map(str, meta['jobs'])) or '-'} cell(s) at a time, each pinned to one core"
              + (f"; 1-min load average at the end of a cell: median {load['median']:.1f}, max {load['max']:.1f}"
                 f" over {load['n']} of {meta['n_cells']} cells (other work shares the machine)" if load else ""),
              f"- the ours cells ran {prods} (the tree digests src/, database/, pyproject.toml); budget flag: "
              f"`{meta['budget_flag']}`"
              + ("" if meta["auto_accepted"] else "; `--algorithm auto` not accepted by this CLI (no ours-auto arm)"),
              f"- bench commit `{meta['bench_commit']}`; lightgbm {meta['versions']['lightgbm']}, "
              f"optuna {meta['versions']['optuna']}, flaml {meta['versions']['flaml']}",
              "- protocol: per (table, seed) one 80/20 dev/test split (stratified for classification); every arm "
              "sees dev.csv only, scored on the same raw test rows; the ours arms run `hpo train` end to end "
              "(embedded PostgreSQL, local MLflow) and their saved artifact predicts the raw test rows; "
              "cells killed at 3 x budget + 60 s count as failed; a failed cell is worse than any score",
              f"- tie: |diff| <= {TIE_ABS:g} for ROC-AUC and log loss, <= {TIE_REL:g} "
              "x |peer| for RMSE. ours_defaults is the defaults model ours reports (a diagnostic, not an arm)", ""]
    lines += ["## Tables", ""] + _table(
        ["table", "rows", "features (string, with NaN)", "problem", "target", "note"],
        [[f["table"], str(f["rows"]), f"{f['features']} ({f['string_columns']}, {f['columns_with_nan']})",
          f["problem_type"].replace("_classification", ""), f["target"], f.get("note", "")] for f in facts]) + [""]
    for rep in budgets.values():
        lines += budget_markdown(rep, pts)
    lines += failures_markdown(failures)
    return "\n".join(lines) + "\n"
