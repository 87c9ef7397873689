"""The graph with ``objectives`` (SPEC F7, issue 10 item 3): the picked point of the Pareto front is the
one trained, saved and registered; the front reaches the state, the history and MLflow. Real fits."""

from __future__ import annotations

import json
from pathlib import Path

from mlflow import MlflowClient
from sklearn.datasets import load_breast_cancer

from src.agents.ml_foundation.model_trainer import (
    ModelTrainerContext,
    build_model_trainer_graph,
    load_run_artifact,
)
from src.mlops.persistence import InMemoryHistoryRepository
from src.mlops.persistence.recorder import HistoryRecorder
from src.mlops.tracking import MLflowTracker


async def test_the_picked_point_is_trained_saved_and_recorded(tmp_path: Path) -> None:
    frame = load_breast_cancer(as_frame=True).frame
    csv = tmp_path / "bc.csv"
    frame.to_csv(csv, index=False)
    uri = f"sqlite:///{(tmp_path / 'mlflow.db').as_posix()}"
    history = InMemoryHistoryRepository()
    recorder = HistoryRecorder(history)
    tracker = MLflowTracker(tracking_uri=uri, experiment_name="mo")
    context = ModelTrainerContext(hpo_home=tmp_path / "hpo", tracker=tracker, history=history, listeners=[recorder])
    try:
        final = await build_model_trainer_graph().ainvoke(
            {"data_path": str(csv), "target": "target", "algorithm": "lightgbm", "n_trials": 8, "scheme": "holdout",
             "objectives": ["roc_auc", "latency", "size"], "pick_rule": "smallest", "pick_tolerance": 0.02},
            context=context)
    finally:
        await tracker.aclose()
        await recorder.aclose()
    assert final["status"] == "completed", final.get("error")
    hpo = final["hpo"]
    pick, front = hpo["pick"], hpo["pareto_front"]
    assert hpo["objectives"] == ["roc_auc", "latency", "size"] and pick["rule"] == "smallest"
    assert pick["number"] in {p["number"] for p in front}
    within = [p for p in front if p["number"] in pick["within_tolerance"]]
    assert pick["values"]["size"] == min(p["values"]["size"] for p in within)
    assert hpo["best_trial_number"] == pick["number"] and hpo["best_value"] == pick["values"]["roc_auc"]
    # the final fits use the picked params (the round count is rescaled for the larger refit)
    picked = {k: v for k, v in pick["params"].items() if k != "n_estimators"}
    assert picked.items() <= final["merged_params"].items()
    model, meta = load_run_artifact(final, final["model_path"])
    fitted = model.model.estimator.get_params()
    for name in ("num_leaves", "learning_rate", "min_child_samples"):
        if name in picked:
            assert fitted[name] == picked[name], name
    assert meta["hpo"]["pick"]["number"] == pick["number"]
    assert json.loads(json.dumps(final, allow_nan=False)) == final  # the state stays plain JSON
    # history: one value per objective on every trial, the picked point as the study's best
    study = await history.get_study(hpo["study_name"])
    assert study is not None and study.metric_names == ("roc_auc", "latency", "size")
    assert study.directions == ("maximize", "minimize", "minimize")
    assert study.best_trial_number == pick["number"] and list(study.best_values) == list(pick["values"].values())
    assert study.tags["hpo.pick_rule"] == "smallest" and study.tags["hpo.pick_tolerance"] == "0.02"
    trials = await history.get_trials(hpo["study_name"], states=["COMPLETE"])
    assert trials and all(len(t.values) == 3 and t.value is None for t in trials)
    # MLflow: the parent run carries the picked point's values, the rule, and the front as an artifact
    client = MlflowClient(tracking_uri=uri)
    parent = client.get_run(final["mlflow_run_id"])
    assert parent.data.tags["hpo.pick_rule"] == "smallest"
    assert parent.data.tags["hpo.pick_trial_number"] == str(pick["number"])
    assert parent.data.metrics["best_size"] == pick["values"]["size"]
    logged = json.loads(Path(client.download_artifacts(parent.info.run_id, "pareto_front.json", str(tmp_path))).read_text())
    assert [p["number"] for p in logged["front"]] == [p["number"] for p in front]
