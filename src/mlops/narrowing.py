"""Adaptive narrowing of the search space in phases (SPEC F13).

``run_hyperparameter_optimization(phases=P)`` splits the study's budget into ``P`` phases. When a
phase's share is used -- ``n_trials * k / P`` trials in the study, or ``timeout * k / P`` seconds of
this run, whichever comes first -- the numeric ranges narrow around the best trial so far
(:meth:`~src.mlops.search_space.SearchSpace.narrowed`: each range shrinks to ``shrink`` of its
width, centred on the best value; a best value within 5 % of a bound widens that side instead).
Categorical params and params the best trial does not use keep their choices.

How the sampler sees earlier phases (decided after reading Optuna 5's TPE): TPE's multivariate mode
samples jointly only the params whose distribution is *the same in every trial* of the study
(``IntersectionSearchSpace``); a narrowed param would fall out of it and be sampled one at a time
(with a warning per trial), and its Parzen estimator would be built from values outside the new
range. So each phase gets a fresh copy of the study's sampler that sees the study through
:class:`PhaseView`: a trial of an earlier phase whose params all lie inside the new ranges is shown
with the new distributions (it still informs the sampler, so a phase needs no new random start-up
trials when enough earlier trials fall in the region); a trial with a value outside them is left
out. Trials of the current phase are shown as they are.

Each phase is recorded in the study's user attribute ``hpo.phases`` (phase number, first trial
number, numeric ranges); :func:`phase_summary` adds each phase's trial count and best trial, and
is what the result (``OptimizationResult.phases``), the history database (``ml_hpo_studies.phases``),
MLflow (the parent run's ``phases.json``) and the HTML report show. Phases run in the process that
runs the study (any ``n_jobs``); ``hpo worker`` processes joining the study sample from the range
of the phase recorded when they start.
"""

from __future__ import annotations

import copy
import logging
import math
import threading
import time
from collections.abc import Mapping
from typing import Any

import optuna
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial, TrialState

from .errors import ConfigurationError
from .search_space import SearchSpace, parse_search_space
from .trial_slots import uses_budget

__all__ = ["PHASES_ATTR", "Narrowing", "PhaseSampler", "PhaseView", "check_phases", "phase_summary",
           "phase_space", "ranges_text"]

log = logging.getLogger("src.mlops.narrowing")

#: the study's user attribute holding the phase records
PHASES_ATTR = "hpo.phases"
#: a best value this close to a bound (share of the width) counts as on the bound: that side widens
BOUND_MARGIN = 0.05
#: complete trials a phase needs before the next one may start
MIN_COMPLETE = 3


def check_phases(phases: Any, shrink: Any = 0.5) -> int:
    """``phases`` as an int >= 1 (1: no narrowing); ConfigurationError naming the rule otherwise."""
    if isinstance(phases, bool) or not isinstance(phases, int) or not 1 <= phases <= 10:
        raise ConfigurationError(f"phases must be an integer from 1 (no narrowing) to 10, but got {phases!r}")
    if isinstance(shrink, bool) or not isinstance(shrink, (int, float)) or not 0 < shrink < 1:
        raise ConfigurationError(f"narrow_shrink must be a number with 0 < shrink < 1, but got {shrink!r}")
    return phases


def _ranges(space: SearchSpace) -> dict[str, dict[str, Any]]:
    """The numeric params of ``space`` as spec dicts (what a phase record keeps)."""
    return {p.name: p.to_dict() for p in space if p.type != "categorical"}


def phase_space(study: optuna.Study, base: SearchSpace) -> SearchSpace | None:
    """The space of the study's latest recorded phase (``base`` with its numeric ranges), or None."""
    records = study.user_attrs.get(PHASES_ATTR)
    if not isinstance(records, list) or not records:
        return None
    ranges = records[-1].get("ranges") or {}
    return parse_search_space({**base.to_dict(), **{k: v for k, v in ranges.items() if k in base}})


