"""``hpo tune``: the study alone, on the training and validation splits (the test split is never read).

With the database the study lives in PostgreSQL under ``--study-name`` (default ``tune-<id>``,
printed), so a stopped study continues when the same command is run with that name.
"""

from __future__ import annotations

import argparse
import asyncio
import uuid
from typing import Any

from ..adapters import home_directory, run_services
from ..exits import BadInput
from ..lifecycle import RunStopper
from ..progress import Progress
from ..settings import check_settings, given_settings, require_one_source, with_default_budget

__all__ = ["cmd_tune"]


def _prepare(args: argparse.Namespace, settings: dict[str, Any]) -> dict[str, Any]:
    """Load, clean and split the data, and choose the evaluation scheme (blocking: run in a thread)."""
    from src.agents.ml_foundation.model_trainer.state import setting
    from src.mlops.datasets import load_dataset
    from src.mlops.features import prepare_features
    from src.mlops.problems import CLASSIFICATION
    from src.mlops.schemes import resolve_scheme, tuning_frames
    from src.mlops.splits import split_dataset

    loaded = load_dataset(args.data or args.dataset, target=args.target)
    prepared = prepare_features(loaded.frame, loaded.target, problem_type=args.problem, time_column=args.time_column)
    splits = split_dataset(prepared.X, prepared.y, seed=setting(settings, "seed"), problem_type=prepared.problem_type,
                           time_column=prepared.time_column, rare_classes="train")
    try:
        scheme = resolve_scheme(scheme=setting(settings, "scheme"), cv=args.cv, y_train=splits.y_train,
                                y_val=splits.y_val, n_features=splits.X_train.shape[1],
                                classification=prepared.problem_type in CLASSIFICATION,
                                time_ordered=prepared.time_column is not None, time_budget=args.timeout)
    except ValueError as e:
        raise BadInput(str(e)) from None
    frames = tuning_frames(splits.X_train, splits.y_train, splits.X_val, splits.y_val, scheme)
    return {"prepared": prepared, "scheme": scheme, "frames": frames}


async def cmd_tune(args: argparse.Namespace, stopper: RunStopper, *, outage_s: float) -> dict[str, Any]:
    from src.agents.ml_foundation.model_trainer import StreamProgressListener
    from src.agents.ml_foundation.model_trainer.state import setting
    from src.mlops.optuna_optimizer import run_hyperparameter_optimization

    settings = given_settings(args)
    require_one_source(settings)
    settings = with_default_budget(settings)
    check_settings(settings)
    home = home_directory()
    study_name = args.study_name or (None if args.no_db else f"tune-{uuid.uuid4().hex[:12]}")
    stopper.context.update(command="tune", study_name=study_name or "", saved="no" if args.no_db else "yes")
    data = await asyncio.to_thread(_prepare, args, settings)
    prepared, scheme = data["prepared"], data["scheme"]
    X_tr, y_tr, X_va, y_va = data["frames"]
    progress = Progress(n_trials=settings["n_trials"], timeout=args.timeout, enabled=not args.quiet)
    async with run_services(home, stopper, use_db=not args.no_db, use_mlflow=not args.no_mlflow,
                            checkpoints=False, outage_s=outage_s) as services:
        listeners: list[Any] = [*services.listeners, StreamProgressListener(progress.update, settings["n_trials"])]
        if services.tracker is not None:
            listeners.append(services.tracker)
        try:
            result = await run_hyperparameter_optimization(
                setting(settings, "algorithm"), prepared.problem_type, X_tr, y_tr, X_va, y_va,
                metric=args.metric, n_trials=settings["n_trials"], timeout=args.timeout,
                sampler=setting(settings, "sampler"), pruner=setting(settings, "pruner"),
                search_space=settings.get("search_space"), seed=setting(settings, "seed"),
                **scheme.objective_options(),
                study_name=study_name, storage=services.optuna_storage, n_jobs=setting(settings, "n_jobs"),
                trial_timeout=args.trial_timeout, listeners=listeners,
            )
        finally:
            progress.close()
    out = result.to_dict()
    out["status"] = "completed"
    out["scheme"] = scheme.label
    out["scheme_reason"] = scheme.reason
    out["dropped_columns"] = prepared.dropped_columns
    out["hpo"] = {k: out.get(k) for k in ("study_name", "best_value", "defaults_value", "n_completed", "n_pruned",
                                          "n_failed", "duration_s", "metric", "failure_reasons", "scheme",
                                          "scheme_reason")}
    return out
