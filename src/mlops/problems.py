"""The problem types the engine knows, and the one way to read a user's spelling of one.

Every module that names a problem type imports it from here (``datasets`` and ``metrics`` re-export
the constants for callers that import them from there).
"""

from __future__ import annotations

from .errors import ConfigurationError

__all__ = [
    "BINARY",
    "MULTICLASS",
    "REGRESSION",
    "ANOMALY",
    "PROBLEM_TYPES",
    "CLASSIFICATION",
    "normalize_problem_type",
]

BINARY = "binary_classification"
MULTICLASS = "multiclass_classification"
REGRESSION = "regression"
ANOMALY = "anomaly_detection"
PROBLEM_TYPES: tuple[str, ...] = (BINARY, MULTICLASS, REGRESSION, ANOMALY)
#: the problem types whose target is a class label.
CLASSIFICATION: tuple[str, ...] = (BINARY, MULTICLASS)

_ALIASES = {
    "binary": BINARY,
    "binary_classification": BINARY,
    "classification": BINARY,
    "multiclass": MULTICLASS,
    "multiclass_classification": MULTICLASS,
    "multi_class": MULTICLASS,
    "regression": REGRESSION,
    "anomaly": ANOMALY,
    "anomaly_detection": ANOMALY,
    "outlier_detection": ANOMALY,
}


def normalize_problem_type(problem_type: str) -> str:
    """The canonical name of ``problem_type``, given as a canonical name or an alias (``binary``,
    ``multiclass``, ``anomaly``...; case, spaces and dashes do not matter).

    Raises:
        ConfigurationError: an unknown problem type.
    """
    key = str(problem_type).strip().lower().replace("-", "_").replace(" ", "_")
    if key not in _ALIASES:
        aliases = sorted(set(_ALIASES) - set(PROBLEM_TYPES))
        raise ConfigurationError(
            f"problem_type must be one of {', '.join(PROBLEM_TYPES)} (or an alias: {', '.join(aliases)}), "
            f"but got {problem_type!r}"
        )
    return _ALIASES[key]
