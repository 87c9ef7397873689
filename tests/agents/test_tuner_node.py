"""The hyperparameter_tuner node on its own: test-set guard, bad input, idempotent resume."""

from __future__ import annotations

from pathlib import Path

import optuna
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.runtime import Runtime

from src.agents.ml_foundation.model_trainer import ModelTrainerContext, build_model_trainer_graph
from src.agents.ml_foundation.model_trainer.nodes import (
    hyperparameter_tuner,
    load_data,
    model_evaluator,
    split_data,
    training_executor,
)


async def _prepared_state(context: ModelTrainerContext, **inputs) -> dict:
    """Run load_data and split_data directly (no graph) and return the merged state."""
    runtime = Runtime(context=context)
    state: dict = {"dataset_name": "breast_cancer", "n_trials": 3, **inputs}
    state.update(await load_data(state, runtime))
    assert state["error"] is None, state["error"]
    state.update(await split_data(state, runtime))
    assert "error" not in state or state["error"] is None
    return state


async def test_tuner_refuses_overlapping_train_and_validation(context: ModelTrainerContext) -> None:
    state = await _prepared_state(context)
    splits = dict(state["splits"])
    splits["val_X"], splits["val_y"] = splits["train_X"], splits["train_y"]
    update = await hyperparameter_tuner({**state, "splits": splits}, Runtime(context=context))
    assert update["status"] == "failed"
    assert update["error"]["node"] == "hyperparameter_tuner"
    assert update["error"]["type"] == "DataValidationError"
    assert "overlap" in update["error"]["message"]
    assert set(update) == {"error", "status"}  # no half result


async def test_tuner_and_training_never_read_the_test_split(context: ModelTrainerContext) -> None:
    state = await _prepared_state(context)
    for key in ("test_X", "test_y"):
        Path(state["splits"][key]["path"]).unlink()
    runtime = Runtime(context=context)

    update = await hyperparameter_tuner(state, runtime)
    assert "error" not in update, update
    assert update["hpo"]["n_trials"] == 3
    state.update(update)
    update = await training_executor(state, runtime)
    assert "error" not in update, update
    state.update(update)

    # the evaluator is the one node that reads them
    update = await model_evaluator(state, runtime)
    assert update["status"] == "failed"
    assert update["error"]["node"] == "model_evaluator"
    assert "test_X" in update["error"]["message"] and "missing" in update["error"]["message"]


async def test_bad_tuner_input_leaves_no_study(tmp_path: Path, context: ModelTrainerContext) -> None:
    log = tmp_path / "optuna.log"
    context.optuna_storage = f"journal:{log}"
    state = await _prepared_state(context)
    cases = [
        {"search_space": {"learning_rate": {"type": "float", "low": 0.0, "high": 0.1, "log": True}}},
        {"n_trials": 0},
        {"pruner": "sometimes"},
        {"cv": 1},
        {"n_trials": None, "timeout": None},
    ]
    for bad in cases:
        update = await hyperparameter_tuner({**state, **bad}, Runtime(context=context))
        assert update.get("status") == "failed", (bad, update)
        assert update["error"]["message"], bad
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(log)))
    assert optuna.get_all_study_names(storage=storage) == []


async def test_resumed_run_continues_the_same_study(tmp_path: Path, hpo_home: Path) -> None:
    """Interrupt the run inside the tuner, then resume the thread: same study, budget respected."""
    log = tmp_path / "optuna.log"
    graph = build_model_trainer_graph(InMemorySaver())
    config = {"configurable": {"thread_id": "resume-1"}}

    def context() -> ModelTrainerContext:  # a resumed run gets its dependencies anew
        return ModelTrainerContext(hpo_home=hpo_home, optuna_storage=f"journal:{log}")

    first = []
    async for event in graph.astream({"dataset_name": "breast_cancer", "n_trials": 5}, config,
                                     context=context(), stream_mode="custom"):
        first.append(event)
        if event["event"] == "trial" and event["n_done"] == 2:
            break  # closing the stream cancels the run mid-study
    snapshot = await graph.aget_state(config)
    assert snapshot.next == ("hyperparameter_tuner",)
    study_name = f"trainer-{snapshot.values['run_id']}"
    assert first[0]["study_name"] == study_name

    second = [e async for e in graph.astream(None, config, context=context(), stream_mode="custom")]
    assert second[0]["event"] == "study_start" and second[0]["study_name"] == study_name
    assert second[0]["n_done"] == 2  # the trials of the first run are kept
    final = (await graph.aget_state(config)).values
    assert final["status"] == "completed", final.get("error")
    assert final["hpo"]["study_name"] == study_name
    assert final["hpo"]["n_completed"] + final["hpo"]["n_pruned"] == 5
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(log)))
    assert optuna.get_all_study_names(storage=storage) == [study_name]
    study = optuna.load_study(study_name=study_name, storage=storage)
    assert not [t for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]


