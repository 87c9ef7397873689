"""How trials are scored: the evaluation scheme and the rule that picks it from the data.

A study selects the configuration with the best score, so the score's noise is what it ends up
rewarding: on a validation split of a few hundred rows, hundreds of trials find the configuration
that fits *that split* best, not the one that generalizes. Averaging over k folds (and over r
reshuffles of them) shrinks that noise at k (x r) times the cost per trial. The rule below spends
that cost where the noise is large and the fits are cheap (small tables), and keeps a single holdout
where one validation split is already large and each fit is expensive.

The rule (``choose_scheme``), on the rows tuning may see (train + validation), ``n``, and the cost
of a fit, ``cells = n x features (x classes for multiclass: one tree per class and round)``:

1. time-ordered data (a time column): ``timeseries-cv=5`` (each fold trains on earlier rows and
   scores on later ones) when ``n <= CV_MAX_ROWS`` and the folds are affordable (4.), else the
   time-ordered holdout;
2. a class with fewer than 3 rows among them: holdout (folds would miss the class);
3. ``n <= REPEATED_CV_MAX_ROWS`` and, with a time budget of ``B`` seconds,
   ``cells <= REPEATED_CV_CELLS_PER_SECOND * B``: ``cv=5x2`` (5-fold CV, repeated with 2 shuffles);
4. ``n <= CV_MAX_ROWS`` and, with a time budget, ``cells <= CV_CELLS_PER_SECOND * B`` (k fits per
   trial still leave the study enough trials): ``cv=5``;
5. otherwise: holdout (fit on train, score on validation).

Without a time budget (a trial count only) the cost tests are skipped. The time test for ``cv=5``
is a coarse first cut, 10,000 cells per second of budget (FLAML's ``eval_method="auto"`` allows CV
while rows x columns < 10M per hour, ~2,800 per second): the probe below measures what rows x columns
cannot see. A first version used 2,500 per second; on the real-data benchmark it sent psych::bfi,
openintro::ames and openintro::loans_full_schema to the holdout although their trials were cheap
(100-190 holdout trials in 50 s), and forcing ``cv=5`` there won 4 of 6 (table, seed) pairs.

Rows x columns do not see how many boosting rounds the data wants (a smooth regression target can
take 2,000 rounds where a noisy one stops at 50). So when the rule picks CV under a time budget, a
probe measures it (:func:`afford_scheme`): one holdout fit of the family's defaults (the cheap end
of a study's trials: the defaults trial itself), stopped once it has taken more than its share; when
the defaults use every boosting round, the data wants more and trials are taken to cost
:data:`ROUNDS_FACTOR` times as much. If fewer than :data:`MIN_CV_TRIALS` trials would fit in the
study's time under the folds,
the study uses the holdout instead, and the summary says so with the measured figures. Tables of
at most :data:`PROBE_MIN_ROWS` rows are not probed: their folds stay. (A first
version probed the first portfolio configuration, up to 2,000 rounds, and a second the defaults
asking for 20 trials: on the real-data benchmark both sent CV studies that had run 40-210 trials in
50 s to the holdout.)

The thresholds were set on the real-data benchmark (``bench/bench_real.py``; see README).
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .errors import ConfigurationError

__all__ = [
    "EvaluationScheme",
    "choose_scheme",
    "parse_scheme",
    "SCHEME_CHOICES",
    "CV_MAX_ROWS",
    "REPEATED_CV_MAX_ROWS",
    "CV_CELLS_PER_SECOND",
    "REPEATED_CV_CELLS_PER_SECOND",
    "MIN_CV_TRIALS",
    "ROUNDS_FACTOR",
    "PROBE_MIN_ROWS",
    "afford_scheme",
]

#: CV only up to this many rows (train + validation).
CV_MAX_ROWS = 20_000
#: repeated CV (5 folds x 2 shuffles) up to this many rows.
REPEATED_CV_MAX_ROWS = 2_000
#: with a time budget, CV only while a fit's cells stay under this many per second of budget.
CV_CELLS_PER_SECOND = 10_000
#: with a time budget, repeated CV only while a fit's cells stay under this many per second of budget.
REPEATED_CV_CELLS_PER_SECOND = 500
#: under a time budget, an automatic CV scheme is kept only if this many trials of the probe's cost fit in
#: the study's time (the defaults' cost: pruned trials stop after a fold or two, so a CV study's average
#: trial costs about the defaults unless the data wants many more rounds, see ROUNDS_FACTOR).
MIN_CV_TRIALS = 10
#: tables up to this many rows (train + validation) keep the rule's folds unprobed: their fits are cheap
#: and a validation split of a few hundred rows is noise however many trials it scores.
PROBE_MIN_ROWS = REPEATED_CV_MAX_ROWS
#: a boosting probe whose defaults used every round: the study's trials are taken to cost this many times more.
ROUNDS_FACTOR = 5.0
#: the folds of an automatic CV scheme.
DEFAULT_FOLDS = 5
#: what a user may ask for: ``auto``, ``holdout``, ``cv``, ``cv=K``, ``cv=KxR``, ``timeseries``,
#: ``timeseries-cv=K``.
SCHEME_CHOICES = "auto | holdout | cv[=K[xR]] | timeseries[-cv=K]"

_CV_RE = re.compile(r"^(timeseries-)?cv(?:=(\d+)(?:x(\d+))?)?$")


@dataclass(frozen=True)
class EvaluationScheme:
    """How each trial is scored.

    ``kind``: ``holdout`` (fit on train, score on validation), ``cv`` (k folds of train +
    validation, ``repeats`` shuffles) or ``timeseries`` (k time-ordered folds). ``reason`` says why
    it was chosen (printed in the run summary).
    """

    kind: str
    folds: int | None = None
    repeats: int = 1
    reason: str = ""

    def __post_init__(self) -> None:
        if self.kind not in ("holdout", "cv", "timeseries"):
            raise ConfigurationError(f"scheme kind must be 'holdout', 'cv' or 'timeseries', got {self.kind!r}")
        if self.kind == "holdout":
            if self.folds is not None or self.repeats != 1:
                raise ConfigurationError("a holdout scheme has no folds or repeats")
            return
        if isinstance(self.folds, bool) or not isinstance(self.folds, int) or self.folds < 2:
            raise ConfigurationError(f"CV needs an integer number of folds >= 2, got {self.folds!r}")
        if isinstance(self.repeats, bool) or not isinstance(self.repeats, int) or self.repeats < 1:
            raise ConfigurationError(f"repeats must be an integer >= 1, got {self.repeats!r}")
        if self.kind == "timeseries" and self.repeats != 1:
            raise ConfigurationError("time-series folds cannot be repeated (their order is fixed)")

    @property
    def uses_cv(self) -> bool:
        return self.kind != "holdout"

    @property
    def label(self) -> str:
        """``holdout``, ``cv=5``, ``cv=5x2`` or ``timeseries-cv=5``."""
        if self.kind == "holdout":
            return "holdout"
        prefix = "timeseries-" if self.kind == "timeseries" else ""
        return f"{prefix}cv={self.folds}" + (f"x{self.repeats}" if self.repeats > 1 else "")

    def describe(self) -> str:
        """One line for a run summary: the scheme and why."""
        what = {
            "holdout": "fit on train, score on validation",
            "cv": f"{self.folds}-fold CV on train+validation" + (f", {self.repeats} shuffles" if self.repeats > 1 else ""),
            "timeseries": f"{self.folds} time-ordered folds of train+validation",
        }[self.kind]
        return f"{self.label} ({what})" + (f": {self.reason}" if self.reason else "")

    def objective_options(self) -> dict[str, Any]:
        """Keyword options of :class:`~src.mlops.objectives.ModelObjective` for this scheme."""
        if self.kind == "holdout":
            return {"cv": None}
        return {"cv": self.folds, "cv_repeats": self.repeats,
                "cv_strategy": "timeseries" if self.kind == "timeseries" else "auto"}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EvaluationScheme:
        return cls(kind=data["kind"], folds=data.get("folds"), repeats=int(data.get("repeats") or 1),
                   reason=str(data.get("reason") or ""))


def parse_scheme(text: str | None) -> EvaluationScheme | None:
    """The scheme a user asked for, or ``None`` for ``auto`` (the rule decides).

    Accepts ``auto``, ``holdout``, ``cv`` (5 folds), ``cv=K``, ``cv=KxR``, ``timeseries`` (5
    time-ordered folds) and ``timeseries-cv=K``.
    """
    if text is None:
        return None
    if not isinstance(text, str):
        raise ConfigurationError(f"scheme must be a string ({SCHEME_CHOICES}), got {text!r}")
    key = text.strip().lower().replace("_", "-")
    if key == "auto":
        return None
    if key == "holdout":
        return EvaluationScheme("holdout", reason="requested")
    if key == "timeseries":
        return EvaluationScheme("timeseries", DEFAULT_FOLDS, reason="requested")
    m = _CV_RE.match(key)
    if not m:
        raise ConfigurationError(f"scheme must be one of {SCHEME_CHOICES}, got {text!r}")
    folds = int(m.group(2)) if m.group(2) else DEFAULT_FOLDS
    repeats = int(m.group(3)) if m.group(3) else 1
    return EvaluationScheme("timeseries" if m.group(1) else "cv", folds, repeats, reason="requested")


def choose_scheme(n_rows: int, *, n_features: int = 1, min_class_count: int | None = None, n_classes: int = 2,
                  time_ordered: bool = False, time_budget: float | None = None) -> EvaluationScheme:
    """The evaluation scheme for ``n_rows`` rows of train + validation (the module docstring has
    the rule). ``min_class_count``: rows of the smallest class (classification); ``n_classes``:
    classes of a multiclass target (2 otherwise); ``time_budget``: seconds the study may take, when
    bounded by time."""
    cells = n_rows * max(1, n_features) * (n_classes if n_classes > 2 else 1)

    def affordable(per_second: float) -> bool:
        return time_budget is None or cells <= per_second * time_budget

    size = f"{n_rows:,} rows x {n_features} features" + (f" x {n_classes} classes" if n_classes > 2 else "")
    budget = "" if time_budget is None else f" in {time_budget:.0f} s"
    if time_ordered:
        if n_rows <= CV_MAX_ROWS and affordable(CV_CELLS_PER_SECOND):
            return EvaluationScheme("timeseries", DEFAULT_FOLDS, reason=f"time-ordered data, {size}")
        return EvaluationScheme("holdout", reason=f"time-ordered data, {size}: too large for folds{budget}")
    if min_class_count is not None and min_class_count < 3:
        return EvaluationScheme("holdout", reason=f"a class has only {min_class_count} row(s): folds would miss it")
    folds = DEFAULT_FOLDS if min_class_count is None else min(DEFAULT_FOLDS, min_class_count)
    if n_rows <= REPEATED_CV_MAX_ROWS and affordable(REPEATED_CV_CELLS_PER_SECOND):
        return EvaluationScheme("cv", folds, 2, reason=f"{size}: small, a single split would be too noisy")
    if n_rows <= CV_MAX_ROWS and affordable(CV_CELLS_PER_SECOND):
        return EvaluationScheme("cv", folds, reason=f"{size}: folds are affordable{budget}")
    if n_rows > CV_MAX_ROWS:
        return EvaluationScheme("holdout", reason=f"{size}: one validation split of {n_rows // 4:,}+ rows suffices")
    return EvaluationScheme("holdout", reason=f"{size}: too costly for k-fold CV{budget}")


def tuning_frames(X_train: Any, y_train: Any, X_val: Any, y_val: Any,
                  scheme: EvaluationScheme) -> tuple[Any, Any, Any, Any]:
    """The ``(X_train, y_train, X_val, y_val)`` an objective gets under ``scheme``: the two splits
    as they are for a holdout; for CV, train + validation joined (in that order, which keeps time
    order: the validation rows are the later ones) as the rows the folds are drawn from, and no
    validation split."""
    if not scheme.uses_cv:
        return X_train, y_train, X_val, y_val
    import pandas as pd

    from .fitting import concat_rows

    X = concat_rows(X_train, X_val)
    y = pd.concat([pd.Series(y_train), pd.Series(y_val)], ignore_index=True)
    return X, y, None, None


def resolve_scheme(*, scheme: str | None = "auto", cv: int | None = None, y_train: Any, y_val: Any,
                   n_features: int, classification: bool, time_ordered: bool = False,
                   time_budget: float | None = None) -> EvaluationScheme:
    """The scheme of a study on these train/validation splits: the one requested (``cv=K`` or
    ``scheme``), else the rule's choice (:func:`choose_scheme`). Time-ordered data always gets
    time-ordered folds: shuffled folds would train on the future. Deterministic in its inputs, so
    a resumed study keeps its scheme."""
    if cv is not None and parse_scheme(scheme) is not None:
        raise ConfigurationError(f"give cv={cv} or scheme={scheme!r}, not both (cv=K is shorthand for scheme='cv=K')")
    requested = EvaluationScheme("cv", cv, reason="requested") if cv is not None else parse_scheme(scheme)
    if requested is not None:
        if time_ordered and requested.kind == "cv":
            return EvaluationScheme("timeseries", requested.folds,
                                    reason=f"requested {requested.label}; time-ordered data gets time-ordered folds")
        return requested
    import pandas as pd

    y_tr, y_va = pd.Series(np.asarray(y_train, dtype=object)), pd.Series(np.asarray(y_val, dtype=object))
    counts = pd.concat([y_tr, y_va], ignore_index=True).value_counts() if classification else None
    return choose_scheme(len(y_tr) + len(y_va), n_features=n_features,
                         min_class_count=None if counts is None else int(counts.min()),
                         n_classes=2 if counts is None else len(counts),
                         time_ordered=time_ordered, time_budget=time_budget)


class _StopAfter:
    """A reporter that stops the fit (``TrialCancelled``) once ``seconds`` have passed."""

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def report(self, value: float, step: int) -> None:
        return None

    def should_prune(self) -> bool:
        return False

    def cancelled(self) -> bool:
        return time.monotonic() > self.end


def afford_scheme(scheme: EvaluationScheme, *, probe: Any, study_seconds: float | None,
                  rows_trainval: int, extra_trials: int = 0) -> tuple[EvaluationScheme, dict[str, Any] | None]:
    """``scheme``, or the holdout when a CV trial would cost too much of ``study_seconds``.

    ``probe``: a holdout :class:`~src.mlops.objectives.ModelObjective` on the train and validation
    splits. One fit of its family's defaults is timed, and stopped once it has taken
    ``study_seconds / (min_trials x fits per trial x row growth)``: past that, fewer than ``min_trials``
    = :data:`MIN_CV_TRIALS` + ``extra_trials`` (a family search asks for more, see
    :func:`~src.mlops.family_search.probe_extra_trials`) such trials would fit. Returns the scheme and what
    the probe measured (``None`` when nothing was probed: a holdout, no time budget, or at most
    :data:`PROBE_MIN_ROWS` rows)."""
    if not scheme.uses_cv or study_seconds is None or study_seconds <= 0 or rows_trainval <= PROBE_MIN_ROWS:
        return scheme, None
    from .reporters import TrialCancelled

    fits = (scheme.folds or 1) * scheme.repeats
    min_trials = MIN_CV_TRIALS + extra_trials
    # a fold trains on (k-1)/k of train+validation; the probe on the training split
    growth = max(1.0, rows_trainval * ((scheme.folds or 2) - 1) / (scheme.folds or 2) / max(1, len(probe.y_train)))
    cap = study_seconds / (min_trials * fits * growth)
    params = probe.defaults_trial_params()
    if probe.spec.is_boosting:  # the first fit of a process pays for imports and warm-up: not a trial's cost
        with contextlib.suppress(Exception):
            probe.evaluate({**params, "n_estimators": 2}, _StopAfter(cap))
    t0 = time.perf_counter()
    stopped, ev = False, None
    try:
        ev = probe.evaluate(params, _StopAfter(cap))
    except TrialCancelled:
        stopped = True
    except Exception as e:  # noqa: BLE001 - the study will meet (and record) the same failure
        return scheme, {"error": f"{type(e).__name__}: {e}"}
    seconds = time.perf_counter() - t0
    # defaults that used every round: the data wants more, and the study's trials (up to thousands of
    # rounds) will cost several times the probe
    rounds = int(probe.default_params.get("n_estimators") or 0)
    best = ev.user_attrs.get("best_iteration") if ev is not None else None
    exhausted = probe.spec.is_boosting and rounds > 0 and isinstance(best, (int, float)) and best >= 0.9 * rounds
    factor = ROUNDS_FACTOR if exhausted else 1.0
    trial_s = seconds * fits * growth * factor
    fit = study_seconds / trial_s if trial_s > 0 else float("inf")
    measured = {"seconds": round(seconds, 3), "stopped": stopped, "rounds_exhausted": bool(exhausted),
                "cv_trial_seconds": round(trial_s, 2), "cv_trials_that_fit": round(fit, 1),
                "study_seconds": round(study_seconds, 1)}
    if not stopped and fit >= min_trials:
        return scheme, measured
    took = f"ran over {seconds:.1f} s (stopped there)" if stopped else f"took {seconds:.1f} s"
    if exhausted:
        took += f" and used all {rounds} rounds (the study's trials will run longer: x{ROUNDS_FACTOR:g})"
    order = "time-ordered data; " if scheme.kind == "timeseries" else ""
    reason = (f"{order}{scheme.label} was affordable by size, but a probe fit of the defaults {took}: a "
              f"{scheme.label} trial would take {'over ' if stopped else 'about '}{trial_s:.0f} s, fewer than "
              f"{min_trials} trials in the study's {study_seconds:.0f} s")
    return EvaluationScheme("holdout", reason=reason), measured
