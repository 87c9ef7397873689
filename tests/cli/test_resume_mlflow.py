"""A run killed with -9 after tuning and resumed with --thread-id keeps its MLflow record (issue 9.2),
and a resumed run refuses a model file swapped meanwhile (issue 9.1); real subprocesses, the embedded
PostgreSQL (or DATABASE_URL) and the default SQLite MLflow store under HPO_HOME."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import pickle
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from mlflow import MlflowClient

from src.agents.ml_foundation.model_trainer import build_model_trainer_graph
from src.mlops.tracking import default_tracking_uri

from ._helpers import ROOT, embedded_dsn, env_for, hpo


async def _next_nodes(dsn: str, thread_id: str) -> tuple[tuple[str, ...], dict]:
    """The nodes the thread's last checkpoint will run next, and its values."""
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

    async with AsyncPostgresSaver.from_conn_string(dsn) as saver:
        snap = await build_model_trainer_graph(checkpointer=saver).aget_state({"configurable": {"thread_id": thread_id}})
        return tuple(snap.next), dict(snap.values)


def _kill_when_next(args: list[str], home: Path, thread_id: str, node: str, timeout: float = 300) -> dict:
    """Start ``hpo`` with ``args``, SIGKILL it as soon as its checkpoint says ``node`` runs next;
    returns the checkpointed values at that moment."""
    proc = subprocess.Popen([sys.executable, "-m", "src.cli", *args], cwd=str(ROOT), env=env_for(home),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + timeout
        dsn = None
        while time.monotonic() < deadline:
            assert proc.poll() is None, f"the run ended before reaching {node}: {proc.stderr.read()[-3000:]}"
            if dsn is None and ((home / "pgdata").exists() or os.environ.get("DATABASE_URL")):
                dsn = embedded_dsn(home)
            if dsn is not None:
                try:
                    nxt, values = asyncio.run(_next_nodes(dsn, thread_id))
                except Exception:  # noqa: BLE001 - tables not created yet
                    nxt, values = (), {}
                if node in nxt:
                    os.kill(proc.pid, signal.SIGKILL)
                    proc.wait()
                    return values
            time.sleep(0.2)
        raise AssertionError(f"the run did not reach {node} within {timeout}s")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.slow
def test_killed_after_tuning_resume_keeps_the_mlflow_record(tmp_path, home):
    thread_id = f"mlflow-resume-{uuid.uuid4().hex[:8]}"
    args = ["train", "--dataset", "breast_cancer", "--algorithm", "random_forest", "--n-trials", "4",
            "--pruner", "none", "--quiet", "--thread-id", thread_id, "--output-json", str(tmp_path / "run.json")]
    before = _kill_when_next(args, home, thread_id, "training_executor")
    parent_id = before.get("mlflow_parent_run_id")
    assert parent_id, "the parent MLflow run id is checkpointed when the run opens"

    r = hpo(home, *args)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads((tmp_path / "run.json").read_text())
    assert out["status"] == "completed" and out["mlflow_error"] is None
    assert out["mlflow_run_id"] == parent_id  # the same record, reopened
    assert out["mlflow_model_uri"] and out["mlflow_model_uri"].startswith("models:/")

    client = MlflowClient(default_tracking_uri(home))
    parent = client.get_run(parent_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics["test_roc_auc"] > 0.8  # logged by the resumed process
    runs = client.search_runs([parent.info.experiment_id], filter_string="tags.`hpo.role` = 'study'")
    assert [r.info.run_id for r in runs if r.data.tags["hpo.study_name"] == out["hpo"]["study_name"]] == [parent_id]
    model = client.get_logged_model(out["mlflow_model_uri"].split("/", 1)[1])
    assert model.source_run_id == parent_id
    meta = json.loads((Path(out["model_path"]) / "metadata.json").read_text())
    assert meta["mlflow_run_id"] == parent_id


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.slow
def test_resume_refuses_a_model_swapped_while_the_run_was_down(tmp_path, home):
    thread_id = f"swap-{uuid.uuid4().hex[:8]}"
    args = ["train", "--dataset", "breast_cancer", "--algorithm", "random_forest", "--n-trials", "3",
            "--pruner", "none", "--quiet", "--no-mlflow", "--thread-id", thread_id]
    values = _kill_when_next(args, home, thread_id, "model_evaluator")
    model_dir = Path(values["model_path"])
    marker = tmp_path / "pwned"
    (model_dir / "model.skops").write_bytes(pickle.dumps(_Exploit(marker)))
    meta = json.loads((model_dir / "metadata.json").read_text())
    meta["sha256"]["model.skops"] = hashlib.sha256((model_dir / "model.skops").read_bytes()).hexdigest()
    (model_dir / "metadata.json").write_text(json.dumps(meta))

    r = hpo(home, *args)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "does not match the SHA-256 the run recorded" in r.stderr
    assert ": completed" not in r.stdout
    assert not marker.exists()
