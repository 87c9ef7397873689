"""The trial lifecycle: budget slots, worker leases and heartbeats (SPEC F25).

Every trial the engine starts holds a *slot*; a study's slots are its budget ledger. A worker

* **reserves** a trial under the study's lock, in one transaction: it reconciles the ledger with
  Optuna (below), counts the slots that use the budget and, if ``n_trials`` leaves room, asks Optuna
  for the trial and records the trial's slot. ``n_trials`` is therefore exact for any number of
  workers sharing the ledger; a worker killed inside the transaction leaves no slot behind;
* **holds a lease** while its trials run, renewed by a :class:`Heartbeat` thread; when the lease
  lapses (judged by the ledger's clock), the worker's running trials become "stale";
* **finishes** a trial: after ``tell``, its slot takes the trial's final state.

Reconciling, by whichever worker holds the study's lock next:

* a RUNNING slot of a worker whose lease lapsed: the trial is failed as "stale" (unless it finished
  after all: a worker killed between ``tell`` and finishing the slot) and its params are retried
  once;
* a trial without a slot: a finished one is adopted (a study from before slots existed, or trials
  written by plain Optuna); a RUNNING one is an orphan where every engine trial gets its slot in the
  transaction that asks for it (PostgreSQL: its worker died before committing) and is failed as
  stale and retried; the in-memory ledger cannot know that, so there it is counted, never judged.

Trials failed as "stale", "cancelled" or "deadline" free their slot (:func:`uses_budget`).

Implementations: :class:`InMemoryTrialSlots` (one process; a monotonic clock; shared by every
optimizer of the same Optuna storage object) and
:class:`~src.mlops.persistence.pg_trial_slots.PostgresTrialSlots` (many processes and hosts; the
database's clock).
"""

from __future__ import annotations

import abc
import logging
import os
import secrets
import socket
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import optuna
from optuna.trial import FrozenTrial, TrialState

from .errors import ConfigurationError
from .types import FAIL_REASON_ATTR, SOURCE_ATTR

__all__ = [
    "FREE_FAIL_REASONS",
    "SEEDED_ATTR",
    "Heartbeat",
    "InMemoryTrialSlots",
    "Reservation",
    "SlotTransaction",
    "Survey",
    "TrialSlots",
    "new_worker_id",
    "set_trial_user_attr",
    "tell_trial",
    "uses_budget",
]

log = logging.getLogger("src.mlops.trial_slots")

#: FAIL reasons that do not use the budget: the trial never really ran (or is retried).
FREE_FAIL_REASONS = ("stale", "cancelled", "deadline")
#: study user attribute set once the study's first trials (defaults, portfolio) are enqueued.
SEEDED_ATTR = "hpo.seeded"
#: user attribute of a retried trial: the number of the stale trial it repeats.
RETRY_OF_ATTR = "retry_of"

_T = TypeVar("_T")


def uses_budget(trial: FrozenTrial) -> bool:
    """Whether ``trial`` counts towards ``n_trials``: finished or running, except stale/cancelled/deadline fails."""
    if trial.state == TrialState.FAIL:
        return trial.user_attrs.get(FAIL_REASON_ATTR) not in FREE_FAIL_REASONS
    return trial.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)


def new_worker_id(host: str | None = None) -> str:
    """``host:pid:token`` -- names a worker for people (liveness is judged by its lease, never by this)."""
    return f"{host or socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def set_trial_user_attr(study: optuna.Study, number: int, key: str, value: Any) -> None:
    """Set a user attribute of trial ``number`` (of any worker) of ``study``."""
    storage = study._storage  # noqa: SLF001 - Optuna offers no public per-number setter
    trial_id = storage.get_trial_id_from_study_id_trial_number(study._study_id, number)  # noqa: SLF001
    storage.set_trial_user_attr(trial_id, key, value)


