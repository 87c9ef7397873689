"""What a resume honours: ``hpo train --thread-id T`` on a run that did not finish.

A resume continues the *same* run: its data, splits, model family, metric, evaluation scheme,
search space, sampler, pruner, seed, refit and study stay what they were, so an option given for
one of them must equal the run's value (or be left out); a different value is refused, naming the
option and both values. The budget and parallelism may change, and are honoured:

* ``--n-trials N``: the study's size (a resumed study runs only what is missing to reach N);
* ``--timeout S``: the study gets S more seconds from the resume;
* ``--time-budget S``: the whole resumed command gets S seconds;
* ``--n-jobs``, ``--trial-timeout``: for the trials still to run;
* ``--patience``, ``--min-improvement``, ``--max-failures``: the study's stopping rules from the resume.

Process options (``--quiet``, ``--no-mlflow``, ``--output-json``) apply to the new process as usual.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from src.agents.ml_foundation.model_trainer import NODE_ORDER
from src.agents.ml_foundation.model_trainer.settings import setting

from .exits import BadInput

__all__ = ["HONOURED", "FIXED", "ResumePlan", "plan_resume"]

#: state key -> option: changes a resume applies.
HONOURED: dict[str, str] = {
    "n_trials": "--n-trials", "timeout": "--timeout", "time_budget": "--time-budget", "n_jobs": "--n-jobs",
    "trial_timeout": "--trial-timeout", "patience": "--patience", "min_improvement": "--min-improvement",
    "max_failures": "--max-failures",
}
#: state key -> option: what defines the run; a resume refuses a different value.
FIXED: dict[str, str] = {
    "data_path": "--data", "dataset_name": "--dataset", "target": "--target", "problem_type": "--problem",
    "time_column": "--time-column", "drop_columns": "--drop-columns", "algorithm": "--algorithm", "metric": "--metric",
    "scheme": "--scheme",
    "cv": "--cv", "sampler": "--sampler", "pruner": "--pruner", "seed": "--seed", "study_name": "--study-name",
    "search_space": "--search-space", "test_size": "--test-size", "val_size": "--val-size", "refit": "--refit",
    "tuning_enabled": "--no-tuning", "pruner_options": "--pruner-options", "enqueue": "--enqueue",
    "new_study": "--new-study", "selection": "--selection", "warm_start": "--no-warm-start",
    "warm_start_trials": "--warm-start-trials", "trial_cache": "--no-cache", "compare": "--compare",
    "phases": "--phases",
    "pipeline_search": "--pipeline-search",
    "objectives": "--objectives", "pick_rule": "--pick-rule", "pick_tolerance": "--pick-tolerance",
}


def _lower(v: Any) -> Any:
    return v.strip().lower().replace("-", "_") if isinstance(v, str) else v


def _algorithm(v: Any) -> Any:
    from src.mlops.family_search import canonical_algorithm

    try:
        return canonical_algorithm(v)
    except Exception:  # noqa: BLE001 - an unknown name is compared as written
        return _lower(v)


def _metric(v: Any) -> Any:
    from src.mlops.metrics import get_metric

    try:
        return get_metric(v).name
    except Exception:  # noqa: BLE001
        return _lower(v)


def _problem(v: Any) -> Any:
    from src.mlops.problems import normalize_problem_type

    try:
        return normalize_problem_type(v)
    except Exception:  # noqa: BLE001
        return _lower(v)


def _path(v: Any) -> Any:
    return str(Path(v).expanduser().resolve()) if isinstance(v, str) else v


def _number(v: Any) -> Any:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v


_CANONICAL: dict[str, Callable[[Any], Any]] = {
    "data_path": _path, "dataset_name": _lower, "algorithm": _algorithm, "metric": _metric, "problem_type": _problem,
    "scheme": _lower, "sampler": _lower, "pruner": _lower, "test_size": _number, "val_size": _number,
}


def _same(key: str, old: Any, new: Any) -> bool:
    canon = _CANONICAL.get(key, lambda v: v)
    a, b = canon(old), canon(new)
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-12)
    return a == b


_SOURCES = ("data_path", "dataset_name")


def _data_source(values: Mapping[str, Any]) -> str:
    """The run's data as its option: ``--data '/x.csv'``, ``--dataset 'wine'`` or in-memory data."""
    for key in _SOURCES:
        if values.get(key) is not None:
            return f"{FIXED[key]} {values[key]!r}"
    return "in-memory data"


def _show(key: str, value: Any) -> str:
    if key in ("tuning_enabled", "warm_start", "trial_cache"):
        return "off" if value is False else "on"
    if key == "search_space" and isinstance(value, Mapping):
        return f"a space of {len(value)} params ({', '.join(sorted(map(str, value))[:5])})"
    return "(not set)" if value is None else repr(value)


@dataclass
class ResumePlan:
    """How to continue an unfinished thread."""

    thread_id: str
    run_id: str | None
    #: the node the run stopped in (it runs again from its start)
    next_node: str
    #: key -> (old, new) of the honoured options that change
    changes: dict[str, tuple[Any, Any]] = field(default_factory=dict)

    @property
    def restart_inputs(self) -> bool:
        """Nothing finished yet (stopped in the first node): start over from the saved inputs."""
        return self.next_node == NODE_ORDER[0]

    @property
    def previous_node(self) -> str:
        """The last node that finished: the changes are written as its update."""
        return NODE_ORDER[NODE_ORDER.index(self.next_node) - 1]

    def describe(self) -> str:
        """One line for stderr: what resumes and what changes."""
        line = f"  resuming thread {self.thread_id}" + (f" (run {self.run_id})" if self.run_id else "")
        line += f" at {self.next_node}"
        if self.changes:
            line += "; honoured: " + ", ".join(
                f"{HONOURED[k]} {_show(k, new)} (was {_show(k, old)})" for k, (old, new) in self.changes.items())
        return line


def plan_resume(thread_id: str, values: Mapping[str, Any], next_nodes: Sequence[str],
                given: Mapping[str, Any]) -> ResumePlan:
    """The plan to resume ``thread_id`` (checkpointed ``values``, pending ``next_nodes``) with the
    options ``given`` on this command line (state keys; options left out are absent).

    Raises :class:`BadInput` naming every option that would change what defines the run.
    """
    next_node = next((n for n in next_nodes if n in NODE_ORDER), None)
    if next_node is None:
        raise BadInput(f"--thread-id {thread_id}: the run cannot be resumed from {list(next_nodes)!r}; "
                       "start a new run without --thread-id")
    conflicts = []
    for key, option in FIXED.items():
        if key not in given:
            continue
        old = setting(values, key)
        if not _same(key, old, given[key]):
            has = _data_source(values) if key in _SOURCES else f"{option} {_show(key, old)}"
            conflicts.append(f"{option} {_show(key, given[key])} (the run has {has})")
    if conflicts:
        honoured = ", ".join(HONOURED.values())
        raise BadInput(
            f"--thread-id {thread_id} resumes an unfinished run, which keeps its data, model and tuning settings; "
            f"this command changes {'; '.join(conflicts)}. A resume honours only {honoured}: drop the other "
            "options (or give the run's values), or start a new run without --thread-id"
        )
    changes = {}
    for key in HONOURED:
        if key in given and not _same(key, setting(values, key), given[key]):
            changes[key] = (setting(values, key), given[key])
    return ResumePlan(thread_id=thread_id, run_id=values.get("run_id"), next_node=next_node, changes=changes)
