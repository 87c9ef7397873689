"""The trial lifecycle contract (exact budgets, leases, stale trials), run against the in-memory
ledger and the PostgreSQL one; then what only PostgreSQL gives (orphans, connections, races)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import optuna
import psycopg
import pytest
from optuna.trial import TrialState

from src.mlops.optimizer import OptunaOptimizer
from src.mlops.persistence import create_optuna_storage
from src.mlops.persistence.pg_trial_slots import PostgresTrialSlots, lease_states
from src.mlops.trial_slots import InMemoryTrialSlots, TrialSlots, new_worker_id, tell_trial

optuna.logging.set_verbosity(optuna.logging.WARNING)


@dataclass
class Ledger:
    """One backend: ``storage()`` is what a new worker process would open; ``slots()`` its ledger."""

    kind: str
    storage: Callable[[], Any]
    slots: Callable[..., TrialSlots]

    def study(self, name: str) -> optuna.Study:
        return optuna.create_study(study_name=name, storage=self.storage(), load_if_exists=True,
                                   sampler=optuna.samplers.RandomSampler())


@pytest.fixture(params=["memory", "postgres"])
def ledger(request: pytest.FixtureRequest) -> Iterator[Ledger]:
    opened: list[TrialSlots] = []
    if request.param == "memory":
        shared = optuna.storages.InMemoryStorage()  # the in-memory ledger belongs to one storage object

        def memory_slots(storage: Any = None, **lease: float) -> TrialSlots:
            opened.append(InMemoryTrialSlots(shared, worker_id=new_worker_id(), **lease))
            return opened[-1]

        yield Ledger("memory", lambda: shared, memory_slots)
    else:
        dsn = request.getfixturevalue("migrated_dsn")

        def pg_slots(storage: Any = None, **lease: float) -> TrialSlots:
            opened.append(PostgresTrialSlots(dsn, worker_id=new_worker_id(), **lease))
            return opened[-1]

        yield Ledger("postgres", lambda: create_optuna_storage(dsn), pg_slots)
    for s in opened:
        s.close()


def _run_until_budget(ledger: Ledger, name: str, n_trials: int, started: list[int]) -> None:
    study, slots = ledger.study(name), ledger.slots()
    while True:
        r = slots.reserve(study, n_trials=n_trials, ask=study.ask)
        if r.trial is None:
            if not r.wait:
                return
            time.sleep(0.01)
            continue
        started.append(r.trial.number)
        frozen = tell_trial(study, r.trial, TrialState.COMPLETE, r.trial.suggest_float("x", 0, 1), None)
        slots.finish(study, r.trial.number, frozen)


def test_reservations_never_exceed_the_budget(ledger: Ledger) -> None:
    ledger.study("exact")
    started: list[int] = []
    threads = [threading.Thread(target=_run_until_budget, args=(ledger, "exact", 15, started)) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    trials = ledger.study("exact").get_trials()
    assert sorted(started) == list(range(15)) and len(trials) == 15
    assert all(t.state == TrialState.COMPLETE for t in trials)


def test_a_lapsed_lease_fails_the_trial_as_stale_and_its_params_are_retried_once(ledger: Ledger) -> None:
    study = ledger.study("lapse")
    frozen_worker = ledger.slots(heartbeat_interval=0.05, lease_duration=0.3)  # never renews: a frozen host
    live = ledger.slots()
    held = frozen_worker.reserve(study, n_trials=5, ask=study.ask).trial
    x = held.suggest_float("x", 0, 1)
    assert live.reap(study) == []  # its lease still runs
    time.sleep(0.5)
    assert live.reap(study) == [held.number]
    assert live.reap(study) == []  # once
    trials = study.get_trials()
    assert trials[held.number].state == TrialState.FAIL and trials[held.number].user_attrs["fail_reason"] == "stale"
    late = tell_trial(study, held, TrialState.COMPLETE, 1.0, None)  # the frozen worker wakes up: refused
    assert late.state == TrialState.FAIL

    again = ledger.slots(heartbeat_interval=0.05, lease_duration=0.3).reserve(study, n_trials=5, ask=study.ask).trial
    assert again.user_attrs["retry_of"] == held.number and again.suggest_float("x", 0, 1) == x
    time.sleep(0.5)
    assert live.reap(study) == [again.number]
    assert not [t for t in study.get_trials() if t.user_attrs.get("retry_of") == again.number]  # a retry is not retried
    assert study.get_trials(states=(TrialState.WAITING,)) == []


def test_live_leases_are_never_reaped(ledger: Ledger) -> None:
    study = ledger.study("live")
    worker, reaper = ledger.slots(heartbeat_interval=0.05, lease_duration=0.25), ledger.slots()
    with worker.heartbeat():
        trial = worker.reserve(study, n_trials=3, ask=study.ask).trial
        deadline = time.monotonic() + 1.2  # several leases long
        while time.monotonic() < deadline:
            assert reaper.reap(study) == []
            time.sleep(0.1)
        frozen = tell_trial(study, trial, TrialState.COMPLETE, 0.5, None)
        worker.finish(study, trial.number, frozen)
    assert frozen.state == TrialState.COMPLETE


def test_a_trial_told_before_its_worker_stopped_keeps_its_result(ledger: Ledger) -> None:
    """Killed between ``tell`` and finishing its slot: the slot takes the trial's real state, not stale."""
    study = ledger.study("told")
    dying, other = ledger.slots(), ledger.slots()
    trial = dying.reserve(study, n_trials=1, ask=study.ask).trial
    study.tell(trial, 0.5)
    dying.close()  # its slot is still RUNNING in the ledger, and its lease has ended
    assert other.reap(study) == []
    r = other.reserve(study, n_trials=1, ask=study.ask)
    assert r.trial is None and not r.wait  # the told trial uses the budget
    assert [t.state for t in study.get_trials()] == [TrialState.COMPLETE]


