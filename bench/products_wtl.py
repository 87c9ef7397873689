"""Win/tie/loss between cells of bench_real run by different products (or arms), per (table, seed), with
bench_real's tie tolerance (bench/real_report.py's ``compare``), and a sign test.

    .venv/bin/python bench/products_wtl.py ARM@TREE ARM@TREE [ARM@TREE ...] [--budget 60] [--cells FILE]

``ARM@TREE``: an arm of bench_real (``ours``, ``ours-auto``, ``flaml``, ...) and the first characters of
the product tree its cells ran (``ours-auto@8d7e3b6e``); a peer arm needs no tree (``flaml``). The first
one is compared with each of the others; where a pair has several cells of one product, the last counts.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from real_report import compare


def _cells(path: Path, budget: float) -> dict[tuple[str, str], dict[tuple[str, int], dict]]:
    out: dict[tuple[str, str], dict[tuple[str, int], dict]] = {}
    for line in path.read_text().splitlines():
        c = json.loads(line)
        if c.get("budget") != budget:
            continue
        tree = ((c.get("product") or {}).get("tree") or "")
        for key in ((c["arm"], tree), (c["arm"], "")):
            out.setdefault(key, {})[(c["table"], c["seed"])] = c
    return out


def _value(cell: dict | None) -> float | None:
    if cell is None or not cell.get("ok"):
        return None
    test = cell.get("test")
    return test.get(cell["metric"]) if isinstance(test, dict) else test


def _sign_p(wins: int, losses: int) -> float:
    n = wins + losses
    if n == 0:
        return 1.0
    k = min(wins, losses)
    return min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("arms", nargs="+")
    ap.add_argument("--budget", type=float, default=60.0)
    ap.add_argument("--cells", type=Path, default=Path(__file__).parent / "results-real" / "cells.jsonl")
    args = ap.parse_args()
    cells = _cells(args.cells, args.budget)

    def select(spec: str) -> dict[tuple[str, int], dict]:
        arm, _, tree = spec.partition("@")
        found = [v for (a, t), v in cells.items() if a == arm and t.startswith(tree) and (tree or t == "")]
        if not found:
            raise SystemExit(f"no cells of {spec!r} at budget {args.budget:g}")
        return found[0]

    first = select(args.arms[0])
    for spec in args.arms[1:]:
        other = select(spec)
        pairs = sorted(set(first) & set(other))
        res = {1: 0, 0: 0, -1: 0}
        for pair in pairs:
            cell = first[pair]
            res[compare(_value(cell), _value(other[pair]), cell["problem_type"])] += 1
        print(f"{args.arms[0]} vs {spec}: {res[1]}/{res[0]}/{res[-1]} (win/tie/loss over {len(pairs)} pairs; "
              f">= on {100 * (res[1] + res[0]) / max(1, len(pairs)):.0f} %; sign test p = {_sign_p(res[1], res[-1]):.2g})")


if __name__ == "__main__":
    main()
