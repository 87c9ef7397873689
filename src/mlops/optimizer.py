"""The async optimizer (F1, F10, F11a): ask/tell on the event loop, fits in workers.

Each of ``n_jobs`` asyncio workers loops: reserve a slot in the budget, ``ask`` (in a thread: the
sampler and storage may take milliseconds), run the trial in a thread or a worker process, ``tell``
the outcome, then notify listeners (history database, MLflow, progress) on the loop. The loop is
never blocked by a fit, so other tasks keep running.

Budget: ``n_trials`` is the number of trials the *study* should hold (a resumed study only runs
what is missing). Trials failed as "stale" (their process died), "cancelled" or "deadline" do not
use the budget (stale ones are retried once); every other trial does, so a study whose trials all
fail still ends. Failures are FAIL states with a reason in the trial's ``fail_reason`` user
attribute, never a fake score.

Timeout: no trial starts after the study's ``timeout``, and trials still running then are stopped
(boosting fits at their next round, worker processes killed, other threads abandoned after a short
grace) and failed as "deadline" -- unless no trial has completed yet, in which case the first
completion is awaited, so a study always has a result. Cancelling the awaiting task fails the in-flight trials with reason
"cancelled" before the cancellation propagates, so no trial stays RUNNING.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import math
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from .errors import ConfigurationError
from .executors import ProcessTrialRunner, TrialError, TrialTimeout, current_worker_id, run_in_thread, worker_is_alive
from .factories import PrunerFactory, SamplerFactory
from .objectives import ModelObjective, TrialCancelled, TrialReporter
from .search_space import SearchSpace, parse_search_space
from .types import FAIL_REASON_ATTR, SOURCE_ATTR, WORKER_ATTR, OptimizationResult, StudyContext, TrialListener

__all__ = ["OptunaOptimizer", "resolve_storage", "uses_budget"]

log = logging.getLogger("src.mlops.optimizer")
optuna.logging.set_verbosity(optuna.logging.WARNING)

_DIRECTIONS = ("maximize", "minimize")
#: FAIL reasons that do not use the budget: the trial never really ran (or is retried).
_FREE_FAIL_REASONS = ("stale", "cancelled", "deadline")
#: seconds an interrupted trial gets to stop by itself (boosting fits stop at the next round)
#: before its thread is abandoned
_DEADLINE_GRACE_S = 2.0
#: returned by ``_reserve`` when the budget is held by a trial that may become stale soon
_WAIT = object()


class _DeadlinePassed(Exception):
    """The study's timeout passed while a trial ran (it is failed as "deadline", free)."""


def _retrieve(fut: asyncio.Future) -> None:
    """Done-callback of an abandoned trial future: consume its outcome (no 'never retrieved' noise)."""
    if not fut.cancelled():
        fut.exception()


def uses_budget(trial: FrozenTrial) -> bool:
    """Whether ``trial`` counts towards ``n_trials``: finished or running, except stale/cancelled fails."""
    if trial.state == TrialState.FAIL:
        return trial.user_attrs.get(FAIL_REASON_ATTR) not in _FREE_FAIL_REASONS
    return trial.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)


def _budget_used(study: optuna.Study) -> int:
    return sum(1 for t in study.get_trials(deepcopy=False) if uses_budget(t))


def resolve_storage(storage: Any) -> optuna.storages.BaseStorage | None:
    """``None`` -> in memory; a URL -> PostgreSQL journal storage (``postgresql://``) or Optuna's
    RDB storage (``sqlite://`` ...); an Optuna storage object is used as it is."""
    if storage is None or isinstance(storage, optuna.storages.BaseStorage):
        return storage
    if isinstance(storage, str):
        if storage.startswith(("postgresql://", "postgres://", "postgresql+")):
            from .persistence import create_optuna_storage

            return create_optuna_storage(storage)
        if storage.startswith("journal:"):
            from optuna.storages.journal import JournalFileBackend

            return optuna.storages.JournalStorage(JournalFileBackend(storage.removeprefix("journal:")))
        return optuna.storages.get_storage(storage)
    raise ConfigurationError(f"storage must be None, a URL or an optuna storage object, got {type(storage).__name__}")