def test_trials_started_outside_the_ledger(ledger: Ledger) -> None:
    """Finished trials of plain Optuna (or a study from before slots) are adopted and use the budget.
    A RUNNING one is an orphan of a dead worker in PostgreSQL (every engine trial gets its slot in the
    transaction that asks for it): failed as stale and retried. The in-memory ledger cannot know that:
    it counts it and leaves it alone."""
    study = ledger.study("outside")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    running = study.ask()
    running.suggest_float("x", 0, 1)
    slots = ledger.slots()
    got = []
    while (trial := slots.reserve(study, n_trials=4, ask=study.ask).trial) is not None:
        got.append(trial.user_attrs.get("retry_of"))
        slots.finish(study, trial.number, tell_trial(study, trial, TrialState.COMPLETE, 0.0, None))
    state = study.get_trials()[running.number]
    if slots.reaps_unslotted:
        assert state.user_attrs["fail_reason"] == "stale" and got == [running.number, None]
    else:
        assert state.state == TrialState.RUNNING and got == [None]


def test_the_study_lock_is_exclusive(ledger: Ledger) -> None:
    ledger.study("locked")
    inside, most = [0], [0]
    lock = threading.Lock()

    def critical() -> None:
        with lock:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
        time.sleep(0.05)
        with lock:
            inside[0] -= 1

    def worker() -> None:
        study, slots = ledger.study("locked"), ledger.slots()
        for _ in range(3):
            slots.run_locked(study, critical)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert most[0] == 1


# ---------------------------------------------------------------------------------------------
# PostgreSQL only
# ---------------------------------------------------------------------------------------------
def _connections(dsn: str, application_name: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as con:
        return con.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                           "AND application_name = %s", (application_name,)).fetchone()[0]


