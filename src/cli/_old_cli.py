"""``hpo``: the command line (composition root: the only place, with tests, that builds adapters).

    hpo train --dataset breast_cancer [--n-trials 50]        whole graph: load, split, tune, train, test, register
    hpo train --data FILE.csv --target COL [...]
    hpo tune  --dataset breast_cancer [...]                  HPO only (train/validation), prints the best params
    hpo studies [--limit N]                                  study history from PostgreSQL
    hpo db migrate | hpo db status                           schema migrations

Exit codes: 0 success, 2 bad input (the reason is printed), 1 failure at run time.
PostgreSQL: ``DATABASE_URL`` or an embedded server under ``HPO_HOME`` (default ./.hpo).
MLflow: ``MLFLOW_TRACKING_URI`` or a SQLite store under ``HPO_HOME``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import sys
import time
import uuid
import warnings
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT = 0, 1, 2


class BadInput(Exception):
    """Raised for user errors (exit code 2)."""


# ---------------------------------------------------------------------------------------------
# argument parsing
# ---------------------------------------------------------------------------------------------
def _add_data_args(p: argparse.ArgumentParser) -> None:
    src = p.add_argument_group("data (one of)")
    src.add_argument("--data", help="CSV or Parquet file")
    src.add_argument("--dataset", help="bundled scikit-learn dataset: breast_cancer, iris, wine, diabetes, digits")
    p.add_argument("--target", help="target column (required with --data unless a 'target'/'label' column exists)")
    p.add_argument("--problem", help="binary_classification | multiclass_classification | regression (inferred)")
    p.add_argument("--time-column", help="split by time: oldest rows train, newest test")


def _add_tuning_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--algorithm", default="lightgbm", help="model family (default lightgbm)")
    p.add_argument("--metric", help="metric to optimize (default by problem: roc_auc, log_loss, rmse)")
    p.add_argument("--n-trials", type=int, default=None,
                   help="trials in the study (default 50; with --timeout and no --n-trials: as many as fit)")
    p.add_argument("--timeout", type=float, help="seconds for the study alone (loading and final fits come on top)")
    p.add_argument("--trial-timeout", type=float, help="per-trial limit in seconds (trials run in worker processes)")
    p.add_argument("--scheme", default="auto",
                   help="how trials are scored: auto (default: chosen from the data, printed), holdout, cv, "
                        "cv=K, cv=KxR (K folds of train+validation, R shuffles), timeseries[-cv=K]")
    p.add_argument("--cv", type=int, help="shorthand for --scheme cv=K")
    p.add_argument("--sampler", default="tpe")
    p.add_argument("--pruner", default="median")
    p.add_argument("--n-jobs", type=int, default=1, help="trials in parallel")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--study-name", help="name of the Optuna study (a named study resumes)")
    p.add_argument("--search-space", help="JSON file with a search space (replaces the family default)")
    p.add_argument("--no-db", action="store_true", help="no PostgreSQL: in-memory study, no history, no resume")
    p.add_argument("--no-mlflow", action="store_true", help="no MLflow tracking")
    p.add_argument("--output-json", help="write the run summary as JSON to this path")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hpo", description="Hyperparameter optimization for model-trainer agents")
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="run the whole model-trainer graph")
    _add_data_args(train)
    _add_tuning_args(train)
    train.add_argument("--thread-id", help="graph thread id; give the id of an interrupted run to resume it")
    train.add_argument("--no-tuning", action="store_true", help="train with the model defaults only")
    train.add_argument("--time-budget", type=float,
                       help="seconds for the whole run, from the command's start to the saved model "
                            "(the study gets what remains after the final fits)")
    train.add_argument("--refit", choices=["all", "train+val", "train"], default="all",
                       help="rows the deployed model is fitted on (default all: after the test split is scored, "
                            "the model is refit on every row)")
    train.add_argument("--test-size", type=float, default=0.2)
    train.add_argument("--val-size", type=float, default=0.2)
    tune = sub.add_parser("tune", help="hyperparameter search only (train/validation split)")
    _add_data_args(tune)
    _add_tuning_args(tune)
    studies = sub.add_parser("studies", help="list studies from the history database")
    studies.add_argument("--limit", type=int, default=20)
    db = sub.add_parser("db", help="database administration")
    db.add_argument("action", choices=["migrate", "status"])
    return parser


# ---------------------------------------------------------------------------------------------
# adapters
# ---------------------------------------------------------------------------------------------
def _process_start() -> float:
    """Epoch seconds at which this process started (a whole-run time budget counts from there,
    imports included); the current time when the platform cannot say."""
    try:
        import psutil

        return float(psutil.Process().create_time())
    except Exception:  # noqa: BLE001 - psutil missing or the platform refuses: count from now
        return time.time()


def _hpo_home() -> Path:
    home = Path(os.environ.get("HPO_HOME", ".hpo")).resolve()
    home.mkdir(parents=True, exist_ok=True)
    return home


@contextlib.asynccontextmanager
async def _database(enabled: bool, *, apply_migrations: bool = True) -> AsyncIterator[tuple[Any, str | None]]:
    """(Database, dsn) with migrations applied, or (None, None) when disabled."""
    if not enabled:
        yield None, None
        return
    from .persistence import create_pool, migrate, resolve_database_url

    env = dict(os.environ)
    env.setdefault("HPO_HOME", str(_hpo_home()))
    dsn = await asyncio.to_thread(resolve_database_url, env)
    db = await create_pool(dsn, min_size=1, max_size=4)
    try:
        if apply_migrations:
            applied = await migrate(db)
            if applied:
                print(f"  applied migrations: {applied}", file=sys.stderr)
        yield db, dsn
    finally:
        await db.close()


def _tracker(enabled: bool, home: Path) -> Any:
    if not enabled:
        return None
    from .tracking import MLflowTracker, resolve_tracking_uri

    return MLflowTracker(resolve_tracking_uri(hpo_home=home), experiment_name="hpo")


class _Progress:
    """A one-line progress bar on stderr fed by per-trial events."""

    def __init__(self, total: int | None, enabled: bool) -> None:
        self.total, self.enabled, self.t0 = total, enabled, time.monotonic()
        self.tty = sys.stderr.isatty()

    def update(self, event: dict[str, Any]) -> None:
        if not self.enabled:
            return
        done = event.get("n_done") or (event.get("number", 0) + 1)
        total = event.get("n_trials") or self.total or 0
        if not self.tty and total and done % max(1, total // 10) and done != total:
            return  # in a log file: about ten lines per study, not one per trial
        width = 28
        filled = int(width * min(done, total) / total) if total else 0
        best = event.get("best_value")
        best_s = f"{best:.5f}" if isinstance(best, (int, float)) else "-"
        line = (f"{chr(13) if self.tty else ''}  tuning [{'#' * filled}{'.' * (width - filled)}] {done}/{total} "
                f"best={best_s} last={event.get('state', '?')} {time.monotonic() - self.t0:5.1f}s")
        sys.stderr.write(line if self.tty else line + "\n")
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled and self.tty:
            sys.stderr.write("\n")
            sys.stderr.flush()


# ---------------------------------------------------------------------------------------------
# commands
# ---------------------------------------------------------------------------------------------
def _load_space(path: str | None) -> dict[str, Any] | None:
    if not path:
        return None
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise BadInput(f"--search-space {path!r}: cannot read a JSON search space: {e}") from e


def _check_data_args(args: argparse.Namespace) -> None:
    if bool(args.data) == bool(args.dataset):
        raise BadInput("give exactly one of --data FILE or --dataset NAME")


async def cmd_train(args: argparse.Namespace) -> dict[str, Any]:
    from langgraph.checkpoint.memory import InMemorySaver

    from src.agents.ml_foundation.model_trainer import ModelTrainerContext, build_model_trainer_graph

    _check_data_args(args)
    home = _hpo_home()
    inputs: dict[str, Any] = {
        "data_path": str(Path(args.data).resolve()) if args.data else None, "dataset_name": args.dataset,
        "target": args.target, "problem_type": args.problem, "time_column": args.time_column,
        "algorithm": args.algorithm, "metric": args.metric, "n_trials": args.n_trials, "timeout": args.timeout,
        "sampler": args.sampler, "pruner": args.pruner, "search_space": _load_space(args.search_space),
        "cv": args.cv, "scheme": args.scheme, "time_budget": args.time_budget, "n_jobs": args.n_jobs, "trial_timeout": args.trial_timeout,
        "tuning_enabled": not args.no_tuning, "seed": args.seed, "test_size": args.test_size,
        "val_size": args.val_size, "study_name": args.study_name, "refit": args.refit,
    }
    inputs = {k: v for k, v in inputs.items() if v is not None}
    inputs["n_trials"] = args.n_trials  # None (with --timeout): the time budget alone bounds the study
    thread_id = args.thread_id or uuid.uuid4().hex[:12]
    config = {"configurable": {"thread_id": thread_id}}
    progress = _Progress(args.n_trials, enabled=not args.quiet)
    async with _database(not args.no_db) as (db, dsn), _checkpointer(db, dsn) as saver:
        listeners = []
        if db is not None:
            from .persistence import HistoryRecorder, PostgresHistoryRepository

            listeners.append(HistoryRecorder(PostgresHistoryRepository(db)))
        tracker = _tracker(not args.no_mlflow, home)
        graph = build_model_trainer_graph(checkpointer=saver or InMemorySaver())
        context = ModelTrainerContext(hpo_home=home, optuna_storage=dsn, listeners=listeners, tracker=tracker,
                                      started_at=_process_start())
        snapshot = await graph.aget_state(config)
        resume = bool(snapshot.next) if snapshot is not None else False
        if args.thread_id and not resume and snapshot is not None and snapshot.values.get("status"):
            raise BadInput(f"thread {thread_id!r} already finished with status {snapshot.values['status']!r}")
        final: dict[str, Any] = {}
        timings: dict[str, float] = {}
        try:
            # durability="sync": every checkpoint is on disk before the next node starts, so a
            # killed run resumes from the node it was in (the tuner then continues its study).
            timings["startup"] = round(time.time() - context.started_at, 2)
            mark = time.time()
            async for mode, chunk in graph.astream(None if resume else inputs, config, context=context,
                                                   stream_mode=["custom", "values", "updates"], durability="sync"):
                if mode == "custom" and isinstance(chunk, dict) and chunk.get("event") == "trial":
                    progress.update(chunk)
                elif mode == "values":
                    final = chunk
                elif mode == "updates" and isinstance(chunk, dict):
                    now = time.time()
                    for node in chunk:
                        timings[node] = round(timings.get(node, 0.0) + now - mark, 2)
                    mark = now
        finally:
            progress.close()
            closing = time.time()
            for listener in listeners:
                await listener.aclose()
            if tracker is not None:
                await tracker.aclose()
            timings["close"] = round(time.time() - closing, 2)
    final = dict(final)
    timings["total"] = round(time.time() - context.started_at, 2)
    final["timings"] = timings
    final["thread_id"] = thread_id
    return final


@contextlib.asynccontextmanager
async def _checkpointer(db: Any, dsn: str | None) -> AsyncIterator[Any]:
    """The LangGraph PostgreSQL checkpointer in the same database (set up under an advisory lock)."""
    if db is None or dsn is None:
        yield None
        return
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

    async with AsyncPostgresSaver.from_conn_string(dsn) as saver:
        async with db.acquire() as con:
            await con.execute("SELECT pg_advisory_lock(hashtext('hpo.langgraph_checkpoint_setup'))")
            try:
                await saver.setup()
            finally:
                await con.execute("SELECT pg_advisory_unlock(hashtext('hpo.langgraph_checkpoint_setup'))")
        yield saver


async def cmd_tune(args: argparse.Namespace) -> dict[str, Any]:
    from .datasets import load_dataset
    from .features import prepare_features
    from .splits import split_dataset
    from .optuna_optimizer import run_hyperparameter_optimization

    _check_data_args(args)
    home = _hpo_home()
    loaded = load_dataset(args.data or args.dataset, target=args.target)
    prepared = prepare_features(loaded.frame, loaded.target, problem_type=args.problem, time_column=args.time_column)
    splits = split_dataset(prepared.X, prepared.y, seed=args.seed, problem_type=prepared.problem_type,
                           time_column=prepared.time_column, rare_classes="train")
    from .problems import CLASSIFICATION
    from .schemes import resolve_scheme, tuning_frames

    try:
        scheme = resolve_scheme(scheme=args.scheme, cv=args.cv, y_train=splits.y_train, y_val=splits.y_val,
                                n_features=splits.X_train.shape[1],
                                classification=prepared.problem_type in CLASSIFICATION,
                                time_ordered=prepared.time_column is not None, time_budget=args.timeout)
    except ValueError as e:
        raise BadInput(str(e)) from e
    X_tr, y_tr, X_va, y_va = tuning_frames(splits.X_train, splits.y_train, splits.X_val, splits.y_val, scheme)
    progress = _Progress(args.n_trials, enabled=not args.quiet)
    n_done = 0

    def on_trial(study: Any, trial: Any) -> None:
        nonlocal n_done
        n_done += 1
        best = None
        with contextlib.suppress(ValueError):
            best = study.best_value
        progress.update({"n_done": n_done, "n_trials": args.n_trials, "state": trial.state.name, "best_value": best})

    async with _database(not args.no_db) as (db, dsn):
        listeners: list[Any] = []
        if db is not None:
            from .persistence import HistoryRecorder, PostgresHistoryRepository

            listeners.append(HistoryRecorder(PostgresHistoryRepository(db)))
        tracker = _tracker(not args.no_mlflow, home)
        if tracker is not None:
            listeners.append(tracker)
        try:
            result = await run_hyperparameter_optimization(
                args.algorithm, prepared.problem_type, X_tr, y_tr, X_va, y_va,
                metric=args.metric, n_trials=args.n_trials, timeout=args.timeout, sampler=args.sampler,
                pruner=args.pruner, search_space=_load_space(args.search_space), seed=args.seed,
                **scheme.objective_options(),
                study_name=args.study_name, storage=dsn, n_jobs=args.n_jobs, trial_timeout=args.trial_timeout,
                listeners=listeners, callbacks=[on_trial],
            )
        finally:
            progress.close()
            for listener in listeners:
                await listener.aclose()
    out = result.to_dict()
    out["status"] = "completed"
    out["scheme"] = scheme.label
    out["scheme_reason"] = scheme.reason
    out["dropped_columns"] = prepared.dropped_columns
    return out


async def cmd_studies(args: argparse.Namespace) -> dict[str, Any]:
    from .persistence import PostgresHistoryRepository

    async with _database(True) as (db, _):
        studies = await PostgresHistoryRepository(db).list_studies(limit=args.limit)
    rows = [s.to_dict() if hasattr(s, "to_dict") else dict(s.__dict__) for s in studies]
    for r in rows:
        print(f"{str(r.get('study_name')):50s} {_fmt(r.get('algorithm')):22s} {_fmt(r.get('status')):10s} "
              f"complete={_fmt(r.get('n_completed'))} budget={_fmt(r.get('n_trials'))} best={_fmt(r.get('best_value'))}")
    return {"studies": rows, "status": "completed"}


async def cmd_db(args: argparse.Namespace) -> dict[str, Any]:
    from .persistence import migration_status

    async with _database(True, apply_migrations=args.action == "migrate") as (db, _):
        status = await migration_status(db)
    for s in status:
        if s.applied_at is None:
            state = "pending"
        else:
            state = f"applied {s.applied_at:%Y-%m-%d %H:%M:%S}" + ("" if s.checksum_ok else " (FILE CHANGED SINCE)")
        print(f"  {s.version:03d} {s.filename:40s} {state}")
    return {"status": "completed"}


# ---------------------------------------------------------------------------------------------
# output
# ---------------------------------------------------------------------------------------------
def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4f}"
    return "-" if v is None else str(v)


def print_summary(out: dict[str, Any]) -> None:
    hpo = out.get("hpo") or {}
    metric = hpo.get("metric") or out.get("metric")
    print()
    print(f"  run {out.get('run_id', '-')} (thread {out.get('thread_id', '-')}): {out.get('status')}")
    if out.get("dropped_columns"):
        print(f"  dropped columns: {', '.join(f'{k} ({v})' for k, v in out['dropped_columns'].items())}")
    if out.get("split_sizes"):
        print(f"  rows: {out['split_sizes']}")
    if hpo:
        reasons = list((hpo.get("failure_reasons") or {}).values())
        stopped = sum(1 for r in reasons if r == "deadline")
        failed = (hpo.get("n_failed") or 0) - stopped
        print(f"  study {hpo.get('study_name')}: {hpo.get('n_completed')} complete, {hpo.get('n_pruned')} pruned, "
              f"{failed} failed{f', {stopped} stopped at the timeout' if stopped else ''} "
              f"in {float(hpo.get('duration_s') or 0):.1f} s")
        for reason in sorted({r for r in reasons if r != "deadline"})[:3]:
            print(f"    failure: {reason[:160]}")
        if hpo.get("scheme"):
            reason = f": {hpo['scheme_reason']}" if hpo.get("scheme_reason") else ""
            print(f"  scheme {hpo['scheme']}{reason}")
    tm, dm = out.get("test_metrics") or {}, out.get("defaults_test_metrics") or {}
    if tm or hpo:
        rows = []
        if hpo.get("best_value") is not None:
            rows.append((f"val {metric}", hpo.get("defaults_value"), hpo.get("best_value")))
        rows += [(f"test {k}", dm.get(k), tm.get(k)) for k in tm]
        width = max([18] + [len(name) + 1 for name, _, _ in rows])
        print()
        print(f"  {'metric':{width}s} {'defaults':>10s} {'tuned':>10s}")
        for name, defaults, tuned in rows:
            print(f"  {name:{width}s} {_fmt(defaults):>10s} {_fmt(tuned):>10s}")
        deployed = (out.get("training") or {}).get("deployed")
        if tm and deployed:
            print(f"  (test: models fitted on train+val; the saved model was then refit on all "
                  f"{deployed.get('fit_rows')} rows)")
    if out.get("model_path"):
        print(f"\n  model: {out['model_path']}")
    if out.get("mlflow_run_id"):
        print(f"  mlflow run: {out['mlflow_run_id']}")
    timings = out.get("timings") or {}
    if timings.get("total") is not None:
        parts = ", ".join(f"{k} {v:.1f}" for k, v in timings.items() if k != "total")
        print(f"  time: {timings['total']:.1f} s ({parts})")
    if out.get("best_params"):
        print(f"  best params: {json.dumps(out['best_params'], default=str)}")


def _write_json(path: str | None, out: dict[str, Any]) -> None:
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(out, indent=2, default=str))


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("mlflow", "alembic", "optuna"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    args = build_parser().parse_args(argv)
    if (hasattr(args, "n_trials") and args.n_trials is None and getattr(args, "timeout", None) is None
            and getattr(args, "time_budget", None) is None):
        args.n_trials = 50
    from .errors import DatabaseUnavailableError, MLOpsError

    commands = {"train": cmd_train, "tune": cmd_tune, "studies": cmd_studies, "db": cmd_db}
    try:
        out = asyncio.run(commands[args.command](args))
    except BadInput as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except DatabaseUnavailableError as e:
        print(f"error: database unavailable: {e}", file=sys.stderr)
        return EXIT_FAILURE
    except MLOpsError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT if isinstance(e, ValueError | KeyError) else EXIT_FAILURE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - a failure at run time: say what, exit 1
        from .persistence import redact_secrets

        logging.getLogger("hpo").debug("run failed", exc_info=True)
        print(f"error: run failed: {type(e).__name__}: {redact_secrets(str(e))}", file=sys.stderr)
        return EXIT_FAILURE
    if args.command in ("train", "tune"):
        if args.command == "tune":
            out.setdefault("hpo", {k: out.get(k) for k in ("study_name", "best_value", "defaults_value", "n_completed",
                                                           "n_pruned", "n_failed", "duration_s", "metric")})
        print_summary(out)
        _write_json(getattr(args, "output_json", None), out)
        if out.get("status") != "completed":
            err = out.get("error") or {}
            print(f"\nerror in {err.get('node', '?')}: {err.get('message', 'unknown error')}", file=sys.stderr)
            return EXIT_BAD_INPUT
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