class PhaseView:
    """A study as one phase's sampler sees it (see the module docstring); everything but the trial
    lists is the study's own."""

    def __init__(self, study: optuna.Study, space: SearchSpace) -> None:
        self._study = study
        self._space = space
        self._dists = {p.name: p.to_distribution() for p in space if p.type != "categorical"}
        self._finished: dict[int, FrozenTrial | None] = {}  # finished trials never change: projected once
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)

    def _project(self, t: FrozenTrial) -> FrozenTrial | None:
        changed = {n: d for n, d in self._dists.items() if n in t.distributions and t.distributions[n] != d}
        if not changed:
            return t
        if not all(self._space[n].contains(t.params[n]) for n in changed):
            return None
        shown = copy.copy(t)
        shown._distributions = {**t.distributions, **changed}  # noqa: SLF001 - a view, the trial is untouched
        return shown

    def _get_trials(self, deepcopy: bool = True, states: Any = None, use_cache: bool = False) -> list[FrozenTrial]:
        trials = self._study._get_trials(deepcopy=False, states=states, use_cache=use_cache)  # noqa: SLF001
        out = []
        with self._lock:
            for t in trials:
                if t.state.is_finished():
                    if t.number not in self._finished:
                        self._finished[t.number] = self._project(t)
                    shown = self._finished[t.number]
                else:
                    shown = self._project(t)
                if shown is not None:
                    out.append(copy.deepcopy(shown) if deepcopy else shown)
        return out

    def get_trials(self, deepcopy: bool = True, states: Any = None) -> list[FrozenTrial]:
        return self._get_trials(deepcopy=deepcopy, states=states)

    @property
    def trials(self) -> list[FrozenTrial]:
        return self.get_trials()


class PhaseSampler(BaseSampler):
    """``base`` (a fresh copy of the study's sampler) sampling through a :class:`PhaseView`."""

    def __init__(self, base: BaseSampler, view: PhaseView) -> None:
        self.base, self.view = base, view

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, Any]:
        return self.base.infer_relative_search_space(self.view, trial)  # type: ignore[arg-type]

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, Any]) -> dict[str, Any]:
        return self.base.sample_relative(self.view, trial, search_space)  # type: ignore[arg-type]

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str, dist: Any) -> Any:
        return self.base.sample_independent(self.view, trial, param_name, dist)  # type: ignore[arg-type]

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.base.before_trial(self.view, trial)  # type: ignore[arg-type]

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState, values: Any) -> None:
        self.base.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.base.reseed_rng()


