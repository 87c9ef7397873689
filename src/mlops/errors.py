"""Exception hierarchy of the HPO engine.

Every error raised on purpose derives from :class:`MLOpsError` and also from the builtin it refines,
so callers can catch either ``MLOpsError`` or e.g. ``ValueError``. Messages name the offending
input, the rule it broke, and what to do instead.
"""

from __future__ import annotations

__all__ = [
    "MLOpsError",
    "SearchSpaceError",
    "UnknownModelError",
    "UnknownMetricError",
    "IncompatibleMetricError",
    "DataValidationError",
    "ConfigurationError",
    "StudyMismatchError",
    "StudyFailedError",
    "DatabaseError",
    "DatabaseUnavailableError",
    "MigrationError",
    "DatabaseTimeoutError",
    "StudyNotFoundError",
]


class MLOpsError(Exception):
    """Base class of every error the engine raises on purpose."""


class SearchSpaceError(MLOpsError, ValueError):
    """A search-space spec breaks a rule (bounds, log, step, choices, conditions, type)."""


class UnknownModelError(MLOpsError, KeyError):
    """An algorithm name that is not in the registry, or not available for the problem type."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0]) if self.args else ""


class UnknownMetricError(MLOpsError, KeyError):
    """A metric name that is not in the registry."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class IncompatibleMetricError(MLOpsError, ValueError):
    """A metric that does not fit the problem type (e.g. rmse for classification)."""


class DataValidationError(MLOpsError, ValueError):
    """Training/validation data that cannot be tuned on (shape, NaN target, one class...)."""


class ConfigurationError(MLOpsError, ValueError):
    """An option of the optimizer, a sampler or a pruner with an invalid value."""


class StudyMismatchError(ConfigurationError):
    """A named study exists with other data, family, problem type, metric, direction or evaluation
    scheme: adding this run's trials would mix scores that cannot be compared."""


class StudyFailedError(MLOpsError, RuntimeError):
    """A study ended without a single COMPLETE trial."""


class DatabaseError(MLOpsError, RuntimeError):
    """A database operation failed (after translation of the driver error)."""


class DatabaseUnavailableError(DatabaseError, ConnectionError):
    """The database could not be reached; the message names host and port, never the password."""


class MigrationError(DatabaseError):
    """A migration cannot be applied (changed after apply, database newer than the code...)."""


class DatabaseTimeoutError(DatabaseError, TimeoutError):
    """A database wait ran out of time (pool acquire, command, lock); the message names the limit."""


class StudyNotFoundError(DatabaseError, KeyError):
    """A study name that is not in the history database."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""
