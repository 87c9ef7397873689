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
from ..settings import (
    check_settings,
    given_settings,
    require_one_source,
    with_default_budget,
)

__all__ = ["cmd_tune"]


def _prepare(args: argparse.Namespace, settings: dict[str, Any]) -> dict[str, Any]:
    """Load, clean and split the data, and choose the evaluation scheme (blocking: run in a thread).

    The data is described as a *source* (a file path every worker can read, or a bundled dataset,
    with the split settings and the scheme) that the study records, so that ``hpo worker`` on
    another machine loads the very same splits (:mod:`src.mlops.study_recipe`)."""
    from pathlib import Path

    from src.agents.ml_foundation.model_trainer.settings import setting
    from src.mlops.problems import CLASSIFICATION
    from src.mlops.schemes import resolve_scheme, tuning_frames
    from src.mlops.study_recipe import load_data_source

    source: dict[str, Any] = {
        "kind": "file" if args.data else "dataset", "target": args.target, "problem_type": args.problem,
        "time_column": args.time_column, "drop_columns": args.drop_columns, "split": {"seed": setting(settings, "seed"), "rare_classes": "train"},
        **({"path": str(Path(args.data).resolve())} if args.data else {"name": args.dataset})}
    splits = load_data_source(source)
    try:
        scheme = resolve_scheme(scheme=setting(settings, "scheme"), cv=args.cv, y_train=splits.y_train,
                                y_val=splits.y_val, n_features=splits.X_train.shape[1],
                                classification=splits.problem_type in CLASSIFICATION,
                                time_ordered=splits.time_column is not None, time_budget=args.timeout)
    except ValueError as e:
        raise BadInput(str(e)) from None
    source["scheme"] = scheme.to_dict()  # workers score trials the same way
    frames = tuning_frames(splits.X_train, splits.y_train, splits.X_val, splits.y_val, scheme)
    return {"splits": splits, "scheme": scheme, "frames": frames, "source": source}


async def cmd_tune(args: argparse.Namespace, stopper: RunStopper, *, outage_s: float) -> dict[str, Any]:
    from src.agents.ml_foundation.model_trainer import StreamProgressListener
    from src.agents.ml_foundation.model_trainer.settings import setting
    from src.mlops.optuna_optimizer import run_hyperparameter_optimization

    settings = given_settings(args)
    require_one_source(settings)
    settings = with_default_budget(settings)
    check_settings(settings)
    home = home_directory()
    study_name = args.study_name or (None if args.no_db else f"tune-{uuid.uuid4().hex[:12]}")
    stopper.context.update(command="tune", study_name=study_name or "", saved="no" if args.no_db else "yes")
    data = await asyncio.to_thread(_prepare, args, settings)
    splits, scheme = data["splits"], data["scheme"]
    if settings.get("objectives"):  # the objectives' metric is checked against the problem type, now known
        check_settings({**settings, "problem_type": splits.problem_type})
    X_tr, y_tr, X_va, y_va = data["frames"]
    progress = Progress(n_trials=settings["n_trials"], timeout=args.timeout, enabled=not args.quiet)
    async with run_services(home, stopper, use_db=not args.no_db, use_mlflow=not args.no_mlflow,
                            checkpoints=False, outage_s=outage_s) as services:
        listeners: list[Any] = [*services.listeners, StreamProgressListener(progress.update, settings["n_trials"])]
        if services.tracker is not None:
            listeners.append(services.tracker)
        try:
            result = await run_hyperparameter_optimization(
                setting(settings, "algorithm"), splits.problem_type, X_tr, y_tr, X_va, y_va,
                metric=args.metric, n_trials=settings["n_trials"], timeout=args.timeout,
                sampler=setting(settings, "sampler"), pruner=setting(settings, "pruner"),
                search_space=settings.get("search_space"), seed=setting(settings, "seed"),
                **scheme.objective_options(),
                pruner_options=setting(settings, "pruner_options"), enqueue=setting(settings, "enqueue") or (),
                patience=setting(settings, "patience"), min_improvement=float(setting(settings, "min_improvement")),
                max_failures=setting(settings, "max_failures"),
                study_name=study_name, new_study=setting(settings, "new_study"), storage=services.optuna_storage,
                n_jobs=setting(settings, "n_jobs"),
                trial_timeout=args.trial_timeout, listeners=listeners, data_source=data["source"],
                history=services.history, warm_start=setting(settings, "warm_start"),
                warm_start_trials=setting(settings, "warm_start_trials"), trial_cache=setting(settings, "trial_cache"),
                compare=setting(settings, "compare"), phases=setting(settings, "phases"),
                pipeline=setting(settings, "pipeline_search"), objectives=setting(settings, "objectives"),
                pick_rule=setting(settings, "pick_rule"), pick_tolerance=setting(settings, "pick_tolerance"),
            )
        finally:
            progress.close()
    out = result.to_dict()
    out["status"] = "completed"
    out["scheme"] = scheme.label
    out["scheme_reason"] = scheme.reason
    out["dropped_columns"] = splits.dropped_columns
    out["leak_suspects"] = splits.leak_suspects
    out["hpo"] = {k: out.get(k) for k in ("study_name", "best_value", "defaults_value", "n_completed", "n_pruned",
                                          "n_failed", "duration_s", "metric", "failure_reasons", "scheme",
                                          "scheme_reason", "n_cached", "warm_start", "comparison", "analysis",
                                          "algorithm", "phases", "objectives", "pareto_front", "pick")}
    if result.families:
        out["hpo"].update(chosen_family=result.algorithm, family_best=result.family_best,
                          families=out.pop("family_stats"))
    return out
