"""Study history written while a study runs (:class:`HistoryRecorder`) or after it (:func:`save_to_database`).

The recorder is a :class:`~src.mlops.types.TrialListener`. Its hooks only queue work and return at once;
one background task per event loop writes the queue through the repository, batching whatever
accumulated. Reading the Optuna storage, turning trials into records and summarizing a study run in
threads, not on the event loop. Database trouble never reaches the study: failed writes stay queued
and are retried with backoff (so a PostgreSQL restart loses nothing), errors are logged without
secrets and counted.
``on_study_start`` also re-queues every finished trial already in the Optuna storage, so trials told by
a process that was killed before its write landed are recorded when the study resumes.

The study row's counters and best trial follow its trial rows as trials finish (not only at the
study's end), and :meth:`HistoryRecorder.mark_interrupted` sets status ``interrupted`` on the studies
that did not reach their end (the command line calls it on SIGINT/SIGTERM), so ``hpo studies`` shows
an interrupted study as such, with what it did.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import optuna

from ..errors import ConfigurationError, DatabaseError, StudyNotFoundError
from ..types import OptimizationResult, StudyContext
from .database import redact_secrets
from .protocol import HistoryRepository
from .records import StudySummary, TrialRecord

__all__ = ["HistoryRecorder", "RecorderStats", "save_to_database", "summarize_study"]

_log = logging.getLogger(__name__)

_FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL)
_RETRIED = (DatabaseError, OSError, TimeoutError)
_PERMANENT_ATTEMPTS = 3
#: while writes keep failing, one warning per this many seconds (the others are logged at DEBUG)
_WARN_EVERY_S = 60.0


@dataclass
class RecorderStats:
    """Counters of a :class:`HistoryRecorder` (``dropped_trials`` > 0 means history is incomplete)."""

    written_trials: int = 0
    failed_writes: int = 0
    dropped_trials: int = 0
    last_error: str | None = None


@dataclass
class _StudyQueue:
    context: StudyContext
    need_study: bool = True
    #: by number: a record, or the finished Optuna trial the writer makes one of (in a thread)
    trials: dict[int, TrialRecord | optuna.trial.FrozenTrial] = field(default_factory=dict)
    summary: StudySummary | None = None
    attempts: int = 0
    #: trials were written since the study's counters were last refreshed from them
    counts_stale: bool = False
    #: ``on_study_end`` came (the study reached its end in this process)
    ended: bool = False
    #: write status "interrupted" once the queued trials are written
    interrupted: bool = False

    def has_work(self) -> bool:
        return (self.need_study or bool(self.trials) or self.summary is not None or self.counts_stale
                or self.interrupted)


def _context_of(study: optuna.Study) -> StudyContext:
    return StudyContext(study_name=study.study_name, directions=tuple(d.name.lower() for d in study.directions))


def _records(study: optuna.Study, states: Sequence[optuna.trial.TrialState] | None = None) -> list[TrialRecord]:
    """The study's trials as records: a blocking call (storage reads; a long study's intermediate
    values take tens of milliseconds to copy), run in a thread."""
    return [TrialRecord.from_frozen_trial(t) for t in study.get_trials(deepcopy=False, states=states)]


def _records_and_summary(
    study: optuna.Study, directions: Sequence[str], result: OptimizationResult | None
) -> tuple[list[TrialRecord], StudySummary]:
    """Every trial of ``study`` as a record, and their summary: a blocking call, run in a thread."""
    trials = _records(study)
    return trials, summarize_study(trials, directions, result)


def _as_records(
    queued: Sequence[TrialRecord | optuna.trial.FrozenTrial],
) -> tuple[list[TrialRecord], list[tuple[int, Exception]]]:
    """Queued trials as records (Optuna trials converted: JSON-ready params, attributes and
    distributions), and the number and error of each trial that could not be converted. Run in a thread."""
    records, failed = [], []
    for item in queued:
        if isinstance(item, TrialRecord):
            records.append(item)
            continue
        try:
            records.append(TrialRecord.from_frozen_trial(item))
        except Exception as e:  # noqa: BLE001 - reported by the writer; the other trials are written
            failed.append((item.number, e))
    return records, failed


def _derived_status(trials: Sequence[TrialRecord]) -> str:
    if any(t.state in ("RUNNING", "WAITING") for t in trials):
        return "running"
    if any(t.state == "COMPLETE" for t in trials):
        return "completed"
    return "failed" if trials else "running"


def summarize_study(
    trials: Sequence[TrialRecord], directions: Sequence[str], result: OptimizationResult | None = None
) -> StudySummary:
    """Counts from ``trials``; best point and status from ``result`` when given, else derived from the trials."""
    if result is None:
        return StudySummary.from_trials(trials, directions, status=_derived_status(trials))
    base = StudySummary.from_trials(trials, directions)
    return StudySummary(
        n_completed=base.n_completed,
        n_pruned=base.n_pruned,
        n_failed=base.n_failed,
        best_trial_number=result.best_trial_number,
        best_value=result.best_value,
        best_values=tuple(result.best_values) if result.best_values is not None else None,
        best_params=dict(result.best_params) if result.best_params else None,
        status="completed" if base.n_completed > 0 else "failed",
        stop_reason=result.stop_reason or None,
        duration_seconds=result.duration_s,
        phases=tuple(result.phases) if getattr(result, "phases", None) else None,
    )


class HistoryRecorder:
    """A :class:`~src.mlops.types.TrialListener` that persists studies and trials; it never raises.

    Args:
        repository: where to write.
        max_pending: queued trials kept per study while the database is unreachable; beyond it the
            oldest are dropped (and counted in ``stats.dropped_trials``).
        retry_initial, retry_max: backoff between failed writes, in seconds.
        end_flush_timeout: how long ``on_study_end`` waits for the queue to drain.
        batch_size: trials per ``upsert_trials`` call.
        sync_on_start: re-queue the finished trials already in the storage when a study (re)starts.
    """

    def __init__(
        self,
        repository: HistoryRepository,
        *,
        max_pending: int = 100_000,
        retry_initial: float = 0.2,
        retry_max: float = 5.0,
        end_flush_timeout: float = 30.0,
        batch_size: int = 500,
        sync_on_start: bool = True,
    ) -> None:
        if max_pending < 1 or batch_size < 1:
            raise ConfigurationError(f"max_pending and batch_size must be >= 1, got {max_pending=}, {batch_size=}")
        if not 0 < retry_initial <= retry_max:
            raise ConfigurationError(f"0 < retry_initial <= retry_max must hold, got {retry_initial=}, {retry_max=}")
        if end_flush_timeout < 0:
            raise ConfigurationError(f"end_flush_timeout must be >= 0 seconds, got {end_flush_timeout!r}")
        self.repository = repository
        self.max_pending = max_pending
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self.end_flush_timeout = end_flush_timeout
        self.batch_size = batch_size
        self.sync_on_start = sync_on_start
        self.stats = RecorderStats()
        self._queues: dict[str, _StudyQueue] = {}
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        return f"HistoryRecorder({self.repository!r}, pending={self.pending}, stats={self.stats})"

    @property
    def pending(self) -> int:
        """Queued trial writes not yet confirmed by the repository."""
        return sum(len(q.trials) for q in self._queues.values())

    # -- TrialListener -------------------------------------------------------------------------
    async def on_study_start(self, study: optuna.Study, context: StudyContext) -> None:
        try:
            q = self._queue(study, context)
            q.context, q.need_study, q.ended, q.interrupted = context, True, False, False
            if self.sync_on_start:  # storage reads may do I/O, a long study's records take long: off the loop
                for record in await asyncio.to_thread(_records, study, _FINISHED):
                    self._enqueue(q, record)
            self._kick()
        except Exception as e:  # a listener never breaks the study
            self._report("on_study_start", study.study_name, e)

    async def on_trial_finished(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        try:  # the trial is queued as it is: the writer makes its record in a thread
            self._enqueue(self._queue(study), trial)
            self._kick()
        except Exception as e:
            self._report("on_trial_finished", study.study_name, e)

    async def on_study_end(self, study: optuna.Study, result: OptimizationResult) -> None:
        try:
            q = self._queue(study)
            q.ended = True
            trials, summary = await asyncio.to_thread(_records_and_summary, study, q.context.directions, result)
            for t in trials:  # also catches trials finished by other workers or the stale reaper
                if t.is_finished:
                    self._enqueue(q, t)
            q.summary = summary
            self._kick()
            if not await self.flush(timeout=self.end_flush_timeout):
                _log.warning(
                    "history of study %r: %d trial write(s) still queued after %g s (database unreachable?); "
                    "they will be retried while this process runs",
                    study.study_name, len(q.trials), self.end_flush_timeout,
                )
        except Exception as e:
            self._report("on_study_end", study.study_name, e)

    # -- control -------------------------------------------------------------------------------
    def mark_interrupted(self) -> list[str]:
        """Record status ``interrupted`` for every study started here that has not reached its end
        (written after the queued trials; ``flush``/``aclose`` wait for it). Returns their names.
        A resumed study is ``running`` again from its ``on_study_start``."""
        names = []
        for name, q in self._queues.items():
            if not q.ended:
                q.interrupted = True
                names.append(name)
        if names:
            with contextlib.suppress(RuntimeError):  # no running loop: written at the next flush
                self._kick()
        return names

    async def flush(self, *, timeout: float | None = None) -> bool:
        """Wait until every queued write is done; False if ``timeout`` s passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if self._has_work():
            self._kick()
        while self._has_work():
            if deadline is not None and time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.01)
        return True

    async def aclose(self, *, timeout: float | None = None) -> None:
        """Flush (for at most ``timeout``, default ``end_flush_timeout``), then stop the writer; what is
        still queued is counted as dropped."""
        await self.flush(timeout=self.end_flush_timeout if timeout is None else timeout)
        if self._task is not None and not self._task.done():
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        left = self.pending
        if left:
            self.stats.dropped_trials += left
            _log.error("history recorder closed with %d unwritten trial(s); run save_to_database() to fill the gap", left)
        self._queues.clear()
        self._task = None

    # -- internals -----------------------------------------------------------------------------
    def _queue(self, study: optuna.Study, context: StudyContext | None = None) -> _StudyQueue:
        q = self._queues.get(study.study_name)
        if q is None:
            q = self._queues[study.study_name] = _StudyQueue(context or _context_of(study))
        return q

    def _enqueue(self, q: _StudyQueue, record: TrialRecord | optuna.trial.FrozenTrial) -> None:
        q.trials[record.number] = record
        while len(q.trials) > self.max_pending:
            oldest = min(q.trials)
            del q.trials[oldest]
            self.stats.dropped_trials += 1
            _log.error("history of study %r: queue full (%d), dropped trial %d", q.context.study_name, self.max_pending, oldest)

    def _has_work(self) -> bool:
        return any(q.has_work() for q in self._queues.values())

    def _kick(self) -> None:
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done() or self._loop is not loop:
            self._loop = loop
            self._wake = asyncio.Event()
            self._task = loop.create_task(self._writer(), name="hpo-history-writer")
        assert self._wake is not None
        self._wake.set()

    def _report(self, where: str, study_name: str, e: BaseException) -> None:
        msg = redact_secrets(f"{type(e).__name__}: {e}")
        self.stats.last_error = msg
        _log.error("history recorder %s for study %r failed: %s", where, study_name, msg)

    async def _writer(self) -> None:
        wake = self._wake
        assert wake is not None
        delay = self.retry_initial
        failing_since: float | None = None
        last_warning = 0.0
        while True:
            await wake.wait()
            wake.clear()
            while self._has_work():
                try:
                    await self._write_some()
                    delay = self.retry_initial
                    if failing_since is not None:
                        _log.warning("history writes work again after %.0f s of failures", time.monotonic() - failing_since)
                        failing_since = None
                except asyncio.CancelledError:
                    raise
                except Exception as e:  # database trouble: keep the queue, back off, retry
                    self.stats.failed_writes += 1
                    self.stats.last_error = redact_secrets(f"{type(e).__name__}: {e}")
                    now = time.monotonic()
                    loud = failing_since is None or now - last_warning >= _WARN_EVERY_S
                    failing_since = failing_since or now
                    if loud:
                        last_warning = now
                    _log.log(logging.WARNING if loud else logging.DEBUG,
                             "history write failed (%d so far), retrying in %.1f s: %s",
                             self.stats.failed_writes, delay, self.stats.last_error)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self.retry_max)

    async def _write_some(self) -> None:
        for name, q in list(self._queues.items()):
            if not q.has_work():
                continue
            try:
                if q.need_study:
                    await self.repository.upsert_study(q.context, status="running")
                    q.need_study = False
                if q.trials:
                    batch = dict(sorted(q.trials.items())[: self.batch_size])
                    records, failed = await asyncio.to_thread(_as_records, list(batch.values()))
                    for number, e in failed:  # as when a hook fails: reported, not written, not retried
                        item = batch.pop(number)
                        if q.trials.get(number) is item:
                            del q.trials[number]
                        self._report("on_trial_finished", name, e)
                    for record in records:  # converted once: a retry after a failed write sends these
                        if q.trials.get(record.number) is batch[record.number]:
                            q.trials[record.number] = record
                        batch[record.number] = record
                    if records:
                        await self.repository.upsert_trials(name, records)
                    for number, rec in batch.items():
                        if q.trials.get(number) is rec:  # not replaced by a newer record meanwhile
                            del q.trials[number]
                    self.stats.written_trials += len(batch)
                    q.counts_stale = True
                if not q.trials:
                    if q.summary is not None:  # the end summary carries the counters too
                        summary = q.summary
                        await self.repository.update_study_summary(name, summary)
                        if q.summary is summary:
                            q.summary = None
                            q.counts_stale = False
                    elif q.counts_stale:
                        q.counts_stale = False
                        try:
                            await self.repository.refresh_study_counts(name)
                        except BaseException:
                            q.counts_stale = True
                            raise
                    if q.interrupted:
                        await self.repository.upsert_study(q.context, status="interrupted")
                        q.interrupted = False
                q.attempts = 0
            except StudyNotFoundError:
                q.need_study = True  # deleted or never written: write it again first
                raise
            except _RETRIED:  # database trouble: retried until it works (bounded by max_pending)
                raise
            except Exception as e:
                q.attempts += 1
                if q.attempts >= _PERMANENT_ATTEMPTS:  # not a database error (a bug, a bad value): give up
                    lost = len(q.trials)
                    self.stats.dropped_trials += lost
                    _log.error("history of study %r: giving up after %d attempts, dropping %d trial(s): %s",
                               name, q.attempts, lost, redact_secrets(f"{type(e).__name__}: {e}"))
                    q.trials.clear()
                    q.summary = None
                    q.need_study = q.counts_stale = q.interrupted = False
                    q.attempts = 0
                    continue
                raise


async def save_to_database(
    study: optuna.Study,
    context: StudyContext,
    repository: HistoryRepository,
    *,
    result: OptimizationResult | None = None,
    batch_size: int = 500,
) -> int:
    """Write a whole study (context, every trial, summary) to ``repository``; returns the trial count.

    Idempotent: running it twice, or after the recorder's incremental writes, changes nothing.
    Database errors propagate (unlike the recorder, this is an explicit call).
    """
    if context.study_name != study.study_name:
        raise ConfigurationError(
            f"context.study_name must equal study.study_name, got {context.study_name!r} and {study.study_name!r}"
        )
    if batch_size < 1:
        raise ConfigurationError(f"batch_size must be >= 1, got {batch_size!r}")
    trials, summary = await asyncio.to_thread(_records_and_summary, study, context.directions, result)
    await repository.upsert_study(context, status=summary.status or "running")
    for i in range(0, len(trials), batch_size):
        await repository.upsert_trials(study.study_name, trials[i : i + batch_size])
    await repository.update_study_summary(study.study_name, summary)
    return len(trials)

