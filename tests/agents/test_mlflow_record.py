"""A tracked run whose MLflow record could not be written never ends plain "completed" (issue 9.2)."""

from __future__ import annotations

from pathlib import Path

from src.agents.ml_foundation.model_trainer import ModelTrainerContext, build_model_trainer_graph
from src.mlops.tracking import MLflowTracker

from ..test_tracking import _free_port as _refused_port


async def test_unreachable_mlflow_ends_completed_untracked_with_the_reason(tmp_path: Path) -> None:
    tracker = MLflowTracker(f"http://127.0.0.1:{_refused_port()}", "unreachable", call_timeout_s=2)
    try:
        final = await build_model_trainer_graph().ainvoke(
            {"dataset_name": "iris", "algorithm": "random_forest", "n_trials": 2},
            context=ModelTrainerContext(hpo_home=tmp_path / "hpo", tracker=tracker))
    finally:
        await tracker.aclose()
    assert final["status"] == "completed_untracked"
    assert final["error"] is None and Path(final["model_path"]).is_dir()  # the model itself is fine
    assert final["mlflow_model_uri"] is None and final["mlflow_dropped_writes"] > 0
    assert "127.0.0.1" in final["mlflow_error"]  # says why: the tracker's (redacted) last error
