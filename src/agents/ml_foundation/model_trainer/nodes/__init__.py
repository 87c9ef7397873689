"""The nodes of the model-trainer graph, one module each.

Every node is a module-level ``async def node(state, runtime: Runtime[ModelTrainerContext])``
returning only the keys it changes (a ``TypedDict(total=False)`` update from ``state.py``).
Bad input ends the run (``{"error": {...}, "status": "failed"}``); bugs and infrastructure
failures raise.
"""

from .data_loader import load_data
from .data_splitter import split_data
from .final_refit import final_refit
from .hyperparameter_tuner import StreamProgressListener, hyperparameter_tuner
from .model_evaluator import model_evaluator
from .model_registrar import register_model
from .training_executor import training_executor

__all__ = [
    "load_data",
    "split_data",
    "hyperparameter_tuner",
    "training_executor",
    "model_evaluator",
    "final_refit",
    "register_model",
    "StreamProgressListener",
]
