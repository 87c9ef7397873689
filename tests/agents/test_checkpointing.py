"""The graph with checkpointers: in memory and PostgreSQL (AsyncPostgresSaver), without pickle."""

from __future__ import annotations

import json

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from psycopg import AsyncConnection
from psycopg.rows import dict_row

from src.agents.ml_foundation.model_trainer import NODE_ORDER, ModelTrainerContext, build_model_trainer_graph

INPUT = {"dataset_name": "breast_cancer", "n_trials": 3}


async def test_in_memory_checkpointer(context: ModelTrainerContext) -> None:
    saver = InMemorySaver(serde=JsonPlusSerializer(pickle_fallback=False))
    graph = build_model_trainer_graph(saver)
    config = {"configurable": {"thread_id": "mem-1"}}
    final = await graph.ainvoke(INPUT, config, context=context, durability="sync")
    assert final["status"] == "completed", final.get("error")
    snapshot = await graph.aget_state(config)
    assert snapshot.next == ()
    assert snapshot.values == final
    history = [s async for s in graph.aget_state_history(config)]
    ran = [s.next[0] for s in reversed(history) if s.next and s.next[0] != "__start__"]
    assert tuple(ran) == NODE_ORDER  # one checkpoint before every node


async def _connect(uri: str) -> AsyncConnection:
    return await AsyncConnection.connect(uri, autocommit=True, row_factory=dict_row, prepare_threshold=0)


async def test_postgres_checkpointer_round_trips_state_without_pickle(
        pg_uri: str, context: ModelTrainerContext) -> None:
    config = {"configurable": {"thread_id": "pg-1"}}
    async with await _connect(pg_uri) as conn:
        saver = AsyncPostgresSaver(conn)  # default serializer: pickle fallback off
        assert getattr(saver.serde, "pickle_fallback", False) is False
        await saver.setup()
        graph = build_model_trainer_graph(saver)
        final = await graph.ainvoke(INPUT, config, context=context, durability="sync")
    assert final["status"] == "completed", final.get("error")

    # a new connection and a new graph read the same state back
    async with await _connect(pg_uri) as conn:
        graph = build_model_trainer_graph(AsyncPostgresSaver(conn))
        snapshot = await graph.aget_state(config)
        assert snapshot.next == ()
        assert snapshot.values == final
        assert json.loads(json.dumps(snapshot.values)) == final
        async with conn.cursor() as cur:
            for table in ("checkpoint_blobs", "checkpoint_writes"):
                await cur.execute(f"SELECT count(*) AS n, count(*) FILTER (WHERE type = 'pickle') AS pickled FROM {table}")
                row = await cur.fetchone()
                assert row["n"] > 0 and row["pickled"] == 0, table