class Narrowing:
    """The study callback that starts the next phase when the current one's share is used.

    ``objective`` is the study's :class:`~src.mlops.objectives.ModelObjective`: its ``search_space``
    is replaced by each phase's (and given back by :meth:`restore`). Call :meth:`begin` before the
    study runs (records phase 1, or continues the phase a resumed study recorded).
    """

    def __init__(self, objective: Any, *, phases: int, n_trials: int | None, timeout: float | None,
                 shrink: float = 0.5) -> None:
        check_phases(phases, shrink)
        if n_trials is None and timeout is None:
            raise ConfigurationError("narrowing needs n_trials and/or timeout to split into phases")
        self.objective, self.phases, self.n_trials, self.timeout, self.shrink = objective, phases, n_trials, timeout, shrink
        self.original: SearchSpace = objective.search_space
        self.phase = 1
        self._pristine: BaseSampler | None = None
        self._started = time.monotonic()
        self._lock = threading.Lock()

    # -- lifecycle ---------------------------------------------------------------------------
    def begin(self, study: optuna.Study) -> None:
        """Record phase 1 in a fresh study; in a resumed one, go on with its latest phase."""
        self._pristine = copy.deepcopy(study.sampler)
        self._started = time.monotonic()
        records = study.user_attrs.get(PHASES_ATTR)
        if isinstance(records, list) and records:
            self.phase = int(records[-1].get("phase", len(records)))
            space = phase_space(study, self.original)
            if space is not None and self.phase > 1:
                self._use(study, space)
            return
        study.set_user_attr(PHASES_ATTR, [{"phase": 1, "start_trial": len(study.get_trials(deepcopy=False)),
                                           "ranges": _ranges(self.original), "best_before": None}])

    def restore(self, study: optuna.Study | None = None) -> None:
        """Give the objective its original space back (e.g. for a random-search baseline)."""
        self.objective.search_space = self.original
        if study is not None and self._pristine is not None:
            study.sampler = self._pristine

    # -- the callback ------------------------------------------------------------------------
    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        with self._lock:
            if self.phase >= self.phases or not self._share_used(study):
                return
            self._advance(study)

    def _share_used(self, study: optuna.Study) -> bool:
        trials = study.get_trials(deepcopy=False)
        records = study.user_attrs.get(PHASES_ATTR) or [{"start_trial": 0}]
        start = int(records[-1].get("start_trial", 0))
        if sum(1 for t in trials if t.number >= start and t.state == TrialState.COMPLETE) < MIN_COMPLETE:
            return False
        if self.n_trials is not None:
            used = sum(1 for t in trials if t.state.is_finished() and uses_budget(t))
            if used >= math.ceil(self.n_trials * self.phase / self.phases):
                return True
        if self.timeout is not None:
            return time.monotonic() - self._started >= self.timeout * self.phase / self.phases
        return False

    def _advance(self, study: optuna.Study) -> None:
        try:
            best = study.best_trial
        except ValueError:
            return
        space = self.objective.search_space.narrowed(best.params, shrink=self.shrink, margin=BOUND_MARGIN)
        self.phase += 1
        records = list(study.user_attrs.get(PHASES_ATTR) or [])
        records.append({"phase": self.phase, "start_trial": len(study.get_trials(deepcopy=False)),
                        "ranges": _ranges(space), "best_before": {"trial": best.number, "value": best.value}})
        study.set_user_attr(PHASES_ATTR, records)
        self._use(study, space)
        changed = {n: (r["low"], r["high"]) for n, r in _ranges(space).items()
                   if _ranges(self.original).get(n) != r}
        log.info("study %s: phase %d of %d from trial %d, around trial %d (%s): %s", study.study_name,
                 self.phase, self.phases, records[-1]["start_trial"], best.number, best.value, changed)

    def _use(self, study: optuna.Study, space: SearchSpace) -> None:
        self.objective.search_space = space
        base = copy.deepcopy(self._pristine if self._pristine is not None else study.sampler)
        if isinstance(base, PhaseSampler):
            base = base.base
        study.sampler = PhaseSampler(base, PhaseView(study, space))


def phase_summary(study: optuna.Study) -> list[dict[str, Any]]:
    """The study's phases (empty without narrowing): per phase its number, first and last trial,
    numeric ranges, trial counts and best trial (of the trials asked in that phase)."""
    records = study.user_attrs.get(PHASES_ATTR)
    if not isinstance(records, list) or not records or len(study.directions) > 1:
        return []
    trials = sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
    maximize = study.direction.name == "MAXIMIZE"
    out = []
    for i, rec in enumerate(records):
        start = int(rec.get("start_trial", 0))
        end = int(records[i + 1]["start_trial"]) if i + 1 < len(records) else None
        mine = [t for t in trials if t.number >= start and (end is None or t.number < end)
                and t.state != TrialState.WAITING]
        done = [t for t in mine if t.state == TrialState.COMPLETE and t.value is not None]
        best = (max if maximize else min)(done, key=lambda t: t.value) if done else None
        out.append({
            "phase": int(rec.get("phase", i + 1)), "start_trial": start,
            "end_trial": (mine[-1].number if mine else None), "ranges": dict(rec.get("ranges") or {}),
            "n_trials": len(mine), "n_complete": len(done),
            "best_trial": best.number if best else None, "best_value": float(best.value) if best else None,
            "best_params": dict(best.params) if best else {},
            "best_before": rec.get("best_before"),
        })
    return out


def ranges_text(ranges: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """``{param: "[low, high]"}`` (``log`` noted) for messages and tables."""
    def f(v: Any) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)
    return {k: f"[{f(r.get('low'))}, {f(r.get('high'))}]" + (" log" if r.get("log") else "") for k, r in ranges.items()}

