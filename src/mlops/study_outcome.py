"""Whether a finished study has a result worth training: the rule that a study which tried nothing but
the defaults successfully -- every other trial failed -- is a failed study, not a completed one.

Such a study would hand the final fits the defaults, and report "completed", while its search space
(or its per-trial timeout, or the data) made every proposal fail: e.g. a param the estimator rejects
(``C`` < 0) fails every sampled trial with the same error while the defaults trial completes. The
run must end with that error instead (:class:`~src.mlops.errors.StudyFailedError`; the CLI exits 1).

Counted: finished trials whose source is not ``defaults``, except those failed as "stale",
"cancelled" or "deadline" (stopped by the run, not by their params). The study failed when there is
at least one and all of them FAILED; a pruned or completed one (also from the trial cache) means the
search ran.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from optuna.trial import FrozenTrial, TrialState

from .errors import StudyFailedError
from .types import FAIL_REASON_ATTR, SOURCE_ATTR

__all__ = ["check_search_ran", "error_kind"]

#: fail reasons of trials the run stopped (they say nothing about their params)
_STOPPED = ("stale", "cancelled", "deadline")


def error_kind(reason: str) -> str:
    """The kind of a fail reason: ``exception: TypeError`` for ``exception: TypeError: <message>``,
    ``non-finite value`` for ``non-finite value: nan``, ``timeout`` for ``timeout``."""
    if reason.startswith("exception: "):
        return ": ".join(reason.split(": ")[:2])
    return reason.split(":")[0]


def check_search_ran(study_name: str, trials: Iterable[FrozenTrial]) -> None:
    """Raise :class:`StudyFailedError` when every non-defaults trial of the study failed (see the module
    docstring), naming the error they share (or their errors, most frequent first)."""
    others = [t for t in trials if t.state.is_finished() and t.user_attrs.get(SOURCE_ATTR) != "defaults"
              and not (t.state == TrialState.FAIL and t.user_attrs.get(FAIL_REASON_ATTR) in _STOPPED)]
    if not others or any(t.state != TrialState.FAIL for t in others):
        return
    reasons = [str(t.user_attrs.get(FAIL_REASON_ATTR, "unknown")) for t in others]
    kinds = Counter(error_kind(r) for r in reasons)
    if len(kinds) == 1:
        what = f"all with the same error: {reasons[0].rstrip('.')}"
    else:
        what = "with the errors: " + "; ".join(
            f"{kind} ({n}x, e.g. {next(r for r in reasons if error_kind(r) == kind)})" for kind, n in kinds.most_common(3))
    raise StudyFailedError(
        f"study {study_name!r}: every trial but the defaults failed ({len(others)} of {len(others)}), {what}. "
        "The model would be the defaults alone: fix the cause (a search-space region the model cannot fit, "
        "a per-trial timeout too tight for the data) and run again")
