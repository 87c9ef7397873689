"""The ``hpo`` argument parser: every option checked where it is parsed, so a bad value is refused
with exit code 2 and a message naming the option, before any work starts.

Options that define a run (data, model, metric, scheme, seed...) default to ``None`` here; the graph
state's defaults fill them in. That keeps "given on the command line" apart from "left at its
default", which a resume needs (``--thread-id``: a given option that differs from the run is refused).
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from .exits import BadInput

__all__ = ["build_parser", "check_output_path", "SEED_MAX"]

#: numpy's seeds (and so scikit-learn's, LightGBM's, XGBoost's) are unsigned 32-bit integers.
SEED_MAX = 2**32 - 1


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def int_at_least(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: an integer in ``[low, high]``."""

    rule = f">= {low}" if high is None else f"between {low} and {high}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be an integer {rule}, got {text!r}")
        return value

    parse.__name__ = "integer"
    return parse


def positive_seconds(text: str) -> float:
    value = _number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return value


def non_negative(text: str) -> float:
    value = _number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text}")
    return value


def fraction(text: str) -> float:
    value = _number(text)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must be a fraction of the rows with 0 < F < 1, got {text}")
    return value


def column_list(text: str) -> list[str]:
    """``"a,b"`` -> ``["a", "b"]`` (names stripped; an empty name is refused)."""
    names = [c.strip() for c in text.split(",")]
    if not all(names):
        raise argparse.ArgumentTypeError(f"must be comma-separated column names, got {text!r}")
    return names


def _add_data_args(p: argparse.ArgumentParser) -> None:
    src = p.add_argument_group("data (one of; a resume keeps the run's data)")
    src.add_argument("--data", help="CSV or Parquet file")
    src.add_argument("--dataset", help="bundled scikit-learn dataset: breast_cancer, iris, wine, diabetes, digits")
    p.add_argument("--target", help="target column (required with --data unless a 'target'/'label' column exists)")
    p.add_argument("--problem", help="binary_classification | multiclass_classification | regression (inferred)")
    p.add_argument("--time-column", help="split by time: oldest rows train, newest test")
    p.add_argument("--drop-columns", type=column_list, metavar="A,B",
                   help="columns to leave out of the features (e.g. one the run warns leaks the target)")


