"""``hpo worker --study NAME``: join a study of this database and run its trials.

The study's recipe (written when ``hpo tune`` or ``hpo train --study-name`` created it: where its
data is, the data's fingerprint, the objective's options, the budget) rebuilds the same objective;
data whose fingerprint differs is refused. Start one per machine (or core) against the same
``DATABASE_URL``: PostgreSQL hands out the trial slots, so the study never exceeds its budget.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..adapters import home_directory, run_services
from ..lifecycle import RunStopper
from ..output import fmt
from ..progress import Progress

__all__ = ["cmd_worker"]


async def cmd_worker(args: argparse.Namespace, stopper: RunStopper, *, outage_s: float) -> dict[str, Any]:
    from src.agents.ml_foundation.model_trainer import StreamProgressListener
    from src.mlops.study_recipe import join_study

    stopper.context.update(command="worker", study_name=args.study, saved="yes")
    progress = Progress(n_trials=args.worker_trials, timeout=args.timeout, enabled=not args.quiet)
    async with run_services(home_directory(), stopper, use_db=True, use_mlflow=not args.no_mlflow,
                            checkpoints=False, outage_s=outage_s) as services:
        listeners: list[Any] = [*services.listeners, StreamProgressListener(progress.update, args.worker_trials)]
        if services.tracker is not None:
            listeners.append(services.tracker)
        try:
            result = await join_study(args.study, storage=services.optuna_storage, n_trials=args.worker_trials,
                                      timeout=args.timeout, n_jobs=args.n_jobs, listeners=listeners,
                                      history=services.history)
        finally:
            progress.close()
    out = {**result.to_dict(), "status": "completed"}
    print(f"  study {out['study_name']}: {out['n_completed']} complete, {out['n_pruned']} pruned, "
          f"{out['n_failed']} failed in the study; best {out['metric']} = {fmt(out['best_value'])} "
          f"(worker stopped: {out['stop_reason']})")
    return out
