"""``hpo report STUDY [--out report.html]``: the study's HTML report and PNG plots (SPEC F26), logged
to the study's MLflow parent run when it has one."""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from typing import Any

from ..adapters import home_directory, open_store
from ..exits import BadInput
from ..lifecycle import RunStopper
from ..parser import check_output_path

__all__ = ["cmd_report", "default_report_path", "load_stored_study"]


def default_report_path(study_name: str) -> str:
    """``report-<study>.html`` in the current directory (the name reduced to safe file-name characters)."""
    return f"report-{re.sub(r'[^A-Za-z0-9._-]+', '_', study_name).strip('._') or 'study'}.html"


async def load_stored_study(storage: Any, study_name: str) -> Any:
    """The study ``study_name`` of ``storage``; :class:`BadInput` (exit 2) naming it when it does not exist."""
    import optuna

    try:
        return await asyncio.to_thread(optuna.load_study, study_name=study_name, storage=storage)
    except KeyError:
        raise BadInput(f"no study named {study_name!r} in this database; `hpo studies` lists them") from None


async def cmd_report(args: argparse.Namespace, stopper: RunStopper, *, outage_s: float) -> dict[str, Any]:
    from src.mlops.persistence import create_optuna_storage
    from src.mlops.redaction import redact_secrets
    from src.mlops.reporting import awrite_report
    from src.mlops.tracking import log_study_files, resolve_tracking_uri

    out = check_output_path(args.out or default_report_path(args.study), "--out")
    assert out is not None
    if out.suffix.lower() not in (".html", ".htm"):
        raise BadInput(f"--out {args.out!r}: give an .html file name (the PNG plots are written beside it)")
    home = home_directory()
    async with open_store(home) as store:
        storage = await asyncio.to_thread(create_optuna_storage, store.dsn, reconnect_timeout=outage_s)
        try:
            study = await load_stored_study(storage, args.study)
            files = await awrite_report(study, out, pngs=not args.no_png)
        finally:
            await asyncio.to_thread(storage.close)
    print(f"  report: {files.html}")
    for path in files.pngs.values():
        print(f"  plot:   {path}")
    result: dict[str, Any] = {"status": "completed", "study_name": args.study, "html": str(files.html),
                              "pngs": {k: str(p) for k, p in files.pngs.items()}, "mlflow_run_id": None}
    if not args.no_mlflow:
        uri = resolve_tracking_uri(hpo_home=home)
        try:
            run_id = await asyncio.to_thread(log_study_files, uri, args.study, files.paths())
        except Exception as e:  # noqa: BLE001 - the report is written; say why it is not in MLflow
            result["status"] = "completed_untracked"
            result["mlflow_error"] = redact_secrets(f"{type(e).__name__}: {e}")
            print(f"  mlflow: NOT RECORDED: {result['mlflow_error']}", file=sys.stderr)
        else:
            result["mlflow_run_id"] = run_id
            print(f"  mlflow run: {run_id} (artifacts under report/)" if run_id else
                  "  mlflow: the study has no MLflow run (tuned with --no-mlflow?): the report is not logged")
    return result
