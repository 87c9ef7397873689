"""``hpo train``: the whole model-trainer graph (load, split, tune, train, test, refit, register).

With the database (the default) every step is checkpointed (``durability="sync"``) under a thread
id, printed when the run stops early, and ``--thread-id`` resumes an unfinished thread from the
node it was in (:mod:`..resume` says what a resume honours). ``--no-db`` runs in memory only.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from typing import Any

from ..adapters import home_directory, process_start, run_services
from ..exits import BadInput
from ..lifecycle import RunStopper
from ..progress import Progress
from ..resume import plan_resume
from ..settings import check_settings, given_settings, require_one_source, with_default_budget

__all__ = ["cmd_train", "over_budget"]


def over_budget(budget: Any, timings: dict[str, float]) -> str | None:
    """A warning when the run ended later than ``--time-budget`` allows (budget + max(3 s, 5 %)),
    naming the step that took longest: the run still completed, but it did not keep its budget (a
    first run on a new machine spends minutes compiling packages and creating the database)."""
    from src.agents.ml_foundation.model_trainer.budget import overrun_tolerance

    total = timings.get("total")
    if not isinstance(budget, (int, float)) or not isinstance(total, (int, float)):
        return None
    if total <= budget + overrun_tolerance(budget):
        return None
    step, seconds = max(((k, v) for k, v in timings.items() if k != "total"), key=lambda kv: kv[1])
    why = " (the first run on a machine compiles packages and creates the database)" if step == "startup" else ""
    return (f"the run took {total:.1f} s, over its --time-budget of {budget:g} s; the longest step was "
            f"{step}, {seconds:.1f} s{why}")


async def cmd_train(args: argparse.Namespace, stopper: RunStopper, *, outage_s: float) -> dict[str, Any]:
    from langgraph.checkpoint.memory import InMemorySaver

    from src.agents.ml_foundation.model_trainer import NODE_ORDER, ModelTrainerContext, build_model_trainer_graph
    from src.agents.ml_foundation.model_trainer.state import ModelTrainerInput

    settings = given_settings(args)
    if args.thread_id and args.no_db:
        raise BadInput("--thread-id needs the database (runs are checkpointed there); drop --no-db")
    if not args.thread_id:  # a new run: everything can be checked before any server starts
        require_one_source(settings)
        check_settings(with_default_budget(settings))
    started_at = process_start()
    home = home_directory()
    thread_id = args.thread_id or uuid.uuid4().hex[:12]
    config = {"configurable": {"thread_id": thread_id}}
    stopper.context.update(command="train", thread_id=thread_id, node=NODE_ORDER[0],
                           saved="yes" if not args.no_db else "no")
    async with run_services(home, stopper, use_db=not args.no_db, use_mlflow=not args.no_mlflow,
                            checkpoints=True, outage_s=outage_s, saves_model=True) as services:
        graph = build_model_trainer_graph(checkpointer=services.checkpointer or InMemorySaver())
        context = ModelTrainerContext(hpo_home=home, optuna_storage=services.optuna_storage,
                                      listeners=services.listeners, tracker=services.tracker,
                                      history=services.history, started_at=started_at)
        stream_input: dict[str, Any] | None
        snapshot = await graph.aget_state(config) if args.thread_id else None
        if snapshot is not None and snapshot.values:
            if not snapshot.next:
                raise BadInput(f"--thread-id {thread_id}: that run already finished with status "
                               f"{snapshot.values.get('status')!r}; start a new run without --thread-id")
            plan = plan_resume(thread_id, snapshot.values, snapshot.next, settings)
            merged = {**snapshot.values, **{k: new for k, (_, new) in plan.changes.items()}}
            check_settings(merged)
            print(plan.describe(), file=sys.stderr)
            stopper.context.update(node=plan.next_node, run_id=str(plan.run_id or ""))
            if plan.restart_inputs:  # nothing finished yet: start over from the saved inputs
                stream_input = {k: v for k, v in merged.items() if k in ModelTrainerInput.__annotations__}
            else:
                if plan.changes:
                    await graph.aupdate_state(config, {k: new for k, (_, new) in plan.changes.items()},
                                              as_node=plan.previous_node)
                stream_input = None
            n_trials, timeout = merged.get("n_trials"), merged.get("timeout")
        else:
            if args.thread_id and "data_path" not in settings and "dataset_name" not in settings:
                raise BadInput(f"--thread-id {thread_id}: no run with that thread id in {home} (a run is "
                               "resumed from the home it ran in: set HPO_HOME, or run from its directory); "
                               "to start a new run under that id, give --data FILE or --dataset NAME")
            require_one_source(settings)
            stream_input = with_default_budget(settings)
            check_settings(stream_input)
            n_trials, timeout = stream_input.get("n_trials"), stream_input.get("timeout")
        progress = Progress(n_trials=n_trials, timeout=timeout, enabled=not args.quiet)
        final: dict[str, Any] = {}
        timings: dict[str, float] = {"startup": round(time.time() - started_at, 2)}
        try:
            mark = time.time()
            # durability="sync": every checkpoint is on disk before the next node starts, so a
            # stopped or killed run resumes from the node it was in (the tuner continues its study).
            async for mode, chunk in graph.astream(stream_input, config, context=context,
                                                   stream_mode=["custom", "values", "updates"], durability="sync"):
                if mode == "custom" and isinstance(chunk, dict):
                    progress.update(chunk)
                elif mode == "values":
                    final = chunk
                    if final.get("run_id"):
                        stopper.context["run_id"] = str(final["run_id"])
                elif mode == "updates" and isinstance(chunk, dict):
                    now = time.time()
                    for node in chunk:
                        timings[node] = round(timings.get(node, 0.0) + now - mark, 2)
                        if node in NODE_ORDER and NODE_ORDER.index(node) + 1 < len(NODE_ORDER):
                            stopper.context["node"] = NODE_ORDER[NODE_ORDER.index(node) + 1]
                    mark = now
            services.final_status = final.get("status")
        finally:
            progress.close()
    final = dict(final)
    timings["close"] = services.closing_seconds
    timings["total"] = round(time.time() - started_at, 2)
    final["timings"] = timings
    overrun = over_budget(final.get("time_budget"), timings)
    if overrun:
        final["warnings"] = [*(final.get("warnings") or []), overrun]
    final["thread_id"] = thread_id
    return final
