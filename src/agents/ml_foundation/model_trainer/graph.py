"""The model-trainer graph (SPEC F20):

    load_data -> split_data -> hyperparameter_tuner -> training_executor -> model_evaluator -> final_refit
              -> register_model

After every node a conditional edge ends the run when the node set ``state["error"]``.

>>> graph = build_model_trainer_graph()
>>> final = await graph.ainvoke({"dataset_name": "breast_cancer", "n_trials": 20},
...                             context=ModelTrainerContext(hpo_home=Path(".hpo")))
>>> final["status"], final["test_metrics"], final["model_path"]

With a checkpointer, pass ``config={"configurable": {"thread_id": ...}}`` (one thread per run). After
a crash, ``await graph.ainvoke(None, config, context=...)`` resumes: the failed node runs again from
its start, and the tuner continues the same Optuna study (``trainer-<run_id>``) when the study lives
in a persistent ``optuna_storage``. Use ``durability="sync"`` to be sure the last step is saved.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import RetryPolicy

from src.mlops.errors import DatabaseTimeoutError, DatabaseUnavailableError

from .context import ModelTrainerContext
from .nodes import (
    final_refit,
    hyperparameter_tuner,
    load_data,
    model_evaluator,
    register_model,
    split_data,
    training_executor,
)
from .state import ModelTrainerInput, ModelTrainerState

__all__ = ["build_model_trainer_graph", "NODE_ORDER", "GRAPH_NAME"]

GRAPH_NAME = "model_trainer"
NODE_ORDER: tuple[str, ...] = (
    "load_data",
    "split_data",
    "hyperparameter_tuner",
    "training_executor",
    "model_evaluator",
    "final_refit",
    "register_model",
)

#: The tuner is idempotent (a re-executed tuner continues its named study), so a database that is
#: briefly unreachable is worth a few retries. Nothing else is retried: the other nodes either
#: refuse bad input into the state or hit a bug, and retrying a bug only repeats it.
TUNER_RETRY = RetryPolicy(
    initial_interval=2.0,
    backoff_factor=2.0,
    max_interval=30.0,
    max_attempts=3,
    retry_on=(DatabaseUnavailableError, DatabaseTimeoutError),
)


def _continue_or_end(next_node: str) -> Callable[[ModelTrainerState], str]:
    def route(state: ModelTrainerState) -> str:
        return END if state.get("error") else next_node

    route.__name__ = f"to_{next_node}_or_end"
    return route


def build_model_trainer_graph(checkpointer: Any = None, *, store: Any = None,
                              name: str = GRAPH_NAME) -> CompiledStateGraph:
    """Compile the model-trainer graph.

    Args:
        checkpointer: a LangGraph checkpointer (``InMemorySaver``, ``AsyncPostgresSaver``...) or
            ``None``. The state is plain JSON, so the default serializer works without pickle.
        store: an optional LangGraph store, handed to the nodes' runtime.
        name: the graph's name (in traces and streams).

    No timeout is declared on the nodes: LangGraph timeouts cancel the awaiting coroutine but
    cannot stop a fit running in a worker thread. Bound the tuner with ``timeout``/``trial_timeout``.
    """
    builder = StateGraph(ModelTrainerState, context_schema=ModelTrainerContext, input_schema=ModelTrainerInput)
    builder.add_node("load_data", load_data)
    builder.add_node("split_data", split_data)
    builder.add_node("hyperparameter_tuner", hyperparameter_tuner, retry_policy=TUNER_RETRY)
    builder.add_node("training_executor", training_executor)
    builder.add_node("model_evaluator", model_evaluator)
    builder.add_node("final_refit", final_refit)
    builder.add_node("register_model", register_model)
    builder.add_edge(START, NODE_ORDER[0])
    for node, next_node in zip(NODE_ORDER, NODE_ORDER[1:]):
        builder.add_conditional_edges(node, _continue_or_end(next_node), {next_node: next_node, END: END})
    builder.add_edge(NODE_ORDER[-1], END)
    return builder.compile(checkpointer=checkpointer, store=store, name=name)