def tell_trial(study: optuna.Study, trial: optuna.Trial | int, state: TrialState, value: Any,
               reason: str | None) -> FrozenTrial:
    """``tell`` with the FAIL reason recorded first; a trial finished already (by a reaper) is left as it is."""
    number = trial if isinstance(trial, int) else trial.number
    if reason is not None:
        try:
            set_trial_user_attr(study, number, FAIL_REASON_ATTR, reason)
        except optuna.exceptions.UpdateFinishedTrialError:
            pass  # tell below returns the trial as it finished
    if state == TrialState.COMPLETE:
        return study.tell(trial, value, skip_if_finished=True)
    return study.tell(trial, state=state, skip_if_finished=True)


@dataclass
class Reservation:
    """Outcome of :meth:`TrialSlots.reserve`."""

    trial: optuna.Trial | None
    #: no room in the budget, but other workers' trials still run (one may lapse and free its slot)
    wait: bool = False
    #: trials this reservation failed as stale
    reaped: list[int] = field(default_factory=list)


@dataclass
class Survey:
    """The ledger of a study as a reservation finds it (one round trip in PostgreSQL)."""

    #: ``(trial number, lapsed)`` of the RUNNING slots of other workers whose lease lapsed (``True``),
    #: and of trials running outside the engine (``False``)
    lapsed: list[tuple[int, bool]]
    #: which of the asked trial numbers have a slot
    known: set[int]
    #: slots using the budget
    used: int
    #: RUNNING slots of other workers
    others_running: int


class SlotTransaction(Protocol):
    """What a ledger offers inside the study's lock (one transaction)."""

    #: trial numbers known to have a slot (filled by ``survey`` and ``add``)
    confirmed: set[int]

    def survey(self, numbers: Sequence[int]) -> Survey:
        """Lapsed and foreign running slots, which of ``numbers`` have a slot, and the usage."""

    def add(self, number: int, state: str, reason: str | None, uses_budget: bool, *, mine: bool) -> None:
        """Record a slot (``mine``: held by this worker's lease; otherwise owned by nobody)."""

    def settle(self, number: int, state: str, reason: str | None, uses_budget: bool) -> None:
        """Give a RUNNING slot its final state."""

    def usage(self) -> tuple[int, int]:
        """``(slots using the budget, RUNNING slots of other workers)``."""


class Heartbeat:
    """A daemon thread calling ``renew()`` every ``interval`` seconds while the context is open.

    ``renew()`` runs once on entry, in the caller's thread, so a worker idle for longer than its
    lease holds a fresh one before it reserves anything. A failing renewal is logged and tried again
    at the next beat (the lease is long enough to ride out a short database outage).
    """

    def __init__(self, renew: Callable[[], None], interval: float, *, name: str = "hpo-heartbeat") -> None:
        self.renew, self.interval, self.name = renew, interval, name
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.failures = 0

    def __enter__(self) -> Heartbeat:
        self.renew()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=max(5.0, self.interval))
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.renew()
            except Exception as e:  # noqa: BLE001 - keep beating; the lease covers short outages
                self.failures += 1
                log.warning("heartbeat: could not renew the lease (%s: %s); retrying in %g s",
                            type(e).__name__, e, self.interval)