async def test_new_input_on_a_finished_thread_starts_a_new_run(context: ModelTrainerContext) -> None:
    graph = build_model_trainer_graph(InMemorySaver())
    config = {"configurable": {"thread_id": "reuse"}}
    failed = await graph.ainvoke({"dataset_name": "breast_cancer", "algorithm": "nope"}, config, context=context)
    assert failed["status"] == "failed"
    final = await graph.ainvoke({"dataset_name": "breast_cancer", "algorithm": "lightgbm", "tuning_enabled": False},
                                config, context=context)
    assert final["status"] == "completed" and final["error"] is None
    assert final["run_id"] != failed["run_id"]


async def test_tuning_disabled_creates_no_study(tmp_path: Path, context: ModelTrainerContext) -> None:
    log = tmp_path / "optuna.log"
    context.optuna_storage = f"journal:{log}"
    state = await _prepared_state(context, tuning_enabled=False)
    update = await hyperparameter_tuner(state, Runtime(context=context))
    assert update["hpo"]["enabled"] is False
    assert update["merged_params"] == update["default_params"]
    assert update["merged_params"]["random_state"] == 42
    assert not log.exists() or optuna.get_all_study_names(
        storage=optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(log)))) == []


async def test_engine_settings_reach_the_study_through_the_graph(hpo_home: Path) -> None:
    """Issue 8.2/8.4. Before: percentile, threshold and patient pruners were refused through the graph
    (no pruner_options), and enqueue, patience/min_improvement and max_failures were unreachable."""
    storage = optuna.storages.InMemoryStorage()
    context = ModelTrainerContext(hpo_home=hpo_home, optuna_storage=storage)
    mine = {"C": 0.0123}
    state = await _prepared_state(
        context, algorithm="logistic_regression", scheme="holdout", n_trials=30, study_name="settings",
        pruner="percentile", pruner_options={"percentile": 40.0, "n_startup_trials": 2},
        enqueue=[mine], patience=2, min_improvement=0.5, max_failures=5)
    update = await hyperparameter_tuner(state, Runtime(context=context))
    assert "error" not in update, update
    # a gain of 0.5 in roc_auc never happens: the study stops after 2 trials without one
    assert update["hpo"]["stop_reason"] == "patience" and update["hpo"]["n_trials"] < 30
    study = optuna.load_study(study_name="settings", storage=storage)
    assert study.user_attrs["pruner"] == "PercentilePruner"  # the pruner the study ran with
    recorded = study.user_attrs["hpo.recipe"]["study"]
    assert recorded["pruner"] == "percentile" and recorded["pruner_options"] == {"percentile": 40.0,
                                                                                  "n_startup_trials": 2}
    user = [t for t in study.trials if t.user_attrs.get("source") == "user"]
    assert len(user) == 1 and all(user[0].params[k] == v for k, v in mine.items()), user
    assert study.trials[0].user_attrs.get("source") == "defaults" and study.trials[1] is not user[0]


async def test_pruner_and_enqueue_mistakes_are_refused_naming_the_setting(context: ModelTrainerContext) -> None:
    for inputs, fragment in [
        ({"pruner": "threshold"}, "pruner 'threshold' needs option 'lower' and/or 'upper'"),
        ({"pruner": "patient"}, "pruner 'patient' needs option 'patience'"),
        ({"pruner": "median", "pruner_options": {"n_warmup": 3}}, "n_warmup"),
        ({"enqueue": [{"num_leave": 8}]}, "enqueue: lightgbm does not take 'num_leave'"),
        ({"enqueue": {"num_leaves": 8}}, "enqueue must be a list of configurations"),
        ({"patience": 0}, "patience"),

        ({"min_improvement": -1}, "min_improvement must be a number >= 0"),
    ]:
        update = await load_data({"dataset_name": "breast_cancer", "n_trials": 3, **inputs}, Runtime(context=context))
        assert update["status"] == "failed" and fragment in update["error"]["message"], (inputs, update["error"])
    # a param the family takes but the search space does not hold would never be suggested
    state = await _prepared_state(context, algorithm="logistic_regression", enqueue=[{"penalty": "l1"}])
    update = await hyperparameter_tuner(state, Runtime(context=context))
    assert update["status"] == "failed" and "enqueue: 'penalty' not in the search space (C)" in update["error"]["message"]


