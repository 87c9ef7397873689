"""Other search backends (F29) as Optuna samplers: Hyperopt's TPE and scikit-optimize's Bayesian optimizer.

Both are adapters (:class:`optuna.samplers.BaseSampler`): the optimizer keeps driving the study with
ask/tell, so trials have the same states (COMPLETE, PRUNED, FAIL with its reason), the same history
tables, MLflow runs, seeding (defaults, portfolio) and timeouts as with Optuna's own samplers. At each
``ask`` the adapter rebuilds the backend's view of the study from its trials and asks it for one point:

* ``HyperoptSampler`` -- the COMPLETE trials become a ``hyperopt.Trials`` history (loss = the value,
  negated for a maximized metric) and ``hyperopt.tpe.suggest`` proposes the next point (its first
  ``n_startup_jobs`` points are random draws from the prior, as in ``hyperopt.fmin``).
* ``SkoptSampler`` -- a ``skopt.Optimizer`` (Gaussian process by default) is told the COMPLETE
  trials and asked for the next point.

PRUNED and FAIL trials are not shown to the backend (hyperopt's TPE ignores failed jobs the same way).
The jointly sampled space is the intersection of the COMPLETE trials' spaces (Optuna's
``intersection_search_space``); params outside it -- conditional ones, and every param of the first
trial -- are drawn independently by a seeded :class:`optuna.samplers.RandomSampler`. Each ``ask`` gets
a seed derived from the sampler's seed and the trial number, so a seeded sequential study proposes
the same params every time. Both are single-objective. Install with ``pip install -e '.[hyperopt]'``
or ``'.[skopt]'``.
"""

from __future__ import annotations

import abc

import hashlib
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.search_space import intersection_search_space
from optuna.trial import FrozenTrial, TrialState

from .errors import ConfigurationError

__all__ = ["HyperoptSampler", "SkoptSampler"]


def _trial_seed(seed: int | None, number: int) -> int | None:
    if seed is None:
        return None
    return int(hashlib.sha256(f"{seed}:{number}".encode()).hexdigest()[:8], 16)


class _ExternalSampler(optuna.samplers.BaseSampler):
    """What both adapters share: the joint space, the history, independent draws, single-objective."""

    backend = ""

    def __init__(self, *, seed: int | None = None) -> None:
        self._seed = seed
        self._random = optuna.samplers.RandomSampler(seed=seed)

    def reseed_rng(self) -> None:
        self._random.reseed_rng()

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        if len(study.directions) > 1:
            raise ConfigurationError(f"sampler {self.backend!r} is single-objective; this study has "
                                     f"{len(study.directions)} objectives (use tpe or nsga2)")
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        space = intersection_search_space(complete)
        return {k: d for k, d in space.items() if not d.single()}

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        return self._random.sample_independent(study, trial, param_name, param_distribution)

    def _history(self, study: optuna.Study, space: Mapping[str, BaseDistribution]) -> tuple[list[dict[str, Any]], list[float]]:
        """The COMPLETE trials holding every param of ``space``: their params and losses (minimized)."""
        sign = -1.0 if study.direction == optuna.study.StudyDirection.MAXIMIZE else 1.0
        xs, ys = [], []
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            if t.value is None or not math.isfinite(t.value) or not all(k in t.params for k in space):
                continue
            xs.append({k: t.params[k] for k in space})
            ys.append(sign * float(t.value))
        return xs, ys

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        if not search_space:
            return {}
        xs, ys = self._history(study, search_space)
        names = sorted(search_space)
        return self._propose({k: search_space[k] for k in names}, xs, ys, _trial_seed(self._seed, trial.number))

    @abc.abstractmethod
    def _propose(self, space: dict[str, BaseDistribution], xs: list[dict[str, Any]], ys: list[float],
                 seed: int | None) -> dict[str, Any]:
        """The backend's proposal for ``space`` given the finished trials ``xs`` and their values ``ys``."""


def _snap(value: float, d: FloatDistribution | IntDistribution) -> float | int:
    """``value`` clipped to ``d``'s bounds and rounded to its step (an int for an IntDistribution)."""
    low, high = d.low, d.high
    if d.step is not None:
        value = low + round((value - low) / d.step) * d.step
    value = min(max(value, low), high)
    return int(round(value)) if isinstance(d, IntDistribution) else float(value)


def _to_backend(value: Any, d: BaseDistribution) -> Any:
    """A param's value as the backends take it: a categorical's index, an int, a float."""
    if isinstance(d, CategoricalDistribution):
        return d.to_internal_repr(value)
    return int(value) if isinstance(d, IntDistribution) else float(value)


def _from_backend(value: Any, d: BaseDistribution) -> Any:
    """A backend's proposal as the param's value: a choice, or a number snapped to the bounds and step."""
    if isinstance(d, CategoricalDistribution):
        return d.choices[int(value)]
    return _snap(float(value), d)  # type: ignore[arg-type]