class TrialSlots(abc.ABC):
    """One worker's view of the trial ledger (see the module docstring).

    Args:
        worker_id: names this worker (``host:pid:token``).
        heartbeat_interval: seconds between lease renewals.
        lease_duration: seconds a lease lasts without renewal; at least ``2 * heartbeat_interval``.
    """

    #: whether a RUNNING trial without a slot is an orphan of a dead worker (see the module docstring)
    reaps_unslotted: bool = False

    def __init__(self, *, worker_id: str, heartbeat_interval: float, lease_duration: float) -> None:
        check_lease_settings(heartbeat_interval, lease_duration)
        self.worker_id = worker_id
        self.heartbeat_interval = float(heartbeat_interval)
        self.lease_duration = float(lease_duration)
        self._known: dict[int, set[int]] = {}  # study id -> trial numbers known to have a slot
        self._beat_lock = threading.Lock()
        self._beats = 0
        self._heartbeat: Heartbeat | None = None

    # -- what an implementation provides ---------------------------------------------------------
    @abc.abstractmethod
    def _in_transaction(self, study: optuna.Study, fn: Callable[[SlotTransaction], _T]) -> _T:
        """``fn(transaction)`` under the study's lock, in one transaction."""

    @abc.abstractmethod
    def renew(self) -> None:
        """Renew this worker's lease."""

    @abc.abstractmethod
    def finish(self, study: optuna.Study, number: int, frozen: FrozenTrial) -> None:
        """Give this worker's slot of trial ``number`` the final state of ``frozen``."""

    def flush(self) -> None:
        """Write what ``finish`` queued (a no-op where nothing is queued)."""

    def close(self) -> None:
        """End this worker's lease (anything it still holds becomes stale)."""

    # -- the protocol ------------------------------------------------------------------------------
    def reserve(self, study: optuna.Study, *, n_trials: int | None,
                ask: Callable[[], optuna.Trial]) -> Reservation:
        """Reconcile, count, and -- if ``n_trials`` leaves room -- ``ask()`` and record the slot."""

        def txn(t: SlotTransaction) -> Reservation:
            reaped, (used, others_running) = self._reconcile(study, t)
            if n_trials is not None and used >= n_trials:
                return Reservation(None, wait=others_running > 0, reaped=reaped)
            trial = ask()
            t.add(trial.number, TrialState.RUNNING.name, None, True, mine=True)
            return Reservation(trial, reaped=reaped)

        return self._transact(study, txn)

    def reap(self, study: optuna.Study) -> list[int]:
        """Reconcile now; the numbers of the trials failed as stale."""
        return self._transact(study, lambda t: self._reconcile(study, t)[0])

    def run_locked(self, study: optuna.Study, fn: Callable[[], _T]) -> _T:
        """``fn()`` under the study's lock (e.g. enqueue a fresh study's first trials once)."""
        return self._transact(study, lambda t: fn())

    def heartbeat(self) -> _HeartbeatScope:
        """Context: the lease is renewed while it is open (shared by concurrent ``optimize`` calls)."""
        return _HeartbeatScope(self)

    # -- internals ---------------------------------------------------------------------------------
    def _transact(self, study: optuna.Study, fn: Callable[[SlotTransaction], _T]) -> _T:
        confirmed: set[int] = set()

        def wrapped(t: SlotTransaction) -> _T:
            out = fn(t)
            confirmed.update(t.confirmed)
            return out

        out = self._in_transaction(study, wrapped)
        self._known.setdefault(study._study_id, set()).update(confirmed)  # noqa: SLF001 - committed
        return out

    def _reconcile(self, study: optuna.Study, t: SlotTransaction) -> tuple[list[int], tuple[int, int]]:
        """Bring the ledger in line with Optuna (see the module docstring); the trials failed as
        stale, and ``(slots using the budget, RUNNING slots of other workers)`` afterwards."""
        trials = study.get_trials(deepcopy=False)
        by_number = {tr.number: tr for tr in trials}
        known = self._known.get(study._study_id, set())  # noqa: SLF001
        unknown = [tr.number for tr in trials if tr.state != TrialState.WAITING and tr.number not in known]
        survey = t.survey(unknown)
        changed = False
        reaped: list[int] = []
        for number, lapsed in survey.lapsed:
            tr = by_number.get(number)
            if tr is None:
                continue
            if tr.state.is_finished():  # its worker told it but died before finishing the slot
                t.settle(number, tr.state.name, tr.user_attrs.get(FAIL_REASON_ATTR), uses_budget(tr))
                changed = True
                if tr.user_attrs.get(FAIL_REASON_ATTR) == "stale":
                    self._retry_once(study, tr, trials)
            elif lapsed:
                self._fail_stale(study, tr, trials)
                t.settle(number, TrialState.FAIL.name, "stale", False)
                changed = True
                reaped.append(number)
        for number in unknown:
            if number not in survey.known:
                changed = True
                tr = by_number[number]
                if tr.state.is_finished():
                    t.add(number, tr.state.name, tr.user_attrs.get(FAIL_REASON_ATTR), uses_budget(tr), mine=False)
                elif self.reaps_unslotted:
                    self._fail_stale(study, tr, trials)
                    t.add(number, TrialState.FAIL.name, "stale", False, mine=False)
                    reaped.append(number)
                else:
                    t.add(number, TrialState.RUNNING.name, None, True, mine=False)
        if reaped:
            log.warning("study %s: failed %d stale trial(s) of workers that stopped renewing their lease: %s",
                        study.study_name, len(reaped), reaped)
        return reaped, t.usage() if changed else (survey.used, survey.others_running)

    def _fail_stale(self, study: optuna.Study, trial: FrozenTrial, trials: list[FrozenTrial]) -> None:
        tell_trial(study, trial.number, TrialState.FAIL, None, "stale")
        self._retry_once(study, trial, trials)

    @staticmethod
    def _retry_once(study: optuna.Study, trial: FrozenTrial, trials: list[FrozenTrial]) -> None:
        """Enqueue the params of a stale trial once (a retry is not retried; nor is a trial twice)."""
        if RETRY_OF_ATTR in trial.user_attrs or any(t.user_attrs.get(RETRY_OF_ATTR) == trial.number for t in trials):
            return
        # a trial popped from the queue and killed before it sampled has its params in fixed_params
        params = dict(trial.params) or dict(trial.system_attrs.get("fixed_params") or {})
        if not params:
            return
        source = trial.user_attrs.get(SOURCE_ATTR)
        study.enqueue_trial(params, user_attrs={SOURCE_ATTR: source if source == "defaults" else "retry",
                                                RETRY_OF_ATTR: trial.number})


