"""The model-trainer agent: a LangGraph graph that loads data, splits it, tunes a model on
validation data only, trains and evaluates it, and registers it (SPEC F20-F22).

>>> from src.agents.ml_foundation.model_trainer import build_model_trainer_graph, ModelTrainerContext
>>> graph = build_model_trainer_graph()
>>> final = await graph.ainvoke({"dataset_name": "breast_cancer", "n_trials": 20}, context=ModelTrainerContext())
"""

from .artifacts import (
    SavedArtifact,
    load_model_artifact,
    load_recorded_artifact,
    load_run_artifact,
    read_artifact_metadata,
    recorded_digests,
    save_model_artifact,
)
from .context import ModelTrainerContext, default_hpo_home
from .graph import NODE_ORDER, build_model_trainer_graph
from .nodes import StreamProgressListener
from .state import (
    ErrorInfo,
    HPOSummary,
    ModelTrainerInput,
    ModelTrainerState,
    SplitRefs,
)

__all__ = [
    "build_model_trainer_graph",
    "ModelTrainerContext",
    "ModelTrainerState",
    "ModelTrainerInput",
    "ErrorInfo",
    "HPOSummary",
    "SplitRefs",
    "NODE_ORDER",
    "StreamProgressListener",
    "default_hpo_home",
    "save_model_artifact",
    "load_model_artifact",
    "load_run_artifact",
    "load_recorded_artifact",
    "recorded_digests",
    "SavedArtifact",
    "read_artifact_metadata",
]
