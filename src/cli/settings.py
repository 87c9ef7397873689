"""Run settings from the command line: the graph state's input keys, checked before any work.

Only the options *given* become settings (the graph state's defaults fill in the rest), so a resume
can tell a changed option from one left out (:mod:`.resume`). Every check names the option, not the
state key, and ends with exit code 2 -- a bad option is never reported as an error "in load_data".
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from src.mlops.errors import MLOpsError

from .exits import BadInput

__all__ = ["OPTIONS", "given_settings", "check_settings", "load_search_space", "require_one_source",
           "DEFAULT_N_TRIALS", "with_default_budget"]

#: state key -> (argparse attribute, option)
OPTIONS: dict[str, tuple[str, str]] = {
    "data_path": ("data", "--data"),
    "dataset_name": ("dataset", "--dataset"),
    "target": ("target", "--target"),
    "problem_type": ("problem", "--problem"),
    "time_column": ("time_column", "--time-column"),
    "drop_columns": ("drop_columns", "--drop-columns"),
    "algorithm": ("algorithm", "--algorithm"),
    "metric": ("metric", "--metric"),
    "n_trials": ("n_trials", "--n-trials"),
    "timeout": ("timeout", "--timeout"),
    "trial_timeout": ("trial_timeout", "--trial-timeout"),
    "scheme": ("scheme", "--scheme"),
    "cv": ("cv", "--cv"),
    "sampler": ("sampler", "--sampler"),
    "pruner": ("pruner", "--pruner"),
    "n_jobs": ("n_jobs", "--n-jobs"),
    "seed": ("seed", "--seed"),
    "study_name": ("study_name", "--study-name"),
    "new_study": ("new_study", "--new-study"),
    "pruner_options": ("pruner_options", "--pruner-options"),
    "enqueue": ("enqueue", "--enqueue"),
    "patience": ("patience", "--patience"),
    "min_improvement": ("min_improvement", "--min-improvement"),
    "max_failures": ("max_failures", "--max-failures"),
    "selection": ("selection", "--selection"),
    "ensemble_size": ("ensemble", "--ensemble"),
    "search_space": ("search_space", "--search-space"),
    "time_budget": ("time_budget", "--time-budget"),
    "refit": ("refit", "--refit"),
    "test_size": ("test_size", "--test-size"),
    "val_size": ("val_size", "--val-size"),
    "tuning_enabled": ("no_tuning", "--no-tuning"),
    "warm_start": ("no_warm_start", "--no-warm-start"),
    "warm_start_trials": ("warm_start_trials", "--warm-start-trials"),
    "trial_cache": ("no_cache", "--no-cache"),
    "compare": ("compare", "--compare"),
    "phases": ("phases", "--phases"),
    "pipeline_search": ("pipeline_search", "--pipeline-search"),
    "objectives": ("objectives", "--objectives"),
    "pick_rule": ("pick_rule", "--pick-rule"),
    "pick_tolerance": ("pick_tolerance", "--pick-tolerance"),
}

#: the study size when neither --n-trials, --timeout nor --time-budget bounds it.
DEFAULT_N_TRIALS = 50


def load_search_space(path: str) -> dict[str, Any]:
    """The search space in the JSON file ``path``, parsed and validated (a ``null`` file is refused:
    it would silently mean the family's default space)."""
    from src.mlops.search_space import parse_search_space

    try:
        space = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BadInput(f"--search-space {path!r}: cannot read a JSON search space: {e}") from None
    if not isinstance(space, dict) or not space:
        raise BadInput(f"--search-space {path!r} holds {json.dumps(space)[:60]}, not a search space: give a JSON "
                       "object {\"param\": {\"type\": ..., ...}}; leave the option out for the family's default space")
    try:
        parse_search_space(space)
    except (MLOpsError, ValueError, TypeError) as e:
        raise BadInput(f"--search-space {path!r}: {e}") from None
    return space


def _json_object(text: str, option: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise BadInput(f"{option} {text!r}: not JSON: {e}") from None
    if not isinstance(value, dict):
        raise BadInput(f"{option} {text!r}: give a JSON object {{\"option\": value}}")
    return value


def load_enqueue(path: str) -> list[dict[str, Any]]:
    """The configurations in the JSON file ``path``: a list of ``{param: value}`` (one object is a list of one)."""
    try:
        value = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BadInput(f"--enqueue {path!r}: cannot read a JSON list of configurations: {e}") from None
    value = [value] if isinstance(value, dict) else value
    if not isinstance(value, list) or not value or not all(isinstance(c, dict) and c for c in value):
        raise BadInput(f"--enqueue {path!r} holds {json.dumps(value)[:60]}: give a JSON list of configurations "
                       "[{\"param\": value, ...}, ...]")
    return value


def given_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given on the command line (absent ones are left out)."""
    out: dict[str, Any] = {}
    for key, (attr, _) in OPTIONS.items():
        value = getattr(args, attr, None)
        if value is None:
            continue
        if key == "data_path":
            value = str(Path(value).expanduser().resolve())
        elif key == "search_space":
            value = load_search_space(value)
        elif key == "pruner_options":
            value = _json_object(value, "--pruner-options")
        elif key == "enqueue":
            value = load_enqueue(value)
        elif key == "objectives":
            value = [o.strip() for o in value.split(",")]
        elif key in ("tuning_enabled", "warm_start", "trial_cache"):  # given as --no-...
            value = not value
        out[key] = value
    return out


def require_one_source(settings: Mapping[str, Any]) -> None:
    if ("data_path" in settings) == ("dataset_name" in settings):
        raise BadInput("give exactly one of --data FILE or --dataset NAME")


def with_default_budget(settings: Mapping[str, Any]) -> dict[str, Any]:
    """``settings`` of a new run with the study's bound made explicit: ``n_trials`` is None when time
    alone bounds the study (``--timeout``/``--time-budget``), 50 when nothing does."""
    out = dict(settings)
    if "n_trials" not in out:
        out["n_trials"] = None if ("timeout" in out or "time_budget" in out) else DEFAULT_N_TRIALS
    return out


#: a state key used as a name in a message ("n_trials must be", "cv=3"), not a word inside a value
_KEY = re.compile(r"(?<!['\"\w-])(" + "|".join(sorted(OPTIONS, key=len, reverse=True)) + r")(?=\s*(?:must|=|\+|is\b|<|>))")


def check_settings(settings: Mapping[str, Any]) -> None:
    """The graph's own checks of the tuning settings (names, combinations), with options named."""
    from src.agents.ml_foundation.model_trainer.settings import (
        setting,
        validate_settings,
    )
    from src.mlops.factories import SamplerFactory

    try:
        validate_settings(settings)
    except (MLOpsError, ValueError, KeyError) as e:
        text = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        raise BadInput(_KEY.sub(lambda m: OPTIONS[m.group(1)][1], str(text))) from None
    sampler = setting(settings, "sampler")
    if str(sampler).strip().lower() != "grid":  # a grid needs the family's space, known after loading
        try:
            SamplerFactory.create(sampler)
        except (MLOpsError, ValueError) as e:
            raise BadInput(f"--sampler {sampler!r}: {e}") from None
