"""The async optimizer (F1, F10, F11a): ask/tell on the event loop, fits in workers.

Each of ``n_jobs`` asyncio workers loops: reserve a slot in the budget, ``ask`` (in a thread: the
sampler and storage may take milliseconds), run the trial in a thread or a worker process, ``tell``
the outcome, then notify listeners (history database, MLflow, progress) on the loop. The loop is
never blocked by a fit, so other tasks keep running.

Budget: ``n_trials`` is the number of trials the *study* should hold (a resumed study only runs
what is missing), exact for any number of ``optimize`` calls, processes and hosts sharing the study:
a trial is taken through the study's ledger (:mod:`.trial_slots`; in PostgreSQL for a
PostgreSQL storage), which counts the budget, reserves a slot and asks Optuna in one transaction
under the study's lock. A running trial holds its worker's lease, renewed by a heartbeat; when it
lapses (the worker died, froze or lost the database for longer than ``lease_duration``), the next
worker to reserve fails the trial as "stale" and retries its params once. Trials failed as
"stale", "cancelled" or "deadline" do not use the budget; every other trial does, so a study whose
trials all fail still ends. When the budget is used but other workers' trials still run, a worker
waits for them (one may lapse and free its slot) instead of ending short. Failures are FAIL states
with a reason in the trial's ``fail_reason`` user attribute, never a fake score.

Timeout: no trial starts after the study's ``timeout``, and trials still running then are stopped
(boosting fits at their next round, worker processes killed, other threads abandoned after a short
grace) and failed as "deadline" -- unless no trial has completed yet, in which case the first
completion is awaited, so a study always has a result. Cancelling the awaiting task fails the in-flight trials with reason
"cancelled" before the cancellation propagates, so no trial stays RUNNING.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from ._run_state import FIRST_WAIT_S, RunState, holding_lease
from ._seeding import MODEL_OBJECTIVES, check_enqueue, enqueue_config, seed_study
from ._storages import new_ledger, resolve_storage
from ._study_result import optimization_history, study_result
from ._trial_run import run_trial
from .errors import ConfigurationError, StudyMismatchError
from .executors import ProcessTrialRunner
from .factories import PrunerFactory, SamplerFactory
from .family_search import FamilySearchObjective, is_family_search
from .multi_objective import ParetoPick, apply_pick
from .objectives import ModelObjective
from .search_space import SearchSpace, parse_search_space
from .trial_cache import TrialCache
from .trial_slots import Reservation, TrialSlots, check_lease_settings, new_worker_id, tell_trial, uses_budget
from .types import FAIL_REASON_ATTR, OptimizationResult, StudyContext, TrialListener

__all__ = ["OptunaOptimizer", "resolve_storage", "uses_budget"]

log = logging.getLogger("src.mlops.optimizer")

_DIRECTIONS = ("maximize", "minimize")
#: returned by ``_reserve`` when the budget is used but other workers' trials still run
_WAIT = object()


#: how long a cleanup still waits for a thread's work once it is cancelled again (a second Ctrl-C)
SETTLE_PATIENCE_S = 5.0


async def _settled(fut: asyncio.Future[Any], *, patience: float | None = None) -> Any:
    """The result of ``fut`` once it is done (``None`` if it failed or was cancelled itself): for a
    cleanup that must see the end of a thread's work (a reservation that may have asked a trial).
    A further cancellation of the caller does not cut the wait (it would abandon the thread's result,
    leaving its trial RUNNING), but it bounds it: ``patience`` more seconds at most, so a second Ctrl-C
    still stops a run whose database hangs (a trial left RUNNING then is failed as "stale" once its
    lease lapses). The caller re-raises the cancellation it is handling."""
    patience = SETTLE_PATIENCE_S if patience is None else patience
    give_up = None
    while not fut.done():
        try:
            if give_up is None:
                await asyncio.shield(fut)
            else:
                await asyncio.wait_for(asyncio.shield(fut), max(0.0, give_up - time.monotonic()))
        except asyncio.CancelledError:
            give_up = time.monotonic() + patience if give_up is None else give_up
        except (TimeoutError, asyncio.TimeoutError):
            return None
        except Exception:  # noqa: BLE001 - its failure is reported where it is awaited normally
            break
    if fut.cancelled() or fut.exception() is not None:
        return None
    return fut.result()


class OptunaOptimizer:
    """Async front of Optuna. Listeners (history DB, MLflow, progress) observe every finished trial.

    >>> opt = OptunaOptimizer()
    >>> study = await opt.create_study(study_name="demo", direction="maximize")
    >>> objective = opt.create_validation_objective("lightgbm", "binary_classification", X_tr, y_tr, X_va, y_va)
    >>> result = await opt.optimize(study, objective, n_trials=30, n_jobs=2, trial_timeout=60)

    Args:
        listeners: observers of studies and trials (history database, MLflow, progress).
        storage: default storage of ``create_study`` (None: in memory; a URL; an Optuna storage).
        heartbeat_interval: seconds between renewals of this optimizer's lease while it optimizes.
        lease_duration: seconds a lease lasts without renewal (at least two heartbeats). When it
            lapses, another worker fails this optimizer's running trials as "stale". With a
            PostgreSQL storage a dead worker's trials go sooner: once its database session has ended
            and it has missed two heartbeats.
        host_id: the host named in this optimizer's worker id (default: the host name).

    The optimizer opens database connections for a URL storage and its ledger: ``close()`` (or
    ``async with OptunaOptimizer() as opt``) closes them.
    """

    def __init__(self, *, listeners: Iterable[TrialListener] = (), storage: Any = None,
                 heartbeat_interval: float = 2.0, lease_duration: float = 60.0, host_id: str | None = None) -> None:
        check_lease_settings(heartbeat_interval, lease_duration)
        self.listeners: list[TrialListener] = list(listeners)
        self.storage = storage
        self.heartbeat_interval = float(heartbeat_interval)
        self.lease_duration = float(lease_duration)
        self.host_id = host_id
        self.worker_id = new_worker_id(host_id)
        self._contexts: dict[str, StudyContext] = {}
        self._stop_requested = False
        self._storages: dict[str, optuna.storages.BaseStorage] = {}  # URL -> storage opened by this optimizer
        self._slots: dict[int, tuple[Any, TrialSlots]] = {}  # id(storage) -> (storage, this worker's ledger)

    def close(self) -> None:
        """End this optimizer's leases and close the connections it opened (storages, ledgers)."""
        slots, self._slots = list(self._slots.values()), {}
        for _, s in slots:
            s.close()
        storages, self._storages = list(self._storages.values()), {}
        for storage in storages:
            close = getattr(storage, "close", None)
            if close is not None:
                close()

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)

    async def __aenter__(self) -> OptunaOptimizer:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    def open_storage(self, storage: Any) -> optuna.storages.BaseStorage | None:
        """``resolve_storage``, opening one storage per URL for the life of this optimizer."""
        if isinstance(storage, str):
            if storage not in self._storages:
                self._storages[storage] = resolve_storage(storage)
            return self._storages[storage]
        return resolve_storage(storage)

    def slots_for(self, study: optuna.Study) -> TrialSlots:
        """This optimizer's ledger of ``study``'s storage (PostgreSQL for a PostgreSQL storage)."""
        storage = study._storage  # noqa: SLF001 - the storage object identifies the ledger
        entry = self._slots.get(id(storage))
        if entry is None or entry[0] is not storage:
            slots = new_ledger(storage, worker_id=self.worker_id, host_id=self.host_id,
                               heartbeat_interval=self.heartbeat_interval, lease_duration=self.lease_duration)
            entry = self._slots[id(storage)] = (storage, slots)
        return entry[1]

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
        # a multi-objective study keeps the default TPE (Optuna's multi-objective TPE, as Optuna 5 does): NSGA-II
        # draws its whole first generation (50 trials) at random, and measured on real tables with 30 trials
        # (bench/bench_multiobjective.py) its picked points were larger and slower than TPE's
        sampler_obj = SamplerFactory.create(sampler, seed=seed, search_space=space, **dict(sampler_options or {}))
        if len(dirs) > 1:
            pruner_obj: optuna.pruners.BasePruner = optuna.pruners.NopPruner()  # MO studies cannot prune
        else:
            pruner_obj = PrunerFactory.create(pruner, **dict(pruner_options or {}))
        name = study_name or f"study-{uuid.uuid4().hex[:12]}"
        store = self.open_storage(storage if storage is not None else self.storage)

        def create() -> optuna.Study:
            study = optuna.create_study(
                study_name=name, storage=store, sampler=sampler_obj, pruner=pruner_obj,
                directions=dirs, load_if_exists=load_if_exists,
            )
            if [d.name.lower() for d in study.directions] != dirs:
                raise StudyMismatchError(
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
        enqueue_config(study, params, source=source)

    # ------------------------------------------------------------------------------------------
    # objectives
    # ------------------------------------------------------------------------------------------
    @staticmethod
    def create_validation_objective(algorithm: str | Sequence[str], problem_type: str, X_train: Any, y_train: Any,
                                    X_val: Any, y_val: Any, **options: Any) -> ModelObjective | FamilySearchObjective:
        """Fit on train, score on validation (boosting: per-round reports + early stopping). ``algorithm``
        "auto" or a list of families searches the family too (:class:`FamilySearchObjective`)."""
        if options.get("cv") is not None:
            raise ConfigurationError("create_validation_objective takes no cv; use create_cv_objective")
        return _model_objective(algorithm, problem_type, X_train, y_train, X_val, y_val, **options)

    @staticmethod
    def create_cv_objective(algorithm: str | Sequence[str], problem_type: str, X_train: Any, y_train: Any, *,
                            cv: int = 5, cv_strategy: str = "auto",
                            **options: Any) -> ModelObjective | FamilySearchObjective:
        """K folds drawn from the training data only (stratified for classification; 'timeseries' option)."""
        return _model_objective(algorithm, problem_type, X_train, y_train, cv=cv, cv_strategy=cv_strategy, **options)

    # ------------------------------------------------------------------------------------------
    # optimize
    # ------------------------------------------------------------------------------------------
    def reap_stale(self, study: optuna.Study) -> list[int]:
        """Fail now, as "stale", the RUNNING trials of workers whose lease lapsed (and, in PostgreSQL,
        trials whose worker died between asking for them and recording their slot); their params
        are retried once. ``optimize`` does this at every reservation. Returns the trials' numbers."""
        return self.slots_for(study).reap(study)

    def request_stop(self) -> None:
        """Ask running ``optimize`` calls to start no new trial (in-flight trials finish)."""
        self._stop_requested = True

    async def optimize(
        self,
        study: optuna.Study,
        objective: ModelObjective | FamilySearchObjective | Callable[[optuna.Trial], float | Sequence[float]],
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
        max_trials: int | None = None,
        warm_start: Iterable[Mapping[str, Any]] = (),
        trial_cache: TrialCache | None = None,
        pick: ParetoPick | None = None,
    ) -> OptimizationResult:
        """Run trials until the study holds ``n_trials``, ``timeout`` passes, or a stop rule fires.

        ``trial_timeout`` (seconds) fails a trial with reason "timeout"; for a ``ModelObjective``
        trials then run in worker processes that are killed and replaced at the deadline. For any
        other callable the trial runs in a thread that is abandoned at the deadline (a thread
        cannot be killed). ``timeout`` (seconds) bounds the whole call: trials still running when it
        passes are stopped and failed as "deadline" once some trial has completed (see the module
        docstring). ``patience``: stop after that many COMPLETE trials without an
        improvement larger than ``min_improvement``. ``max_failures``: stop after that many FAIL
        trials in this call. A fresh study of a ``ModelObjective`` starts with the model's defaults
        (``enqueue_defaults``; a ``FamilySearchObjective``: every family's defaults, cheapest first),
        then the ``enqueue`` configurations, then the family's portfolio of robust configurations (``enqueue_portfolio``; only with the family's default search space,
        and only as many as ``n_trials`` leaves room for) -- once per study, however many workers
        start it. ``time_reserve``: a callable giving the seconds to keep free before ``timeout``
        ends (e.g. for final fits whose cost depends on the best trial so far); the effective
        deadline is ``timeout`` minus its current value. ``max_trials``: this call starts at most
        that many trials (a worker's own share; the study still holds at most ``n_trials``).
        ``warm_start``: configurations from earlier studies (:mod:`.warm_start`), enqueued in a fresh
        study after the ``enqueue`` ones with ``source="history"``. ``trial_cache`` (a
        :class:`~.trial_cache.TrialCache` of this objective): a trial whose params were evaluated
        before is told COMPLETE with the stored result, without calling the objective. ``pick``: in a
        multi-objective study of an objective with ``objectives``, the rule choosing the front's point
        that becomes the result's best (:mod:`.multi_objective`).
        """
        _check_positive("n_trials", n_trials, integer=True)
        _check_positive("max_trials", max_trials, integer=True)
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
        if isinstance(objective, MODEL_OBJECTIVES) and not multi and study.direction.name.lower() != objective.direction:
            raise ConfigurationError(
                f"study {study.study_name!r} has direction {study.direction.name.lower()!r} but metric "
                f"{objective.metric.name!r} must be {objective.direction}d; create the study with "
                f"direction={objective.direction!r}"
            )
        if multi and patience:
            raise ConfigurationError("patience applies to single-objective studies only")
        enqueue, warm_start = list(enqueue), list(warm_start)
        check_enqueue(objective, enqueue)

        slots = await asyncio.to_thread(self.slots_for, study)
        async with holding_lease(slots, study):
            await asyncio.to_thread(slots.run_locked, study, lambda: seed_study(
                study, objective, n_trials=n_trials, enqueue_defaults=enqueue_defaults, enqueue=enqueue,
                enqueue_portfolio=enqueue_portfolio, warm_start=warm_start))
            existing = await asyncio.to_thread(study.get_trials, False)
            run = RunState(study, slots, n_trials, None if timeout is None else time.monotonic() + timeout,
                       max_failures, patience, min_improvement, time_reserve=time_reserve, max_trials=max_trials,
                       cache=trial_cache if isinstance(objective, ModelObjective) and not multi else None)
            run.has_complete = any(t.state == TrialState.COMPLETE for t in existing)
            if not multi:
                done = [t.value for t in existing if t.state == TrialState.COMPLETE and _finite(t.value)]
                if done:
                    run.best = max(done) if study.direction.name == "MAXIMIZE" else min(done)
            runner = None
            if trial_timeout is not None and isinstance(objective, MODEL_OBJECTIVES):
                # pickling the objective (its data) for the worker processes is not the loop's work
                runner = await asyncio.to_thread(ProcessTrialRunner, objective, size=n_jobs)
            ctx = self.context_of(study)
            await self._notify("on_study_start", study, ctx)
            workers = [asyncio.create_task(self._worker(run, objective, runner, trial_timeout, callbacks or ()),
                                           name=f"hpo-worker-{i}") for i in range(n_jobs)]
            try:
                await asyncio.gather(*workers)
            except BaseException:
                for w in workers:
                    w.cancel()
                # a second cancellation (a second Ctrl-C) must not cut the cleanup short
                await _settled(asyncio.gather(*workers, return_exceptions=True))
                self._fail_inflight(run, "cancelled")
                raise
            finally:
                if runner is not None:
                    await asyncio.to_thread(runner.close)
            run.stop("n_trials" if run.stop_reason is None else run.stop_reason)
            result = await asyncio.to_thread(study_result, study, started=run.started, stop_reason=run.stop_reason)
            if multi and pick is not None and getattr(objective, "objective_set", None) is not None:
                await asyncio.to_thread(apply_pick, result, study.get_trials(deepcopy=False), objective.objective_set, pick)
            if isinstance(objective, FamilySearchObjective):
                await asyncio.to_thread(lambda: objective.annotate(result, study.get_trials(deepcopy=False)))
            await self._notify("on_study_end", study, result)
            return result

    async def _worker(self, run: RunState, objective: Any, runner: ProcessTrialRunner | None,
                      trial_timeout: float | None, callbacks: Sequence[Callable[..., None]]) -> None:
        while True:
            trial = await self._reserve(run)
            if trial is None:
                return
            if trial is _WAIT:
                if not run.waited:
                    log.info("study %s: the budget is used but trials of other workers still run; waiting for "
                             "them (a worker whose lease lapses frees its slot)", run.study.study_name)
                run.waited = True
                await asyncio.sleep(run.wait_delay)  # short at first: most trials of others just finish
                run.wait_delay = min(run.wait_delay * 2, 1.0, self.heartbeat_interval)
                continue
            run.wait_delay = FIRST_WAIT_S
            cancel = threading.Event()
            run.inflight[trial.number] = (trial, cancel)
            try:
                state, value, reason = await run_trial(run, trial, objective, runner, trial_timeout, cancel)
            except BaseException:
                cancel.set()
                raise
            frozen = await asyncio.to_thread(self._tell, run, trial, state, value, reason)
            run.inflight.pop(trial.number, None)
            if run.cache is not None:
                await run.cache.store_trial(run.study.study_name, frozen)
            run.account(frozen)
            await self._notify("on_trial_finished", run.study, frozen)
            for cb in callbacks:  # in a thread, as Optuna calls them with n_jobs > 1: never on the loop
                try:
                    await asyncio.to_thread(cb, run.study, frozen)
                except Exception:  # noqa: BLE001 - a user callback must not kill the study
                    log.exception("callback %r raised; the study goes on", cb)

    async def _reserve(self, run: RunState) -> optuna.Trial | None | object:
        """Take a trial through the study's ledger (count, reserve, ask: one transaction under the
        study's lock); None when the run is over, ``_WAIT`` when the budget is used but other
        workers' trials still run."""
        if run.stop_reason is not None:
            return None
        if self._stop_requested:
            run.stop("stop_requested")
            return None
        deadline = run.deadline
        if deadline is not None and time.monotonic() >= deadline and (run.has_complete or run.n_started):
            # past the deadline, a study without any result still runs one trial (once)
            run.stop("timeout")
            return None
        if run.max_trials is not None and run.n_started >= run.max_trials:
            run.stop("max_trials")
            return None
        run.n_started += 1  # claimed before the await: concurrent workers of this run see it

        def reserve() -> Reservation:
            return run.slots.reserve(run.study, n_trials=run.n_trials, ask=run.study.ask)

        task = asyncio.ensure_future(asyncio.to_thread(reserve))
        try:
            reservation = await asyncio.shield(task)
        except asyncio.CancelledError:
            # the reservation runs on in its thread; a trial it took must not stay RUNNING, even when
            # another cancellation comes while it is awaited (it would cancel the wait, not the thread)
            late = await _settled(task)
            if late is not None and late.trial is not None:
                self._tell(run, late.trial, TrialState.FAIL, None, "cancelled")
            raise
        if reservation.trial is None:
            run.n_started -= 1
            if reservation.wait:
                return _WAIT
            run.stop("n_trials")
            return None
        return reservation.trial

    @staticmethod
    def _tell(run: RunState, trial: optuna.Trial, state: TrialState, value: Any, reason: str | None) -> FrozenTrial:
        """Tell Optuna, then give the trial's slot its final state. A trial another worker failed as
        stale meanwhile (this worker's lease lapsed) stays failed: Optuna refuses the late result."""
        frozen = tell_trial(run.study, trial, state, value, reason)
        if frozen.state != state or frozen.user_attrs.get(FAIL_REASON_ATTR) != reason:
            log.warning("study %s: trial %d was already %s (%s) when this worker finished it; its result is "
                        "dropped", run.study.study_name, trial.number, frozen.state.name,
                        frozen.user_attrs.get(FAIL_REASON_ATTR))
        run.slots.finish(run.study, trial.number, frozen)
        return frozen

    def _fail_inflight(self, run: RunState, reason: str) -> None:
        """Synchronously fail every in-flight trial (used on cancellation: no awaiting here)."""
        for number, (trial, cancel) in list(run.inflight.items()):
            cancel.set()
            try:
                self._tell(run, trial, TrialState.FAIL, None, reason)
            except Exception:  # noqa: BLE001 - storage trouble while cancelling: log, go on
                log.exception("could not fail trial %d on cancellation", number)
            run.inflight.pop(number, None)

    async def _notify(self, method: str, study: optuna.Study, arg: Any) -> None:
        for listener in self.listeners:
            fn = getattr(listener, method, None)
            if fn is None:
                continue
            try:
                await fn(study, arg)
            except Exception:  # noqa: BLE001 - listeners are best-effort observers
                log.exception("listener %s.%s raised; the study goes on", type(listener).__name__, method)

    @staticmethod
    def get_optimization_history(study: optuna.Study) -> pd.DataFrame:
        """One row per trial: number, state, value(s), best so far, params, duration, fail reason."""
        return optimization_history(study)


def _model_objective(algorithm: Any, *args: Any, **options: Any) -> ModelObjective | FamilySearchObjective:
    """A :class:`FamilySearchObjective` for "auto" or several families, else the family's ModelObjective."""
    if isinstance(algorithm, (str, list, tuple)) and is_family_search(algorithm):
        return FamilySearchObjective(algorithm, *args, **options)
    return ModelObjective(algorithm, *args, **options)


def _finite(v: float | None) -> bool:
    return v is not None and math.isfinite(v)


def _check_positive(name: str, value: Any, *, integer: bool = False) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and int(value) != value) or value <= 0:
        kind = "a positive integer" if integer else "a positive number"
        raise ConfigurationError(f"{name} must be {kind} or None, got {value!r}")
