"""``hpo studies`` (the study history) and ``hpo db migrate|status`` (the schema)."""

from __future__ import annotations

import argparse
from typing import Any

from ..adapters import home_directory, open_store
from ..lifecycle import RunStopper
from ..output import fmt

__all__ = ["cmd_studies", "cmd_db"]


async def cmd_studies(args: argparse.Namespace, stopper: RunStopper, *, outage_s: float) -> dict[str, Any]:
    """One line per study, newest first: name, algorithm, status (``interrupted`` for a study stopped
    before its end), counters written as its trials finished, budget and best value."""
    from src.mlops.persistence import PostgresHistoryRepository

    async with open_store(home_directory()) as store:
        studies = await PostgresHistoryRepository(store.db).list_studies(limit=args.limit)
    rows = [s.to_dict() if hasattr(s, "to_dict") else dict(s.__dict__) for s in studies]
    for r in rows:
        print(f"{str(r.get('study_name')):50s} {fmt(r.get('algorithm')):22s} {fmt(r.get('status')):11s} "
              f"complete={fmt(r.get('n_completed'))} pruned={fmt(r.get('n_pruned'))} failed={fmt(r.get('n_failed'))} "
              f"budget={fmt(r.get('n_trials'))} best={fmt(r.get('best_value'))}")
    return {"studies": rows, "status": "completed"}


async def cmd_db(args: argparse.Namespace, stopper: RunStopper, *, outage_s: float) -> dict[str, Any]:
    from src.mlops.persistence import migration_status

    async with open_store(home_directory(), apply_migrations=args.action == "migrate") as store:
        status = await migration_status(store.db)
    for s in status:
        if s.applied_at is None:
            state = "pending"
        else:
            state = f"applied {s.applied_at:%Y-%m-%d %H:%M:%S}" + ("" if s.checksum_ok else " (FILE CHANGED SINCE)")
        print(f"  {s.version:03d} {str(s.filename):40s} {state}")
    return {"status": "completed"}