async def test_narrowing_phases_reach_the_study_through_the_graph(hpo_home: Path) -> None:
    """Issue 12.3: the ``phases`` setting is validated with the others and narrows the graph's study."""
    storage = optuna.storages.InMemoryStorage()
    context = ModelTrainerContext(hpo_home=hpo_home, optuna_storage=storage)
    state = await _prepared_state(context, scheme="holdout", n_trials=8, study_name="phased", phases=2, pruner="none",
                                  warm_start=False)
    update = await hyperparameter_tuner(state, Runtime(context=context))
    assert "error" not in update, update
    phases = update["hpo"]["phases"]
    assert [p["phase"] for p in phases] == [1, 2] and sum(p["n_trials"] for p in phases) == 8
    study = optuna.load_study(study_name="phased", storage=storage)
    assert [r["phase"] for r in study.user_attrs["hpo.phases"]] == [1, 2]
    assert study.user_attrs["hpo.phases"][1]["ranges"] == phases[1]["ranges"]
    for inputs, fragment in [({"phases": 0}, "phases must be an integer from 1"),
                             ({"phases": "2"}, "phases must be an integer from 1"),
                             ({"phases": 2, "algorithm": "auto"}, "phases (narrowing) needs one model family")]:
        update = await load_data({"dataset_name": "breast_cancer", "n_trials": 3, **inputs}, Runtime(context=context))
        assert update["status"] == "failed" and fragment in update["error"]["message"], (inputs, update["error"])


async def test_a_cv_trial_too_costly_for_the_time_falls_back_to_a_holdout_and_a_rerun_keeps_it(
        context: ModelTrainerContext, monkeypatch) -> None:
    # 569 rows in 30 s: the rule picks cv=5x2. Asking for 10,000 trials leaves the probe fit 0.3 ms.
    monkeypatch.setattr("src.mlops.schemes.MIN_CV_TRIALS", 10_000)
    monkeypatch.setattr("src.mlops.schemes.PROBE_MIN_ROWS", 0)  # breast_cancer is below the probed size
    state = await _prepared_state(context, n_trials=3, timeout=30)
    update = await hyperparameter_tuner(state, Runtime(context=context))
    assert "error" not in update, update
    hpo = update["hpo"]
    assert hpo["scheme"] == "holdout" and "cv=5x2 was affordable by size, but a probe fit of the defaults" in hpo["scheme_reason"]
    assert hpo["scheme_probe"]["stopped"] is True and hpo["scheme_probe"]["cv_trials_that_fit"] < 10_000
    kept = context.hpo_home / "runs" / state["run_id"] / "scheme.json"
    assert kept.is_file()
    # the tuner re-executed (a resume) with time for CV keeps the study's scheme instead of probing again
    again = await hyperparameter_tuner({**state, "timeout": 3600}, Runtime(context=context))
    assert again["hpo"]["scheme"] == "holdout" and again["hpo"]["scheme_probe"] == hpo["scheme_probe"]


async def test_a_run_without_a_time_bound_or_with_a_requested_scheme_is_not_probed(
        context: ModelTrainerContext, monkeypatch) -> None:
    monkeypatch.setattr("src.mlops.schemes.PROBE_MIN_ROWS", 0)
    state = await _prepared_state(context, n_trials=3)
    update = await hyperparameter_tuner(state, Runtime(context=context))
    assert update["hpo"]["scheme"] == "cv=5x2" and "scheme_probe" not in update["hpo"]
    state = await _prepared_state(context, n_trials=3, timeout=0.5, scheme="cv=3")
    update = await hyperparameter_tuner(state, Runtime(context=context))
    assert update["hpo"]["scheme"] == "cv=3" and "scheme_probe" not in update["hpo"]
