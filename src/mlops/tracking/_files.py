"""Files attached after the fact to a study's MLflow parent run (the report of ``hpo report``)."""

from __future__ import annotations

import os
from collections.abc import Sequence

from ._runs import ROLE_TAG, STUDY_TAG
from ._store import prepare_sqlite_store, sqlite_path, store_init_lock

__all__ = ["find_study_run", "log_study_files"]


def find_study_run(client: object, study_name: str, experiment_name: str = "hpo") -> str | None:
    """The id of the newest parent run of ``study_name`` (tags ``hpo.study_name``, ``hpo.role=study``)."""
    exp = client.get_experiment_by_name(experiment_name)  # type: ignore[attr-defined]
    if exp is None:
        return None
    quote = "'" if "'" not in study_name else '"' if '"' not in study_name else None
    if quote is None:  # a name MLflow's filter language cannot quote: compare in Python instead
        runs = client.search_runs([exp.experiment_id], filter_string=f"tags.`{ROLE_TAG}` = 'study'",  # type: ignore[attr-defined]
                                  max_results=5000, order_by=["attributes.start_time DESC"])
        runs = [r for r in runs if r.data.tags.get(STUDY_TAG) == study_name]
    else:
        runs = client.search_runs(  # type: ignore[attr-defined]
            [exp.experiment_id],
            filter_string=f"tags.`{STUDY_TAG}` = {quote}{study_name}{quote} and tags.`{ROLE_TAG}` = 'study'",
            max_results=1, order_by=["attributes.start_time DESC"])
    return runs[0].info.run_id if runs else None


def log_study_files(tracking_uri: str, study_name: str, paths: Sequence[str | os.PathLike[str]], *,
                    artifact_path: str = "report", experiment_name: str = "hpo") -> str | None:
    """Log ``paths`` under ``artifact_path`` of the study's parent run; its id, or ``None`` when the
    study has no parent run (it was tuned without MLflow). MLflow errors propagate (blocking: call
    it from a thread; MLflow's HTTP bounds come from the environment, see ``http_settings``)."""
    from mlflow import MlflowClient

    db_file = sqlite_path(tracking_uri)
    if db_file is not None and not db_file.exists():
        return None  # no store, so no run: do not create an empty store just to look
    with store_init_lock(tracking_uri):
        prepare_sqlite_store(tracking_uri)
    client = MlflowClient(tracking_uri=tracking_uri)
    run_id = find_study_run(client, study_name, experiment_name)
    if run_id is None:
        return None
    for path in paths:
        client.log_artifact(run_id, os.fspath(path), artifact_path=artifact_path)
    return run_id
