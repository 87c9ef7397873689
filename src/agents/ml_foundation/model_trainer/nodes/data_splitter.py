"""``split_data``: disjoint train / validation / test splits, stored by reference.

Stratified per class for classification (classes with fewer than 3 rows stay in training only),
random for regression, time-ordered with ``state["time_column"]`` (oldest rows train, newest test).
The six frames go to ``<hpo_home>/runs/<run_id>/data/splits/`` as Parquet; the state gets their
references. The split is deterministic (``seed``), so a re-executed node writes the same files.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd
from langgraph.runtime import Runtime

from src.mlops.problems import ANOMALY
from src.mlops.splits import load_frame_ref, save_frame_ref, split_dataset

from ..context import ModelTrainerContext, get_context, run_directory
from ..settings import setting
from ..state import ModelTrainerState, SplitDataUpdate, run_blocking

__all__ = ["split_data", "NODE", "SPLIT_KEYS"]

NODE = "split_data"
SPLIT_KEYS = ("train_X", "train_y", "val_X", "val_y", "test_X", "test_y")


async def split_data(state: ModelTrainerState, runtime: Runtime[ModelTrainerContext]) -> SplitDataUpdate:
    """Split the prepared data into train/validation/test and store the six references."""
    ctx = get_context(runtime)
    return await run_blocking(NODE, _split, state, ctx)  # type: ignore[no-any-return]


def _check_disjoint(parts: Mapping[str, pd.DataFrame]) -> None:
    names = list(parts)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            common = parts[a].index.intersection(parts[b].index)
            if len(common):
                # split_dataset guarantees disjoint positions and load_data unique labels: a bug.
                raise AssertionError(f"splits {a} and {b} share {len(common)} index labels, e.g. {list(common[:5])}")


def _split(state: Mapping[str, Any], ctx: ModelTrainerContext) -> SplitDataUpdate:
    refs = state["data_ref"]
    X, y = load_frame_ref(refs["X"]), load_frame_ref(refs["y"])
    problem_type = state["problem_type"]
    time_column = setting(state, "time_column")
    splits = split_dataset(
        X, y,
        test_size=setting(state, "test_size"),
        val_size=setting(state, "val_size"),
        seed=setting(state, "seed"),
        # anomalies are rare: keep their share in every split (not possible in time order)
        stratify=True if problem_type == ANOMALY and time_column is None else None,
        time_column=time_column,
        problem_type=problem_type,
        rare_classes="train",
    )
    _check_disjoint({"train": splits.X_train, "val": splits.X_val, "test": splits.X_test})
    directory = run_directory(ctx, state["run_id"]) / "data" / "splits"
    frames = dict(zip(SPLIT_KEYS, splits.as_tuple()))
    saved = {key: save_frame_ref(frame, directory, key) for key, frame in frames.items()}
    notes = list(state.get("data_notes") or [])
    notes.append(f"split: {splits.strategy}, sizes {splits.sizes}")
    notes.extend(str(n) for n in splits.notes)
    return {
        "splits": saved,  # type: ignore[typeddict-item]
        "split_sizes": {k: int(v) for k, v in splits.sizes.items()},
        "split_strategy": splits.strategy,
        "data_notes": notes,
    }