def _eventually(check: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


async def test_an_optimizer_opens_one_storage_per_url_and_closes_what_it_opened(migrated_dsn: str) -> None:
    opt = OptunaOptimizer(storage=migrated_dsn)
    for i in range(5):
        study = await opt.create_study(study_name=f"s{i}", direction="minimize", sampler="random")
    await opt.optimize(study, lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    assert _connections(migrated_dsn, "hpo-optuna-journal") == 1
    assert _connections(migrated_dsn, "hpo-worker") == 1
    [worker] = [w for w in lease_states(migrated_dsn) if w["worker_id"] == opt.worker_id]
    assert worker["lapse_reason"] is None
    await opt.aclose()
    assert _eventually(lambda: _connections(migrated_dsn, "hpo-optuna-journal") == 0)
    assert _eventually(lambda: _connections(migrated_dsn, "hpo-worker") == 0)
    [worker] = [w for w in lease_states(migrated_dsn) if w["worker_id"] == opt.worker_id]
    assert worker["lapse_reason"] == "stopped"


async def test_two_optimizers_racing_on_one_study_never_overshoot(migrated_dsn: str) -> None:
    """200 repetitions: two optimizers (each with its own storage and ledger, as two processes would
    be) share a study of 6 trials, 3 at a time each. Before the ledger, 2 of 20 studies got 7."""
    a, b = OptunaOptimizer(storage=migrated_dsn), OptunaOptimizer(storage=migrated_dsn)

    def objective(trial: optuna.Trial) -> float:
        return trial.suggest_float("x", 0, 1)

    counts = []
    try:
        for rep in range(200):
            sa = await a.create_study(study_name=f"race-{rep}", direction="minimize", sampler="random")
            sb = await b.create_study(study_name=f"race-{rep}", direction="minimize", sampler="random")
            await asyncio.gather(a.optimize(sa, objective, n_trials=6, n_jobs=3),
                                 b.optimize(sb, objective, n_trials=6, n_jobs=3))
            trials = sa.get_trials(deepcopy=False)
            counts.append((len(trials), sum(t.state == TrialState.COMPLETE for t in trials)))
    finally:
        await a.aclose()
        await b.aclose()
    assert set(counts) == {(6, 6)}, sorted(set(counts))


def test_the_ledger_records_who_ran_what(migrated_dsn: str) -> None:
    study = optuna.create_study(study_name="who", storage=create_optuna_storage(migrated_dsn))
    slots = PostgresTrialSlots(migrated_dsn, worker_id="host-a:1:t", host="host-a")
    try:
        trial = slots.reserve(study, n_trials=2, ask=study.ask).trial
        slots.finish(study, trial.number, tell_trial(study, trial, TrialState.FAIL, None, "deadline"))
        slots.flush()  # finished slots are queued until the next reservation or a flush
        with psycopg.connect(migrated_dsn) as con:
            row = con.execute("SELECT s.state, s.fail_reason, s.uses_budget, w.host, w.worker_id FROM hpo_trial_slots s "
                              "JOIN hpo_workers w USING (worker_key)").fetchone()
        assert row == ("FAIL", "deadline", False, "host-a", "host-a:1:t")  # a deadline fail frees its slot
    finally:
        slots.close()


def test_a_worker_stuck_inside_a_reservation_holds_the_study_for_one_lease_at_most(migrated_dsn: str) -> None:
    """A worker frozen (or cut off) while it holds the study's lock: the server ends its session once
    it has been idle in its transaction for a lease, and the other workers go on."""
    study = optuna.create_study(study_name="stuck", storage=create_optuna_storage(migrated_dsn))
    stuck = PostgresTrialSlots(migrated_dsn, worker_id=new_worker_id("host-stuck"), heartbeat_interval=0.1,
                               lease_duration=1.0)
    other = PostgresTrialSlots(migrated_dsn, worker_id=new_worker_id("host-other"))
    entered, attempts = threading.Event(), []

    def hold() -> None:
        attempts.append(1)
        entered.set()
        if len(attempts) == 1:
            time.sleep(4.0)  # frozen inside the transaction

    holder = threading.Thread(target=stuck.run_locked, args=(study, hold))
    try:
        holder.start()
        assert entered.wait(30)
        t0 = time.monotonic()
        trial = other.reserve(study, n_trials=3, ask=study.ask).trial
        waited = time.monotonic() - t0
        assert trial is not None and 0.5 < waited < 3.5, waited  # about one lease, not the 4 s freeze
        holder.join(30)
        assert len(attempts) == 2  # the stuck worker's transaction was ended; it ran again on a new session
    finally:
        stuck.close()
        other.close()