@dataclass
class _Run:
    """Book-keeping of one ``optimize`` call."""

    study: optuna.Study
    n_trials: int | None
    #: ``time.monotonic()`` at which ``timeout`` ends (None: no timeout)
    end: float | None
    max_failures: int | None
    patience: int | None
    min_improvement: float
    #: seconds to keep free before ``end`` (re-evaluated at every check; see ``optimize``)
    time_reserve: Callable[[], float] | None = None
    started: float = field(default_factory=time.monotonic)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    inflight: dict[int, tuple[optuna.Trial, threading.Event]] = field(default_factory=dict)
    n_failed: int = 0
    n_finished: int = 0
    best: float | None = None
    since_improvement: int = 0
    stop_reason: str | None = None
    waited: bool = False
    #: a COMPLETE trial exists (this run's or an earlier one's): trials running at the deadline may
    #: then be interrupted; before that the first completion is awaited, so a study always has a result.
    has_complete: bool = False

    def stop(self, reason: str) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason

    @property
    def deadline(self) -> float | None:
        """When no trial may start any more and running ones are stopped: ``end`` minus the reserve."""
        if self.end is None:
            return None
        if self.time_reserve is None:
            return self.end
        try:
            reserve = max(0.0, float(self.time_reserve()))
        except Exception:  # noqa: BLE001 - a broken estimate must not kill the study
            log.exception("time_reserve raised; ignoring it")
            reserve = 0.0
        return self.end - reserve