class HyperoptSampler(_ExternalSampler):
    """Hyperopt's TPE (``hyperopt.tpe.suggest``) through ask/tell; options are ``tpe.suggest``'s:
    ``n_startup_jobs`` (20), ``n_EI_candidates`` (24), ``gamma`` (0.25), ``prior_weight`` (1.0)."""

    backend = "hyperopt"

    def __init__(self, *, seed: int | None = None, n_startup_jobs: int = 20, n_EI_candidates: int = 24,
                 gamma: float = 0.25, prior_weight: float = 1.0) -> None:
        super().__init__(seed=seed)
        if isinstance(n_startup_jobs, bool) or not isinstance(n_startup_jobs, int) or n_startup_jobs < 0:
            raise ConfigurationError(f"n_startup_jobs must be an integer >= 0, got {n_startup_jobs!r}")
        if not 0 < gamma < 1:
            raise ConfigurationError(f"gamma must be in (0, 1), got {gamma!r}")
        self._options = {"n_startup_jobs": n_startup_jobs, "n_EI_candidates": int(n_EI_candidates),
                         "gamma": float(gamma), "prior_weight": float(prior_weight)}

    @staticmethod
    def _expr(name: str, d: BaseDistribution) -> Any:
        from hyperopt import hp

        if isinstance(d, CategoricalDistribution):
            return hp.choice(name, list(range(len(d.choices))))  # an index; the value is mapped back
        if d.log:  # type: ignore[union-attr]
            return hp.loguniform(name, math.log(d.low), math.log(d.high))  # type: ignore[union-attr]
        if isinstance(d, IntDistribution):  # each integer gets an equal share of [low - 0.5, high + 0.5]
            return hp.quniform(name, d.low - 0.5, d.high + 0.5, d.step)
        return hp.uniform(name, d.low, d.high)  # type: ignore[union-attr]

    def _propose(self, space: dict[str, BaseDistribution], xs: list[dict[str, Any]], ys: list[float],
                 seed: int | None) -> dict[str, Any]:
        from hyperopt import JOB_STATE_DONE, STATUS_OK, Domain, Trials, tpe

        domain = Domain(lambda _: 0.0, {k: self._expr(k, d) for k, d in space.items()})
        trials = Trials()
        if xs:
            tids = list(range(len(xs)))
            miscs = []
            for tid, x in zip(tids, xs):
                vals = {k: [_to_backend(x[k], d)] for k, d in space.items()}
                miscs.append({"tid": tid, "cmd": domain.cmd, "workdir": None,
                              "idxs": {k: [tid] for k in space}, "vals": vals})
            docs = trials.new_trial_docs(tids, [None] * len(xs), [{"status": STATUS_OK, "loss": y} for y in ys], miscs)
            for doc in docs:
                doc["state"] = JOB_STATE_DONE
            trials.insert_trial_docs(docs)
            trials.refresh()
        rng_seed = seed if seed is not None else int(np.random.default_rng().integers(2**31 - 1))
        new = tpe.suggest([len(xs)], domain, trials, rng_seed, **self._options)
        vals = new[0]["misc"]["vals"]
        return {k: _from_backend(vals[k][0], d) for k, d in space.items()}


class SkoptSampler(_ExternalSampler):
    """scikit-optimize's ``skopt.Optimizer`` through ask/tell; options are the Optimizer's
    (``base_estimator="GP"``, ``n_initial_points=10``, ``acq_func="gp_hedge"``, ...)."""

    backend = "skopt"

    def __init__(self, *, seed: int | None = None, **optimizer_options: Any) -> None:
        super().__init__(seed=seed)
        import inspect

        from skopt import Optimizer

        accepted = set(inspect.signature(Optimizer.__init__).parameters) - {"self", "dimensions", "random_state"}
        unknown = sorted(set(optimizer_options) - accepted)
        if unknown:
            raise ConfigurationError(f"sampler 'skopt' does not take option(s) {unknown}; accepted: {sorted(accepted)}")
        self._options = {"n_initial_points": 10, **optimizer_options}

    @staticmethod
    def _dimension(d: BaseDistribution) -> Any:
        from skopt.space import Categorical, Integer, Real

        if isinstance(d, CategoricalDistribution):
            return Categorical(list(range(len(d.choices))), transform="onehot")
        prior = "log-uniform" if d.log else "uniform"  # type: ignore[union-attr]
        if isinstance(d, IntDistribution):
            return Integer(d.low, d.high, prior=prior)
        return Real(d.low, d.high, prior=prior)  # type: ignore[union-attr]

    def _propose(self, space: dict[str, BaseDistribution], xs: list[dict[str, Any]], ys: list[float],
                 seed: int | None) -> dict[str, Any]:
        import warnings

        from skopt import Optimizer

        names = list(space)
        opt = Optimizer([self._dimension(space[k]) for k in names], random_state=seed, **self._options)
        if xs:
            points = [[_to_backend(x[k], space[k]) for k in names] for x in xs]
            with warnings.catch_warnings():  # "the objective has been evaluated at this point before"
                warnings.simplefilter("ignore", UserWarning)
                opt.tell(points, ys)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            point = opt.ask()
        return {k: _from_backend(v, space[k]) for k, v in zip(names, point)}
