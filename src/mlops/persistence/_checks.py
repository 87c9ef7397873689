"""Input checks shared by the history repositories, so both refuse the same inputs with the same message."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..errors import ConfigurationError, StudyNotFoundError
from ..jsonutil import to_jsonable
from ..types import StudyContext

__all__ = [
    "TRIAL_STATES",
    "FINISHED_STATES",
    "STUDY_STATUSES",
    "direction_name",
    "check_name",
    "check_status",
    "check_limit",
    "check_states",
    "check_trials",
    "study_fields",
    "study_not_found",
    "check_artifact",
    "check_lookup",
    "check_cache_entry",
]

TRIAL_STATES = ("RUNNING", "WAITING", "COMPLETE", "PRUNED", "FAIL")
FINISHED_STATES = frozenset({"COMPLETE", "PRUNED", "FAIL"})
STUDY_STATUSES = ("running", "completed", "failed", "interrupted")
_DIRECTIONS = ("minimize", "maximize")


def direction_name(d: Any) -> str:
    """``"minimize"`` or ``"maximize"`` for a direction given as a string or an Optuna ``StudyDirection``."""
    name = getattr(d, "name", None) or str(d)
    name = name.lower()
    if name not in _DIRECTIONS:
        raise ConfigurationError(f"a study direction must be 'minimize' or 'maximize', got {d!r}")
    return name


def check_status(status: Any) -> str:
    if status not in STUDY_STATUSES:
        raise ConfigurationError(f"study status must be one of {STUDY_STATUSES}, got {status!r}")
    return status


def check_name(study_name: Any, what: str = "study_name") -> str:
    if not isinstance(study_name, str) or not study_name:
        raise ConfigurationError(f"{what} must be a non-empty string, got {study_name!r}")
    return study_name


def check_limit(limit: Any, offset: Any = 0) -> None:
    if not isinstance(limit, int) or limit < 1:
        raise ConfigurationError(f"limit must be an int >= 1, got {limit!r}")
    if not isinstance(offset, int) or offset < 0:
        raise ConfigurationError(f"offset must be an int >= 0, got {offset!r}")


def check_states(states: Iterable[str] | None) -> list[str] | None:
    if states is None:
        return None
    out = [str(getattr(s, "name", s)).upper() for s in states]
    bad = [s for s in out if s not in TRIAL_STATES]
    if bad:
        raise ConfigurationError(f"trial states must be among {TRIAL_STATES}, got {bad}")
    return out


def check_trials(trials: Iterable[Any]) -> None:
    """Refuse anything but :class:`~.records.TrialRecord` objects in a batch of trials."""
    from .records import TrialRecord  # records imports this module

    for t in trials:
        if not isinstance(t, TrialRecord):
            raise ConfigurationError(f"upsert_trials takes TrialRecord objects, got {type(t).__name__}")


def study_fields(context: StudyContext, status: str) -> dict[str, Any]:
    check_name(context.study_name)
    check_status(status)
    if not context.directions:
        raise ConfigurationError(f"study {context.study_name!r} needs at least one direction, got {context.directions!r}")
    if context.n_trials is not None and (not isinstance(context.n_trials, int) or context.n_trials < 0):
        raise ConfigurationError(f"n_trials must be an int >= 0 or None, got {context.n_trials!r}")
    directions = tuple(direction_name(d) for d in context.directions)
    return {
        "experiment_name": context.experiment_name or None,
        "algorithm": context.algorithm,
        "problem_type": context.problem_type,
        "directions": directions,
        "metric": context.metric,
        "metric_names": tuple(context.metric_names),
        "sampler_name": context.sampler_name,
        "pruner_name": context.pruner_name,
        "search_space": to_jsonable(context.search_space) if context.search_space is not None else None,
        "n_trials": context.n_trials,
        "dataset_fingerprint": context.dataset_fingerprint,
        "status": status,
        "tags": to_jsonable(dict(context.tags)),
    }


def study_not_found(study_name: str) -> StudyNotFoundError:
    """The error for a study name that is not stored (the same message from both repositories)."""
    return StudyNotFoundError(f"study {study_name!r} is not in the history database; upsert_study() it first")


_HEX = frozenset("0123456789abcdef")


def check_artifact(path: Any, digests: Any) -> dict[str, str]:
    """An absolute artifact folder and a non-empty ``{file name: SHA-256 hex}``; the digests as a dict."""
    if not isinstance(path, str) or not path.startswith("/"):
        raise ConfigurationError(f"an artifact path must be an absolute folder path (a string), got {path!r}")
    if not isinstance(digests, Mapping) or not digests:
        raise ConfigurationError(f"artifact digests must be a non-empty {{file name: sha256}} mapping, got {digests!r}")
    for name, digest in digests.items():
        if not isinstance(name, str) or not name or "/" in name or name in (".", ".."):
            raise ConfigurationError(f"an artifact file name must be a plain file name, got {name!r}")
        if not isinstance(digest, str) or len(digest) != 64 or not set(digest) <= _HEX:
            raise ConfigurationError(f"the digest of {name!r} must be 64 lowercase hex characters (SHA-256), got {digest!r}")
    return dict(digests)


def check_lookup(dataset_fingerprint: Any, schema_fingerprint: Any) -> None:
    """``best_trials`` needs a dataset or a schema fingerprint (or both)."""
    if dataset_fingerprint is None and schema_fingerprint is None:
        raise ConfigurationError("best_trials needs dataset_fingerprint or schema_fingerprint (or both), got neither")
    for what, value in (("dataset_fingerprint", dataset_fingerprint), ("schema_fingerprint", schema_fingerprint)):
        if value is not None and (not isinstance(value, str) or not value):
            raise ConfigurationError(f"{what} must be a non-empty string or None, got {value!r}")


def check_cache_entry(entry: Any) -> Any:
    """A :class:`~src.mlops.trial_cache.CachedTrial` with a SHA-256 key and a finite value."""
    import math

    from ..trial_cache import CachedTrial

    if not isinstance(entry, CachedTrial):
        raise ConfigurationError(f"put_cached_trial takes a CachedTrial, got {type(entry).__name__}")
    if not isinstance(entry.key, str) or len(entry.key) != 64 or not set(entry.key) <= _HEX:
        raise ConfigurationError(f"a cache key must be 64 lowercase hex characters (SHA-256), got {entry.key!r}")
    if isinstance(entry.value, bool) or not isinstance(entry.value, (int, float)) or not math.isfinite(entry.value):
        raise ConfigurationError(f"a cached trial's value must be a finite number, got {entry.value!r}")
    return entry
