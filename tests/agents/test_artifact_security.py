"""A crafted model file never runs code: digests travel with the run, files stay in their folder (issue 9.1)."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from src.agents.ml_foundation.model_trainer import ModelTrainerContext, build_model_trainer_graph, load_model_artifact
from src.agents.ml_foundation.model_trainer.artifacts import (
    METADATA_FILE,
    MODEL_FILE,
    UnrecordedArtifactError,
    UntrustedModelError,
    file_digest,
    recorded_digests,
    save_model_artifact,
)
from src.mlops.models import get_model_spec
from src.mlops.objectives import LabelCodec, fit_model

from .conftest import make_messy_frame


class _Exploit:
    """A pickle whose loading runs a shell command that leaves a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _swap_in_exploit(artifact: Path, marker: Path) -> None:
    """What the attacker of issue 9 does: overwrite the model file, then fix up metadata.json."""
    (artifact / MODEL_FILE).write_bytes(pickle.dumps(_Exploit(marker)))
    meta = json.loads((artifact / METADATA_FILE).read_text())
    meta["sha256"][MODEL_FILE] = file_digest(artifact / MODEL_FILE)
    (artifact / METADATA_FILE).write_text(json.dumps(meta))


@pytest.fixture
def artifact(tmp_path: Path):
    frame = make_messy_frame(n=200)
    X, y = frame[["age", "income", "tenure_months"]], frame["churn"]
    codec = LabelCodec(y)
    spec = get_model_spec("random_forest")
    params = {**spec.default_params("binary_classification", seed=0), "n_estimators": 5}
    model = fit_model(spec, "binary_classification", params, X, codec.encode(y), codec=codec).model
    return save_model_artifact(model, tmp_path / "run" / "model", {"kind": "tuned"}), X


def test_only_recorded_or_vouched_folders_load(artifact):
    saved, X = artifact
    with pytest.raises(UnrecordedArtifactError, match="no run recorded its digests.*trusted=True"):
        load_model_artifact(saved.path)
    by_digest, _ = load_model_artifact(saved.path, digests=saved.digests)
    vouched, _ = load_model_artifact(saved.path / MODEL_FILE, trusted=True)
    assert list(by_digest.predict(X)) == list(vouched.predict(X))
    assert recorded_digests({"artifact_digests": saved.state_entry()}, saved.path) == saved.digests


def test_swapped_model_file_is_refused_before_it_is_read(artifact, tmp_path):
    saved, _ = artifact
    marker = tmp_path / "pwned"
    _swap_in_exploit(saved.path, marker)
    with pytest.raises(UntrustedModelError, match="does not match the SHA-256 the run recorded"):
        load_model_artifact(saved.path, digests=saved.digests)
    with pytest.raises(UntrustedModelError, match="not a skops archive"):  # vouched for, still no pickle
        load_model_artifact(saved.path, trusted=True)
    assert not marker.exists()


def test_paths_never_leave_the_artifact_folder(artifact, tmp_path):
    saved, _ = artifact
    outside = tmp_path / "outside.pkl"
    outside.write_bytes(pickle.dumps(_Exploit(tmp_path / "pwned")))
    meta_file = saved.path / METADATA_FILE
    meta = json.loads(meta_file.read_text())
    meta_file.write_text(json.dumps({**meta, "model_file": "../../outside.pkl"}))
    with pytest.raises(UntrustedModelError, match=r"names the model file '../../outside.pkl'.*fixed"):
        load_model_artifact(saved.path, trusted=True)
    meta_file.write_text(json.dumps(meta))
    (saved.path / MODEL_FILE).unlink()
    (saved.path / MODEL_FILE).symlink_to(outside)
    with pytest.raises(UntrustedModelError, match="outside the artifact folder"):
        load_model_artifact(saved.path, trusted=True)
    assert not (tmp_path / "pwned").exists()


async def test_resumed_run_refuses_a_model_swapped_after_training(tmp_path: Path):
    """Stop the graph after training (as a kill would), swap the model and fix up metadata.json,
    resume: the evaluator refuses the file with a clear error and the exploit never runs."""
    csv = tmp_path / "churn.csv"
    make_messy_frame(n=300).to_csv(csv, index=False)
    graph = build_model_trainer_graph(checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "swap"}}
    ctx = ModelTrainerContext(hpo_home=tmp_path / "hpo")
    state = await graph.ainvoke({"data_path": str(csv), "target": "churn", "n_trials": 2, "seed": 0}, config,
                                context=ctx, interrupt_before=["model_evaluator"])
    assert state["model_path"] in state["artifact_digests"]
    marker = tmp_path / "pwned"
    _swap_in_exploit(Path(state["model_path"]), marker)

    final = await graph.ainvoke(None, config, context=ctx)
    assert final["status"] == "failed"
    assert final["error"]["node"] == "model_evaluator" and final["error"]["type"] == "UntrustedModelError"
    assert "does not match the SHA-256 the run recorded" in final["error"]["message"]
    assert not marker.exists()


async def test_history_database_vouches_for_the_run_folders_only(tmp_path: Path):
    from src.agents.ml_foundation.model_trainer import load_recorded_artifact
    from src.mlops.persistence import InMemoryHistoryRepository

    history = InMemoryHistoryRepository()
    csv = tmp_path / "churn.csv"
    make_messy_frame(n=300).to_csv(csv, index=False)
    final = await build_model_trainer_graph().ainvoke(
        {"data_path": str(csv), "target": "churn", "n_trials": 2, "seed": 0},
        context=ModelTrainerContext(hpo_home=tmp_path / "hpo", history=history))
    assert final["status"] == "completed", final.get("error")
    model, _ = await load_recorded_artifact(history, final["model_path"])
    assert model.classes_ is not None
    copy = tmp_path / "copied"
    import shutil

    shutil.copytree(final["model_path"], copy)
    with pytest.raises(UnrecordedArtifactError, match="no run recorded"):
        await load_recorded_artifact(history, copy)
    marker = tmp_path / "pwned"
    _swap_in_exploit(Path(final["model_path"]), marker)
    with pytest.raises(UntrustedModelError, match="does not match"):
        await load_recorded_artifact(history, final["model_path"])
    assert not marker.exists()