class OptunaOptimizer:
    """Async front of Optuna. Listeners (history DB, MLflow, progress) observe every finished trial.

    >>> opt = OptunaOptimizer()
    >>> study = await opt.create_study(study_name="demo", direction="maximize")
    >>> objective = opt.create_validation_objective("lightgbm", "binary_classification", X_tr, y_tr, X_va, y_va)
    >>> result = await opt.optimize(study, objective, n_trials=30, n_jobs=2, trial_timeout=60)
    """

    def __init__(self, *, listeners: Iterable[TrialListener] = (), storage: Any = None,
                 stale_check_every: int = 10, ownerless_grace_s: float = 30.0) -> None:
        self.listeners: list[TrialListener] = list(listeners)
        self.storage = storage
        self.stale_check_every = max(1, int(stale_check_every))
        self.ownerless_grace_s = float(ownerless_grace_s)
        self.worker_id = current_worker_id()
        self._contexts: dict[str, StudyContext] = {}
        self._stop_requested = False

    # ------------------------------------------------------------------------------------------
    # studies
    # ------------------------------------------------------------------------------------------
    async def create_study(
        self,
        *,
        study_name: str | None = None,
        direction: str | None = None,
        directions: Sequence[str] | None = None,
        sampler: str | optuna.samplers.BaseSampler | None = "tpe",
        pruner: str | optuna.pruners.BasePruner | None = "median",
        storage: Any = None,
        load_if_exists: bool = True,
        seed: int | None = None,
        search_space: SearchSpace | Mapping[str, Any] | None = None,
        sampler_options: Mapping[str, Any] | None = None,
        pruner_options: Mapping[str, Any] | None = None,
        context: StudyContext | None = None,
    ) -> optuna.Study:
        """Create (or load, with ``load_if_exists``) a study; the search space is stored with it."""
        if direction is not None and directions is not None:
            raise ConfigurationError("give either direction or directions, not both")
        dirs = list(directions) if directions is not None else [direction or "maximize"]
        for d in dirs:
            if d not in _DIRECTIONS:
                raise ConfigurationError(f"direction must be 'maximize' or 'minimize', got {d!r}")
        if len(dirs) == 0:
            raise ConfigurationError("directions must not be empty")
        space = parse_search_space(search_space) if search_space is not None else None
        if len(dirs) > 1 and sampler in ("tpe", None) and not sampler_options:
            sampler = "nsga2"
        sampler_obj = SamplerFactory.create(sampler, seed=seed, search_space=space, **dict(sampler_options or {}))
        if len(dirs) > 1:
            pruner_obj: optuna.pruners.BasePruner = optuna.pruners.NopPruner()  # MO studies cannot prune
        else:
            pruner_obj = PrunerFactory.create(pruner, **dict(pruner_options or {}))
        name = study_name or f"study-{uuid.uuid4().hex[:12]}"
        store = resolve_storage(storage if storage is not None else self.storage)

        def create() -> optuna.Study:
            study = optuna.create_study(
                study_name=name, storage=store, sampler=sampler_obj, pruner=pruner_obj,
                directions=dirs, load_if_exists=load_if_exists,
            )
            if [d.name.lower() for d in study.directions] != dirs:
                raise ConfigurationError(
                    f"study {name!r} exists with directions {[d.name.lower() for d in study.directions]}, "
                    f"not {dirs}; use another study_name"
                )
            if "search_space" not in study.user_attrs:
                study.set_user_attr("sampler", type(sampler_obj).__name__)
                study.set_user_attr("pruner", type(pruner_obj).__name__)
                if space is not None:
                    study.set_user_attr("search_space", space.to_dict())
            return study

        study = await asyncio.to_thread(create)
        ctx = context or StudyContext(study_name=name, directions=tuple(dirs))
        if ctx.study_name != name or ctx.directions != tuple(dirs):
            ctx = StudyContext(**{**ctx.to_dict(), "study_name": name, "directions": tuple(dirs)})
        self._contexts[name] = StudyContext(**{
            **ctx.to_dict(),
            "sampler_name": ctx.sampler_name or type(sampler_obj).__name__,
            "pruner_name": ctx.pruner_name or type(pruner_obj).__name__,
            "search_space": ctx.search_space or (space.to_dict() if space is not None else None),
        })
        return study

    def context_of(self, study: optuna.Study) -> StudyContext:
        ctx = self._contexts.get(study.study_name)
        if ctx is None:
            ctx = StudyContext(study_name=study.study_name,
                               directions=tuple(d.name.lower() for d in study.directions))
            self._contexts[study.study_name] = ctx
        return ctx

    def enqueue(self, study: optuna.Study, params: Mapping[str, Any], *, source: str = "user") -> None:
        """Queue a configuration to be evaluated before the sampler proposes its own."""
        study.enqueue_trial(dict(params), user_attrs={SOURCE_ATTR: source}, skip_if_exists=True)

    # ------------------------------------------------------------------------------------------
    # objectives
    # ------------------------------------------------------------------------------------------
    @staticmethod
    def create_validation_objective(algorithm: str, problem_type: str, X_train: Any, y_train: Any,
                                    X_val: Any, y_val: Any, **options: Any) -> ModelObjective:
        """Fit on train, score on validation (boosting: per-round reports + early stopping)."""
        if options.get("cv") is not None:
            raise ConfigurationError("create_validation_objective takes no cv; use create_cv_objective")
        return ModelObjective(algorithm, problem_type, X_train, y_train, X_val, y_val, **options)

    @staticmethod
    def create_cv_objective(algorithm: str, problem_type: str, X_train: Any, y_train: Any, *, cv: int = 5,
                            cv_strategy: str = "auto", **options: Any) -> ModelObjective:
        """K folds drawn from the training data only (stratified for classification; 'timeseries' option)."""
        return ModelObjective(algorithm, problem_type, X_train, y_train, cv=cv, cv_strategy=cv_strategy, **options)

    # ------------------------------------------------------------------------------------------
    # optimize
    # ------------------------------------------------------------------------------------------
    def reap_stale(self, study: optuna.Study) -> list[int]:
        """Fail now, as "stale", the RUNNING trials whose worker process is gone (and ownerless ones
        older than ``ownerless_grace_s``); their params are retried once. ``optimize`` does this on
        start and every ``stale_check_every`` trials. Returns the numbers of the trials failed."""
        return self._reap_stale(study, set())[0]

    def request_stop(self) -> None:
        """Ask running ``optimize`` calls to start no new trial (in-flight trials finish)."""
        self._stop_requested = True

    async def optimize(
        self,
        study: optuna.Study,
        objective: ModelObjective | Callable[[optuna.Trial], float | Sequence[float]],
        *,
        n_trials: int | None = None,
        timeout: float | None = None,
        n_jobs: int = 1,
        callbacks: Sequence[Callable[[optuna.Study, FrozenTrial], None]] | None = None,
        trial_timeout: float | None = None,
        max_failures: int | None = None,
        patience: int | None = None,
        min_improvement: float = 0.0,
        enqueue_defaults: bool = True,
        enqueue: Iterable[Mapping[str, Any]] = (),
        enqueue_portfolio: bool = True,
        time_reserve: Callable[[], float] | None = None,
    ) -> OptimizationResult:
        """Run trials until ``n_trials`` are done, ``timeout`` passes, or a stop rule fires.

        ``trial_timeout`` (seconds) fails a trial with reason "timeout"; for a ``ModelObjective``
        trials then run in worker processes that are killed and replaced at the deadline. For any
        other callable the trial runs in a thread that is abandoned at the deadline (a thread
        cannot be killed). ``timeout`` (seconds) bounds the whole call: trials still running when it
        passes are stopped and failed as "deadline" once some trial has completed (see the module
        docstring). ``patience``: stop after that many COMPLETE trials without an
        improvement larger than ``min_improvement``. ``max_failures``: stop after that many FAIL
        trials in this call. A fresh study of a ``ModelObjective`` starts with the model's defaults
        (``enqueue_defaults``), then the ``enqueue`` configurations, then the family's portfolio of
        robust configurations (``enqueue_portfolio``; only with the family's default search space,
        and only as many as ``n_trials`` leaves room for). ``time_reserve``: a callable giving the
        seconds to keep free before ``timeout`` ends (e.g. for final fits whose cost depends on the
        best trial so far); the effective deadline is ``timeout`` minus its current value.
        """
        _check_positive("n_trials", n_trials, integer=True)
        _check_positive("timeout", timeout)
        _check_positive("n_jobs", n_jobs, integer=True)
        _check_positive("trial_timeout", trial_timeout)
        _check_positive("max_failures", max_failures, integer=True)
        _check_positive("patience", patience, integer=True)
        if n_trials is None and timeout is None:
            raise ConfigurationError("give n_trials and/or timeout; an unbounded study would never end")
        if min_improvement < 0:
            raise ConfigurationError(f"min_improvement must be >= 0, got {min_improvement}")
        self._stop_requested = False
        multi = len(study.directions) > 1
        if isinstance(objective, ModelObjective) and not multi and study.direction.name.lower() != objective.direction:
            raise ConfigurationError(
                f"study {study.study_name!r} has direction {study.direction.name.lower()!r} but metric "
                f"{objective.metric.name!r} must be {objective.direction}d; create the study with "
                f"direction={objective.direction!r}"
            )
        if multi and patience:
            raise ConfigurationError("patience applies to single-objective studies only")

        await asyncio.to_thread(self._reap_stale, study, set())
        existing = await asyncio.to_thread(study.get_trials, False)
        if enqueue_defaults and isinstance(objective, ModelObjective) and not existing:
            study.enqueue_trial(objective.defaults_trial_params(), user_attrs={SOURCE_ATTR: "defaults"})
        enqueue = list(enqueue)
        for params in enqueue:
            self.enqueue(study, params)
        if enqueue_portfolio and isinstance(objective, ModelObjective) and not existing:
            room = None if n_trials is None else max(0, n_trials - int(enqueue_defaults) - len(enqueue))
            for config in objective.portfolio_trial_params()[:room]:
                self.enqueue(study, config, source="portfolio")

        run = _Run(study, n_trials, None if timeout is None else time.monotonic() + timeout,
                   max_failures, patience, min_improvement, time_reserve=time_reserve)
        run.has_complete = any(t.state == TrialState.COMPLETE for t in existing)
        if not multi:
            done = [t.value for t in existing if t.state == TrialState.COMPLETE and _finite(t.value)]
            if done:
                run.best = max(done) if study.direction.name == "MAXIMIZE" else min(done)
        runner = None
        if trial_timeout is not None and isinstance(objective, ModelObjective):
            runner = ProcessTrialRunner(objective, size=n_jobs)
        ctx = self.context_of(study)
        await self._notify("on_study_start", study, ctx)
        workers = [asyncio.create_task(self._worker(run, objective, runner, trial_timeout, callbacks or ()),
                                       name=f"hpo-worker-{i}") for i in range(n_jobs)]
        try:
            await asyncio.gather(*workers)
        except BaseException:
            for w in workers:
                w.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            self._fail_inflight(run, "cancelled")
            raise
        finally:
            if runner is not None:
                await asyncio.to_thread(runner.close)
        run.stop("n_trials" if run.stop_reason is None else run.stop_reason)
        result = await asyncio.to_thread(self._result, study, run)
        await self._notify("on_study_end", study, result)
        return result

    async def _worker(self, run: _Run, objective: Any, runner: ProcessTrialRunner | None,
                      trial_timeout: float | None, callbacks: Sequence[Callable[..., None]]) -> None:
        while True:
            trial = await self._reserve(run)
            if trial is None:
                return
            if trial is _WAIT:
                if not run.waited:
                    log.info("study %s: the last budget slot is held by a RUNNING trial without an owner; "
                             "waiting up to %.0f s before failing it as stale", run.study.study_name,
                             self.ownerless_grace_s)
                run.waited = True
                await asyncio.sleep(min(1.0, max(0.05, self.ownerless_grace_s / 10)))
                continue
            cancel = threading.Event()
            run.inflight[trial.number] = (trial, cancel)
            try:
                state, value, reason = await self._run_trial(run, trial, objective, runner, trial_timeout, cancel)
            except BaseException:
                cancel.set()
                raise
            frozen = await asyncio.to_thread(self._tell, run.study, trial, state, value, reason)
            run.inflight.pop(trial.number, None)
            self._account(run, frozen)
            await self._notify("on_trial_finished", run.study, frozen)
            for cb in callbacks:
                try:
                    cb(run.study, frozen)
                except Exception:  # noqa: BLE001 - a user callback must not kill the study
                    log.exception("callback %r raised; the study goes on", cb)
            if run.n_finished % self.stale_check_every == 0:
                await asyncio.to_thread(self._reap_stale, run.study, set(run.inflight))

    async def _reserve(self, run: _Run) -> optuna.Trial | None | object:
        """Atomically (per process) check the budget and ask for a trial; None when the run is over,
        ``_WAIT`` when the last slot is held by an ownerless trial that is not stale yet."""
        async with run.lock:
            if run.stop_reason is not None:
                return None
            if self._stop_requested:
                run.stop("stop_requested")
                return None
            deadline = run.deadline
            if deadline is not None and time.monotonic() >= deadline and (run.has_complete or run.inflight or run.n_finished):
                # past the deadline, a study without any result still runs one trial (once)
                run.stop("timeout")
                return None

            def ask() -> optuna.Trial | None | object:
                if run.n_trials is not None and _budget_used(run.study) >= run.n_trials:
                    # The last slots may be held by trials of a dead worker: reap, then look again.
                    _, pending = self._reap_stale(run.study, set(run.inflight))
                    if _budget_used(run.study) >= run.n_trials:
                        # An ownerless RUNNING trial (a worker died between ask and tagging it)
                        # cannot be judged before its grace period ends: wait for it, so the
                        # study still ends with n_trials finished trials.
                        return _WAIT if pending else None
                trial = run.study.ask()
                trial.set_user_attr(WORKER_ATTR, self.worker_id)
                return trial

            task = asyncio.ensure_future(asyncio.to_thread(ask))
            try:
                trial = await asyncio.shield(task)
            except asyncio.CancelledError:
                # ask() runs on in its thread; a trial it creates must not stay RUNNING.
                late = await task
                if isinstance(late, optuna.Trial):
                    self._tell(run.study, late, TrialState.FAIL, None, "cancelled")
                raise
            if trial is None:
                run.stop("n_trials")
            return trial

    async def _run_trial(self, run: _Run, trial: optuna.Trial, objective: Any, runner: ProcessTrialRunner | None,
                         trial_timeout: float | None, cancel: threading.Event) -> tuple[TrialState, Any, str | None]:
        def execute() -> Any:
            if isinstance(objective, ModelObjective):
                params = objective.suggest(trial)
                if runner is not None:
                    ev = runner.run(params, trial, timeout=trial_timeout, cancel=cancel)
                else:
                    ev = objective.evaluate(params, TrialReporter(trial, cancel))
                for k, v in ev.user_attrs.items():
                    trial.set_user_attr(k, v)
                return ev.value
            return objective(trial)

        fut = asyncio.wrap_future(run_in_thread(execute, name=f"hpo-trial-{trial.number}"))
        # A process runner enforces the deadline itself (kill + replace); the outer guard only
        # catches a runner that could not (e.g. stuck in suggest). Threads rely on the guard.
        guard = None if trial_timeout is None else (trial_timeout * 2 + 5 if runner else trial_timeout)
        try:
            value = await self._await_trial(run, fut, guard, cancel)
        except asyncio.CancelledError:
            fut.add_done_callback(_retrieve)  # the abandoned thread's outcome is moot: no "never retrieved"
            raise
        except _DeadlinePassed:
            return TrialState.FAIL, None, "deadline"
        except (TimeoutError, asyncio.TimeoutError, TrialTimeout):
            cancel.set()
            return TrialState.FAIL, None, "timeout"
        except optuna.TrialPruned:
            return TrialState.PRUNED, None, None
        except TrialCancelled:
            return TrialState.FAIL, None, "cancelled"
        except TrialError as e:
            return TrialState.FAIL, None, f"exception: {e}"
        except Exception as e:  # noqa: BLE001 - every failure becomes a FAIL state with its reason
            log.warning("trial %d failed: %s: %s", trial.number, type(e).__name__, e)
            return TrialState.FAIL, None, f"exception: {type(e).__name__}: {e}"
        values = list(value) if isinstance(value, (list, tuple)) else [value]
        try:
            values = [float(v) for v in values]
        except (TypeError, ValueError):
            return TrialState.FAIL, None, f"objective returned a non-number: {value!r}"
        if not all(math.isfinite(v) for v in values):
            return TrialState.FAIL, None, f"non-finite value: {value!r}"
        if len(values) != len(trial.study.directions):
            return TrialState.FAIL, None, (
                f"objective returned {len(values)} value(s) for a study with {len(trial.study.directions)} direction(s)"
            )
        return TrialState.COMPLETE, values if len(values) > 1 else values[0], None

    @staticmethod
    async def _await_trial(run: _Run, fut: asyncio.Future, guard: float | None, cancel: threading.Event) -> Any:
        """The trial's value. Raises TimeoutError past ``guard`` seconds, and :class:`_DeadlinePassed`
        when the study's deadline passes while a COMPLETE trial exists: the trial is asked to stop
        (``cancel``), and its thread is abandoned if it has not stopped within a short grace."""
        start = time.monotonic()
        while True:
            now = time.monotonic()
            deadline = run.deadline
            waits = [] if guard is None else [start + guard - now]
            if deadline is not None and run.has_complete:
                waits.append(deadline - now)
                if run.time_reserve is not None:
                    waits.append(1.0)  # the reserve may grow as other trials finish: look again
            elif deadline is not None:
                waits.append(1.0)  # no result yet: look again for a completion elsewhere
            timeout = max(0.0, min(waits)) if waits else None
            done, _ = await asyncio.wait({fut}, timeout=timeout)
            if done:
                return fut.result()
            now = time.monotonic()
            if guard is not None and now >= start + guard:
                fut.cancel()
                raise TimeoutError
            deadline = run.deadline
            if deadline is not None and run.has_complete and now >= deadline:
                cancel.set()
                done, _ = await asyncio.wait({fut}, timeout=_DEADLINE_GRACE_S)
                if done and not fut.cancelled() and fut.exception() is None:
                    return fut.result()  # it finished after all: keep its result
                fut.add_done_callback(_retrieve)
                raise _DeadlinePassed

    @staticmethod
    def _tell(study: optuna.Study, trial: optuna.Trial | int, state: TrialState, value: Any,
              reason: str | None) -> FrozenTrial:
        number = trial if isinstance(trial, int) else trial.number
        if reason is not None:
            _set_user_attr(study, number, FAIL_REASON_ATTR, reason)
        if state == TrialState.COMPLETE:
            return study.tell(trial, value, skip_if_finished=True)
        return study.tell(trial, state=state, skip_if_finished=True)

    def _account(self, run: _Run, frozen: FrozenTrial) -> None:
        run.n_finished += 1
        run.has_complete = run.has_complete or frozen.state == TrialState.COMPLETE
        if frozen.state == TrialState.FAIL:
            run.n_failed += 1
            if run.max_failures is not None and run.n_failed >= run.max_failures:
                run.stop("max_failures")
            return
        if frozen.state != TrialState.COMPLETE or len(run.study.directions) > 1:
            return
        v = float(frozen.value)
        maximize = run.study.direction.name == "MAXIMIZE"
        improved = run.best is None or (v > run.best + run.min_improvement if maximize
                                        else v < run.best - run.min_improvement)
        if run.best is None or (v > run.best if maximize else v < run.best):
            run.best = v
        run.since_improvement = 0 if improved else run.since_improvement + 1
        if run.patience is not None and run.since_improvement >= run.patience:
            run.stop("patience")

    def _fail_inflight(self, run: _Run, reason: str) -> None:
        """Synchronously fail every in-flight trial (used on cancellation: no awaiting here)."""
        for number, (trial, cancel) in list(run.inflight.items()):
            cancel.set()
            try:
                self._tell(run.study, trial, TrialState.FAIL, None, reason)
            except Exception:  # noqa: BLE001 - storage trouble while cancelling: log, go on
                log.exception("could not fail trial %d on cancellation", number)
            run.inflight.pop(number, None)

    def _reap_stale(self, study: optuna.Study, own: set[int]) -> tuple[list[int], list[int]]:
        """Fail RUNNING trials whose owner process is gone (reason "stale"); retry their params once.

        Returns the numbers of the trials failed, and of the ownerless trials still inside their
        grace period (they may belong to a live worker that has not tagged them yet)."""
        reaped: list[int] = []
        pending: list[int] = []
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if t.number in own:
                continue
            owner = t.user_attrs.get(WORKER_ATTR)
            if owner is None:
                # ask() and tagging the owner are two writes: a worker killed between them leaves an
                # ownerless RUNNING trial. Such a trial is stale once it is older than the grace period.
                started = t.datetime_start
                age = (datetime.datetime.now() - started).total_seconds() if started else 0.0
                if age < self.ownerless_grace_s:
                    pending.append(t.number)
                    continue
            elif owner == self.worker_id or worker_is_alive(owner) is not False:
                continue
            try:
                self._tell(study, t.number, TrialState.FAIL, None, "stale")
            except (RuntimeError, ValueError):  # another worker got there first
                continue
            reaped.append(t.number)
            if "retry_of" not in t.user_attrs and t.params:
                source = t.user_attrs.get(SOURCE_ATTR)
                study.enqueue_trial(dict(t.params), user_attrs={
                    SOURCE_ATTR: source if source == "defaults" else "retry", "retry_of": t.number})
        if reaped:
            log.warning("study %s: failed %d stale trial(s) of dead workers: %s", study.study_name, len(reaped), reaped)
        return reaped, pending

    async def _notify(self, method: str, study: optuna.Study, arg: Any) -> None:
        for listener in self.listeners:
            fn = getattr(listener, method, None)
            if fn is None:
                continue
            try:
                await fn(study, arg)
            except Exception:  # noqa: BLE001 - listeners are best-effort observers
                log.exception("listener %s.%s raised; the study goes on", type(listener).__name__, method)

    def _result(self, study: optuna.Study, run: _Run) -> OptimizationResult:
        trials = study.get_trials(deepcopy=False)
        by_state = {s: [t for t in trials if t.state == s] for s in TrialState}
        multi = len(study.directions) > 1
        best_params: dict[str, Any] = {}
        best_value = best_values = best_number = None
        best_attrs: dict[str, Any] = {}
        pareto: list[dict[str, Any]] = []
        if by_state[TrialState.COMPLETE]:
            if multi:
                front = study.best_trials
                pareto = [{"number": t.number, "values": t.values, "params": t.params} for t in front]
                best = front[0]
                best_values = list(best.values)
            else:
                best = study.best_trial
                best_value = float(best.value)
            best_params, best_number, best_attrs = dict(best.params), best.number, dict(best.user_attrs)
        return OptimizationResult(
            study_name=study.study_name,
            directions=tuple(d.name.lower() for d in study.directions),
            best_params=best_params,
            best_value=best_value,
            best_values=best_values,
            best_trial_number=best_number,
            n_trials=sum(1 for t in trials if t.state != TrialState.WAITING),
            n_completed=len(by_state[TrialState.COMPLETE]),
            n_pruned=len(by_state[TrialState.PRUNED]),
            n_failed=len(by_state[TrialState.FAIL]),
            duration_s=round(time.monotonic() - run.started, 3),
            stop_reason=run.stop_reason or "n_trials",
            best_user_attrs=best_attrs,
            pareto_front=pareto,
            failure_reasons={t.number: str(t.user_attrs.get(FAIL_REASON_ATTR, "unknown"))
                             for t in by_state[TrialState.FAIL]},
        )

    # ------------------------------------------------------------------------------------------
    # analysis
    # ------------------------------------------------------------------------------------------
    @staticmethod
    def get_optimization_history(study: optuna.Study) -> pd.DataFrame:
        """One row per trial: number, state, value(s), best so far, params, duration, fail reason."""
        rows = []
        multi = len(study.directions) > 1
        maximize = not multi and study.direction.name == "MAXIMIZE"
        best: float | None = None
        for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
            row: dict[str, Any] = {"number": t.number, "state": t.state.name}
            if multi:
                row["values"] = t.values
            else:
                row["value"] = t.value
                if t.state == TrialState.COMPLETE and t.value is not None:
                    best = t.value if best is None else (max(best, t.value) if maximize else min(best, t.value))
                row["best_value"] = best
            row["duration_s"] = t.duration.total_seconds() if t.duration is not None else None
            row["source"] = t.user_attrs.get(SOURCE_ATTR, "sampler")
            row["fail_reason"] = t.user_attrs.get(FAIL_REASON_ATTR)
            row["datetime_start"] = t.datetime_start
            for k, v in t.params.items():
                row[f"params_{k}"] = v
            rows.append(row)
        return pd.DataFrame(rows)


def _set_user_attr(study: optuna.Study, number: int, key: str, value: Any) -> None:
    storage = study._storage  # noqa: SLF001 - Optuna offers no public per-number setter
    trial_id = storage.get_trial_id_from_study_id_trial_number(study._study_id, number)  # noqa: SLF001
    storage.set_trial_user_attr(trial_id, key, value)


def _finite(v: float | None) -> bool:
    return v is not None and math.isfinite(v)


def _check_positive(name: str, value: Any, *, integer: bool = False) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and int(value) != value) or value <= 0:
        kind = "a positive integer" if integer else "a positive number"
        raise ConfigurationError(f"{name} must be {kind} or None, got {value!r}")
