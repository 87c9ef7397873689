"""Run-scoped dependencies of the model-trainer graph (LangGraph ``context_schema``).

Adapters — the Optuna storage URL, trial listeners (history recorder, progress bar), the MLflow
tracker — are constructed by the caller (the CLI, a test, an embedding application) and passed
in through :class:`ModelTrainerContext`; nodes never build pools or clients. The caller also owns
their lifecycle (e.g. ``await tracker.aclose()`` after the run).

>>> graph = build_model_trainer_graph()
>>> ctx = ModelTrainerContext(hpo_home=Path("/tmp/hpo"), tracker=MLflowTracker(...))
>>> await graph.ainvoke({"dataset_name": "breast_cancer", "n_trials": 20}, context=ctx)

Nothing in the context is checkpointed, so it may hold objects (a DataFrame in ``data``).
A resumed run needs the same context again (same ``hpo_home`` and ``optuna_storage``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langgraph.runtime import Runtime

from src.mlops import resolve_hpo_home
from src.mlops.errors import ConfigurationError

if TYPE_CHECKING:
    from src.mlops.persistence import HistoryRepository
    from src.mlops.tracking import MLflowTracker
    from src.mlops.types import TrialListener

__all__ = ["ModelTrainerContext", "default_hpo_home", "get_context", "run_directory"]


def default_hpo_home() -> Path:
    """``$HPO_HOME`` or ``./.hpo`` (relative to the current directory), as an absolute path."""
    return resolve_hpo_home()


@dataclass
class ModelTrainerContext:
    """Dependencies and knobs of one graph run.

    Attributes:
        hpo_home: base directory; a run writes its data and models under
            ``<hpo_home>/runs/<run_id>/`` (``data/``, ``model/``, ``defaults_model/``).
        optuna_storage: where the Optuna study lives: ``None`` (in memory, no resume), a URL
            (``postgresql://...`` for the project's PostgreSQL journal storage, ``sqlite:///...``,
            ``journal:/path/file.log``) or an Optuna storage object.
        listeners: extra :class:`~src.mlops.types.TrialListener` objects (history recorder,
            progress bar...) notified of every trial.
        tracker: an :class:`~src.mlops.tracking.MLflowTracker` (or ``None``: no MLflow). The tuner
            adds it to the listeners (parent run + nested trial runs); ``register_model`` logs the
            final model under the parent run and ends it. One tracker per run.
        data: in-memory input instead of ``data_path``/``dataset_name``: a DataFrame holding the
            target column (``state["target"]``), or a tuple ``(X, y)`` of a DataFrame/array and a
            Series/array. ``load_data`` stores it as Parquet under the run directory at once.
        experiment_name: experiment recorded with the study (history database).
        early_stopping_rounds: boosting rounds without improvement on validation before a fit stops
            (trials and the final fit alike); ``None`` disables early stopping.
        registered_model_name: also register the MLflow model under this name.
        history: the history database (a :class:`~src.mlops.persistence.HistoryRepository`);
            ``register_model`` records there the digests of the model artifacts the run wrote, so
            ``load_recorded_artifact`` can check a folder later (``None``: the state keeps them only).
        started_at: epoch seconds at which the run started (default: when the context was made);
            ``state["time_budget"]`` counts from here. The CLI passes its process start.
    """

    hpo_home: Path = field(default_factory=default_hpo_home)
    optuna_storage: Any = None
    listeners: Sequence[TrialListener] = ()
    tracker: MLflowTracker | None = None
    data: Any = None
    experiment_name: str | None = None
    early_stopping_rounds: int | None = 50
    registered_model_name: str | None = None
    history: HistoryRepository | None = None
    started_at: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        self.hpo_home = Path(self.hpo_home).expanduser().resolve()
        self.listeners = tuple(self.listeners or ())
        value = self.early_stopping_rounds
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ConfigurationError(f"early_stopping_rounds must be a positive integer or None, but got {value!r}")


def get_context(runtime: Runtime[ModelTrainerContext] | None) -> ModelTrainerContext:
    """The run's context; a default one when the graph was invoked without ``context=``."""
    ctx = None if runtime is None else runtime.context
    if ctx is None:
        return ModelTrainerContext()
    if isinstance(ctx, dict):  # LangGraph coerces dicts already; direct node calls may not
        return ModelTrainerContext(**ctx)
    return ctx


def run_directory(context: ModelTrainerContext, run_id: str) -> Path:
    """``<hpo_home>/runs/<run_id>`` (not created here)."""
    return context.hpo_home / "runs" / run_id