def _add_tuning_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--algorithm", help="model family (default lightgbm); 'auto' or a comma-separated list "
                                       "(lightgbm,xgboost,random_forest) searches the family too")
    p.add_argument("--metric", help="metric to optimize (default by problem: roc_auc, log_loss, rmse)")
    p.add_argument("--n-trials", type=int_at_least(1), default=None,
                   help="trials in the study (default 50; with --timeout and no --n-trials: as many as fit)")
    p.add_argument("--timeout", type=positive_seconds,
                   help="seconds for the study alone (loading and final fits come on top)")
    p.add_argument("--trial-timeout", type=positive_seconds,
                   help="per-trial limit in seconds (trials run in worker processes)")
    p.add_argument("--scheme",
                   help="how trials are scored: auto (default: chosen from the data, printed), holdout, cv, "
                        "cv=K, cv=KxR (K folds of train+validation, R shuffles), timeseries[-cv=K]")
    p.add_argument("--cv", type=int_at_least(2), help="shorthand for --scheme cv=K")
    p.add_argument("--sampler", help="tpe (default), random, cmaes, gp, qmc, grid, nsga2, hyperopt, skopt "
                                     "(the last two are optional extras)")
    p.add_argument("--pruner", help="median (default), percentile, successive_halving, hyperband, threshold, "
                                    "patient, none")
    p.add_argument("--pruner-options", metavar="JSON",
                   help='options of the pruner as a JSON object, e.g. \'{"percentile": 20}\', '
                        '\'{"lower": 0.6}\' (threshold), \'{"patience": 3, "wrapped": "median"}\' (patient)')
    p.add_argument("--enqueue", metavar="FILE.json",
                   help="configurations to evaluate first, after the defaults: a JSON list of {param: value}")
    p.add_argument("--patience", type=int_at_least(1),
                   help="stop the study after N completed trials without improvement")
    p.add_argument("--min-improvement", type=non_negative, metavar="DELTA",
                   help="the least gain of the best value that counts for --patience (default 0)")
    p.add_argument("--max-failures", type=int_at_least(1), help="stop the study after N failed trials")
    p.add_argument("--selection", choices=["best", "robust"],
                   help="the trial the model uses: best (default: best mean score) or robust (under CV, the most "
                        "reliable gain over the defaults on the same folds; the defaults when none beats them by "
                        "more than one standard error)")
    p.add_argument("--n-jobs", type=int_at_least(1), default=None, help="trials in parallel (default 1)")
    p.add_argument("--seed", type=int_at_least(0, SEED_MAX), default=None,
                   help=f"seed of the split, the sampler and the models, 0..{SEED_MAX} (default 42)")
    p.add_argument("--study-name", help="name of the Optuna study (a named study resumes; one with other data, "
                                        "family, metric or scheme is refused)")
    p.add_argument("--new-study", action="store_true", default=None,
                   help="when --study-name exists with other data or rules, start a new study under the next "
                        "free name NAME-2, NAME-3... (the old one is kept)")
    p.add_argument("--search-space", help="JSON file with a search space (replaces the family default)")
    p.add_argument("--pipeline-search", dest="pipeline_search", action="store_true", default=None,
                   help="search the preprocessing with the model: scaler (scale-sensitive families), feature "
                        "selection, imputation (families that need it); params step__param, e.g. scaler__method")
    p.add_argument("--no-warm-start", dest="no_warm_start", action="store_true", default=None,
                   help="do not seed a new study with the best trials of earlier studies of the same data "
                        "(history database; on by default)")
    p.add_argument("--warm-start-trials", type=int_at_least(0), metavar="N",
                   help="history trials a warm start seeds at most (default 5)")
    p.add_argument("--no-cache", dest="no_cache", action="store_true", default=None,
                   help="train every trial, even a configuration already evaluated on the same data, scheme, "
                        "metric and library versions (the trial cache is on by default)")
    p.add_argument("--compare", choices=["random"],
                   help="after the study, run a random search with the same budget and show defaults vs random vs "
                        "tuned (with a time bound the two share the study's time)")
    p.add_argument("--phases", type=int_at_least(1, 10), metavar="N",
                   help="adaptive narrowing: the budget in N phases; after each, numeric ranges narrow around the "
                        "best trial and widen where it sits on a bound (default 1: no narrowing; one family only)")
    p.add_argument("--objectives", metavar="METRIC,COST,...",
                   help="multi-objective: the metric first, then latency (ms per 1,000 rows) and/or size (model "
                        "bytes), e.g. roc_auc,latency,size; no pruning; the front is in the summary")
    p.add_argument("--pick-rule", help="which Pareto point is trained: fastest (default with latency), smallest, "
                                       "best_metric -- among the points within --pick-tolerance of the best metric")
    p.add_argument("--pick-tolerance", type=_number, metavar="FRACTION",
                   help="a fraction of the best metric, 0 <= F < 1 (default 0.01 = 1 %%)")
    p.add_argument("--no-db", action="store_true", help="no PostgreSQL: in-memory study, no history, no resume")
    p.add_argument("--no-mlflow", action="store_true", help="no MLflow tracking")
    p.add_argument("--output-json", help="write the run summary as JSON to this path (checked before the run)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hpo", description="Hyperparameter optimization for model-trainer agents",
                                     epilog="exit codes: 0 success, 1 failure at run time, 2 bad input, "
                                            "130 interrupted (SIGINT), 143 stopped (SIGTERM)")
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="run the whole model-trainer graph")
    _add_data_args(train)
    _add_tuning_args(train)
    train.add_argument("--thread-id",
                       help="graph thread id; the id of an interrupted run resumes it (it honours --n-trials, "
                            "--timeout, --time-budget, --n-jobs, --trial-timeout and refuses other changes)")
    train.add_argument("--no-tuning", action="store_true", default=None,
                       help="train with the model defaults only")
    train.add_argument("--time-budget", type=positive_seconds,
                       help="seconds for the whole run, from the command's start to the saved model "
                            "(the study gets what remains after the final fits)")
    train.add_argument("--refit", choices=["all", "train+val", "train"],
                       help="rows the deployed model is fitted on (default all: after the test split is scored, "
                            "the model is refit on every row)")
    train.add_argument("--ensemble", type=int_at_least(1, 10), metavar="K",
                       help="the saved model averages the study's K best configurations (default 3; 1: the best "
                            "alone; with several families, a weighted blend of at most K of the best trials, of any "
                            "family); under --time-budget only those whose final fits fit in it")
    train.add_argument("--test-size", type=fraction, help="share of the rows held out for the test split (default 0.2)")
    train.add_argument("--val-size", type=fraction,
                       help="share of the rows held out for the validation split (default 0.2)")
    tune = sub.add_parser("tune", help="hyperparameter search only (train/validation split)")
    _add_data_args(tune)
    _add_tuning_args(tune)
    worker = sub.add_parser("worker", help="join an existing study and run its trials (start one per machine/core)")
    worker.add_argument("--study", required=True, help="name of a study created by `hpo tune` or `hpo train --study-name`")
    worker.add_argument("--n-trials", dest="worker_trials", type=int_at_least(1), metavar="N",
                        help="at most this many trials from this worker (default: until the study's budget is used)")
    worker.add_argument("--timeout", type=positive_seconds, help="this worker's time budget in seconds")
    worker.add_argument("--n-jobs", type=int_at_least(1), default=1, help="trials in parallel in this worker")
    worker.add_argument("--no-mlflow", action="store_true", help="no MLflow tracking")
    worker.add_argument("--output-json", help="write the worker's summary as JSON to this path (checked before the run)")
    worker.add_argument("--quiet", action="store_true", help="no progress bar")
    report = sub.add_parser("report", help="write a study's HTML report (works offline) and PNG plots; logged to "
                                           "the study's MLflow run")
    report.add_argument("study", help="study name (`hpo studies` lists them)")
    report.add_argument("--out", help="the HTML file (default report-<study>.html); the PNG plots go beside it "
                                      "as <name>-<plot>.png")
    report.add_argument("--no-png", action="store_true", help="the HTML file only")
    report.add_argument("--no-mlflow", action="store_true", help="do not log the report to the study's MLflow run")
    dash = sub.add_parser("dashboard", help="optuna-dashboard on this project's studies (until Ctrl-C)")
    dash.add_argument("--port", type=int_at_least(0, 65535), default=8080, help="port (default 8080; 0: a free one)")
    dash.add_argument("--host", default="127.0.0.1",
                      help="address to listen on (default 127.0.0.1; the dashboard has no authentication)")
    studies = sub.add_parser("studies", help="list studies from the history database")
    studies.add_argument("--limit", type=int_at_least(1), default=20)
    db = sub.add_parser("db", help="database administration")
    db.add_argument("action", choices=["migrate", "status"])
    return parser


def check_output_path(path: str | None, option: str = "--output-json") -> Path | None:
    """``path`` as an absolute path once it is known to be writable, so a run never ends with a result
    it cannot save. Missing parent directories are created. Raises :class:`BadInput` naming ``option``.
    """
    if not path:
        return None
    target = Path(path).expanduser().resolve()
    if target.is_dir():
        raise BadInput(f"{option} {path!r} is a directory; give a file path such as {str(target / 'run.json')!r}")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise BadInput(f"{option} {path!r}: cannot create its directory {str(target.parent)!r} ({e.strerror or e})") from None
    try:
        if target.exists():
            with open(target, "a"):  # opened for appending: checks the permission without truncating
                pass
        else:  # probe the directory with a file of our own, removed at once
            fd, probe = tempfile.mkstemp(prefix=".hpo-write-check-", dir=target.parent)
            os.close(fd)
            os.unlink(probe)
    except OSError as e:
        raise BadInput(f"{option} {path!r} is not writable ({e.strerror or e}); choose another path") from None
    return target