class _HeartbeatScope:
    def __init__(self, slots: TrialSlots) -> None:
        self.slots = slots

    def __enter__(self) -> TrialSlots:
        s = self.slots
        with s._beat_lock:  # noqa: SLF001
            if s._beats == 0:  # noqa: SLF001
                hb = Heartbeat(s.renew, s.heartbeat_interval, name=f"hpo-heartbeat-{s.worker_id}")
                hb.__enter__()
                s._heartbeat = hb  # noqa: SLF001
            s._beats += 1  # noqa: SLF001
        return s

    def __exit__(self, *exc: Any) -> None:
        s = self.slots
        with s._beat_lock:  # noqa: SLF001
            s._beats -= 1  # noqa: SLF001
            if s._beats == 0 and s._heartbeat is not None:  # noqa: SLF001
                s._heartbeat.__exit__(None, None, None)  # noqa: SLF001
                s._heartbeat = None  # noqa: SLF001


def check_lease_settings(heartbeat_interval: float, lease_duration: float) -> None:
    """Both positive numbers, and the lease at least two heartbeats long (one late beat never loses it)."""
    for name, value in (("heartbeat_interval", heartbeat_interval), ("lease_duration", lease_duration)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ConfigurationError(f"{name} must be a positive number of seconds, got {value!r}")
    if lease_duration < 2 * heartbeat_interval:
        raise ConfigurationError(
            f"lease_duration must be at least twice heartbeat_interval (one late heartbeat must not lose the "
            f"lease), got lease_duration={lease_duration!r}, heartbeat_interval={heartbeat_interval!r}"
        )


# ---------------------------------------------------------------------------------------------
# in memory: one process
# ---------------------------------------------------------------------------------------------
@dataclass
class _Slot:
    state: str
    reason: str | None
    uses_budget: bool
    worker: int | None


@dataclass
class _Lease:
    expires: float
    stopped: bool = False

    def lapsed(self, now: float) -> bool:
        return self.stopped or self.expires <= now


class _Board:
    """The ledger of one Optuna storage object, shared by every optimizer of this process using it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.study_locks: dict[int, threading.Lock] = {}
        self.slots: dict[int, dict[int, _Slot]] = {}
        self.leases: dict[int, _Lease] = {}
        self.next_worker = 1

    def study_lock(self, study_id: int) -> threading.Lock:
        with self.lock:
            return self.study_locks.setdefault(study_id, threading.Lock())


_BOARDS: weakref.WeakKeyDictionary[Any, _Board] = weakref.WeakKeyDictionary()
_BOARDS_LOCK = threading.Lock()


class _MemoryTransaction:
    def __init__(self, board: _Board, study_id: int, worker: int) -> None:
        self.board, self.worker = board, worker
        self.slots = board.slots.setdefault(study_id, {})
        self.confirmed: set[int] = set()

    def survey(self, numbers: Sequence[int]) -> Survey:
        now = time.monotonic()
        lapsed = []
        for number, slot in self.slots.items():
            if slot.state != TrialState.RUNNING.name or slot.worker == self.worker:
                continue
            if slot.worker is None:
                lapsed.append((number, False))
            elif self.board.leases[slot.worker].lapsed(now):
                lapsed.append((number, True))
        have = {n for n in numbers if n in self.slots}
        self.confirmed |= have
        return Survey(lapsed, have, *self.usage())

    def add(self, number: int, state: str, reason: str | None, uses_budget: bool, *, mine: bool) -> None:
        self.slots[number] = _Slot(state, reason, uses_budget, self.worker if mine else None)
        self.confirmed.add(number)

    def settle(self, number: int, state: str, reason: str | None, uses_budget: bool) -> None:
        slot = self.slots.get(number)
        if slot is not None and slot.state == TrialState.RUNNING.name:
            slot.state, slot.reason, slot.uses_budget = state, reason, uses_budget

    def usage(self) -> tuple[int, int]:
        used = sum(1 for s in self.slots.values() if s.uses_budget)
        running = sum(1 for s in self.slots.values()
                      if s.state == TrialState.RUNNING.name and s.worker not in (None, self.worker))
        return used, running


class InMemoryTrialSlots(TrialSlots):
    """The ledger in this process's memory, shared by every optimizer of one Optuna storage object.

    Exact for any number of ``optimize`` calls and ``n_jobs`` in one process. Several processes on
    one persistent storage other than PostgreSQL (a journal file, SQLite) each keep their own
    ledger: their budgets are not exact across processes, and RUNNING trials of the others are
    counted, never failed.
    """

    def __init__(self, storage: Any, *, worker_id: str, heartbeat_interval: float = 2.0,
                 lease_duration: float = 60.0) -> None:
        super().__init__(worker_id=worker_id, heartbeat_interval=heartbeat_interval, lease_duration=lease_duration)
        with _BOARDS_LOCK:
            board = _BOARDS.get(storage)
            if board is None:
                board = _BOARDS[storage] = _Board()
        self._board = board
        with board.lock:
            self._key = board.next_worker
            board.next_worker += 1
            board.leases[self._key] = _Lease(time.monotonic() + self.lease_duration)

    def _in_transaction(self, study: optuna.Study, fn: Callable[[SlotTransaction], _T]) -> _T:
        with self._board.study_lock(study._study_id):  # noqa: SLF001
            return fn(_MemoryTransaction(self._board, study._study_id, self._key))  # noqa: SLF001

    def renew(self) -> None:
        with self._board.lock:
            lease = self._board.leases[self._key]
            lease.expires = time.monotonic() + self.lease_duration

    def finish(self, study: optuna.Study, number: int, frozen: FrozenTrial) -> None:
        with self._board.study_lock(study._study_id):  # noqa: SLF001
            _MemoryTransaction(self._board, study._study_id, self._key).settle(  # noqa: SLF001
                number, frozen.state.name, frozen.user_attrs.get(FAIL_REASON_ATTR), uses_budget(frozen))

    def close(self) -> None:
        with self._board.lock:
            self._board.leases[self._key].stopped = True
