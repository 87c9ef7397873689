"""The MLflow tracker: a parent run per study, a nested run per trial, the final model; best-effort
behind a circuit breaker (see the package docstring)."""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import ConfigurationError
from ..redaction import redact_secrets
from ..types import OptimizationResult, StudyContext
from ._child import TrialWriterProcess
from ._runs import (
    MAX_TAG_VALUE,
    PARENT_TAG,
    ROLE_TAG,
    STUDY_TAG,
    TRIAL_NUMBER_TAG,
    TrialRecord,
    clean_key,
    clean_value,
    jsonable,
    log_batch,
    snapshot_trial,
    summarize,
    write_trial,
)
from ._store import artifact_location, default_call_timeout, http_settings, is_remote, resolve_tracking_uri, sqlite_path
from ._writer import BackgroundWriter, WriterClosed

if TYPE_CHECKING:
    import optuna

__all__ = ["MLflowTracker"]

_log = logging.getLogger("src.mlops.tracking")

#: MLflow error codes about one request's content (drop that write) rather than the backend (trip).
_REQUEST_SPECIFIC = {"INVALID_PARAMETER_VALUE", "RESOURCE_ALREADY_EXISTS", "RESOURCE_DOES_NOT_EXIST", "BAD_REQUEST",
                     "INVALID_STATE"}


class _Dropped(Exception):
    """Internal: a write skipped because the breaker is open, or failed (already counted)."""


def _consume_exception(fut: concurrent.futures.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()  # mark as retrieved; failures are already counted by _guarded


class MLflowTracker:
    """Log an Optuna study to MLflow: a parent run per study, a nested run per trial, the final model.

    Args:
        tracking_uri: MLflow tracking URI; default ``$MLFLOW_TRACKING_URI`` or
            ``sqlite:///<HPO_HOME>/mlflow.db`` (see :func:`resolve_tracking_uri`).
        experiment_name: experiment to log into (created if missing; for a SQLite store its artifact
            location is ``<directory of the .db>/mlartifacts/<experiment>``).
        enabled: ``False`` makes every method a no-op (``state == "disabled"``; nothing is counted).
        request_timeout_s, max_retries: the HTTP bounds of one request (HTTP stores) that the default
            ``call_timeout_s`` allows for. MLflow reads them from the environment: apply
            :attr:`http_settings` at program start (the tracker never changes the environment).
        hpo_home: base directory of the default store (default ``$HPO_HOME`` or ``./.hpo``).
        call_timeout_s: deadline of one awaited MLflow operation; default
            ``request_timeout_s * (max_retries + 1) + backoff + 1`` for HTTP stores (4 s with the
            defaults), 30 s for database URIs (``postgresql://``...), 120 s for SQLite/file stores.
            Past it the caller stops waiting and the breaker opens, whatever MLflow still does.
        flush_timeout_s: how long ``on_study_end``/``flush`` wait for queued trial writes (default 30 s).
        model_timeout_s: deadline of :meth:`log_final_model` (default 300 s).
        log_trials: ``False`` skips the nested trial runs (parent run only).
        log_intermediate: also log each trial's intermediate values as a metric history (off by default).
        max_pending: queued trial writes beyond this are dropped (and counted).

    Use one tracker per study. The listener methods never raise for MLflow problems.
    """

    def __init__(
        self,
        tracking_uri: str | None = None,
        experiment_name: str = "hpo",
        *,
        enabled: bool = True,
        request_timeout_s: float = 3,
        max_retries: int = 0,
        hpo_home: str | os.PathLike[str] | None = None,
        call_timeout_s: float | None = None,
        flush_timeout_s: float = 30.0,
        model_timeout_s: float = 300.0,
        log_trials: bool = True,
        log_intermediate: bool = False,
        max_pending: int = 10_000,
    ) -> None:
        if not isinstance(experiment_name, str) or not experiment_name.strip():
            raise ConfigurationError(f"experiment_name must be a non-empty string, but got {experiment_name!r}.")
        if not (isinstance(request_timeout_s, (int, float)) and request_timeout_s >= 1):
            raise ConfigurationError(f"request_timeout_s must be a number >= 1, but got {request_timeout_s!r}.")
        if not (isinstance(max_retries, int) and 0 <= max_retries <= 10):
            raise ConfigurationError(f"max_retries must be an integer in [0, 10], but got {max_retries!r}.")
        for label, value in (("flush_timeout_s", flush_timeout_s), ("model_timeout_s", model_timeout_s)):
            if not (isinstance(value, (int, float)) and value > 0):
                raise ConfigurationError(f"{label} must be a positive number, but got {value!r}.")
        if call_timeout_s is not None and not (isinstance(call_timeout_s, (int, float)) and call_timeout_s > 0):
            raise ConfigurationError(f"call_timeout_s must be a positive number or None, but got {call_timeout_s!r}.")
        if not (isinstance(max_pending, int) and max_pending >= 1):
            raise ConfigurationError(f"max_pending must be a positive integer, but got {max_pending!r}.")

        self.enabled = bool(enabled)
        self.tracking_uri = resolve_tracking_uri(tracking_uri, hpo_home=hpo_home)
        self.experiment_name = experiment_name.strip()
        self.request_timeout_s = float(request_timeout_s)
        self.max_retries = int(max_retries)
        self._remote = is_remote(self.tracking_uri)
        if call_timeout_s is None:
            call_timeout_s = default_call_timeout(self.tracking_uri, self.request_timeout_s, self.max_retries)
        self.call_timeout_s = float(call_timeout_s)
        self.flush_timeout_s = float(flush_timeout_s)
        self.model_timeout_s = float(model_timeout_s)
        self.log_trials = bool(log_trials)
        self.log_intermediate = bool(log_intermediate)
        self.max_pending = int(max_pending)

        #: id of the parent run (``None`` until ``on_study_start``, ``start_run`` or ``reopen_run`` succeeded).
        self.parent_run_id: str | None = None
        self.experiment_id: str | None = None
        #: URI of the last model logged by :meth:`log_final_model`.
        self.model_uri: str | None = None

        self._counter_lock = threading.Lock()
        self._dropped = 0
        self._last_error: str | None = None
        self._broken = threading.Event()
        self._client: Any = None
        self._context: StudyContext | None = None
        self._metric_names: tuple[str, ...] = ("value",)
        self._existing_params: set[str] = set()
        self._logged_trials: set[int] = set()
        self._run_open = False
        self._pending: collections.deque[concurrent.futures.Future[Any]] = collections.deque()
        self._worker: BackgroundWriter | None = None
        self._trial_writer: TrialWriterProcess | None = None
        self._ready: concurrent.futures.Future[Any] | None = None
        if self.enabled:
            self._worker = BackgroundWriter(name=f"mlflow-tracker-{id(self):x}")
            self._ready = self._worker.submit(self._init_guarded)

    # ---------------------------------------------------------------- public state

    @property
    def state(self) -> str:
        """``"disabled"`` (enabled=False), ``"broken"`` (circuit breaker open) or ``"active"``."""
        if not self.enabled:
            return "disabled"
        return "broken" if self._broken.is_set() else "active"

    @property
    def dropped_writes(self) -> int:
        """Writes skipped or lost because MLflow failed or did not answer in time."""
        with self._counter_lock:
            return self._dropped

    @property
    def last_error(self) -> str | None:
        """The last MLflow error (credentials redacted), or ``None``."""
        with self._counter_lock:
            return self._last_error

    @property
    def run_open(self) -> bool:
        """Whether the parent run is open (started or reopened, not yet ended)."""
        return self._run_open and self.parent_run_id is not None

    @property
    def http_settings(self) -> dict[str, str]:
        """The MLflow environment variables matching ``request_timeout_s`` and ``max_retries`` (apply
        them at program start; see :func:`src.mlops.tracking.http_settings`)."""
        return http_settings(self.request_timeout_s, self.max_retries)

    def __repr__(self) -> str:
        return (
            f"MLflowTracker(tracking_uri={redact_secrets(self.tracking_uri)!r}, "
            f"experiment_name={self.experiment_name!r}, state={self.state!r})"
        )

    # ---------------------------------------------------------------- failure handling (the breaker)

    def _drop(self, n: int = 1) -> None:
        with self._counter_lock:
            self._dropped += n

    def _set_error(self, message: str) -> None:
        text = redact_secrets(message)
        with self._counter_lock:
            self._last_error = text if len(text) <= 1000 else text[:997] + "..."

    def _trip(self, message: str) -> None:
        if not self._broken.is_set():
            _log.warning("MLflow tracking disabled for the rest of this study (%s): %s",
                         redact_secrets(self.tracking_uri), redact_secrets(message))
        self._set_error(message)
        self._broken.set()

    @staticmethod
    def _request_specific(error: BaseException) -> bool:
        """An error about one request's content (drop that write) rather than the backend (trip)."""
        try:
            from mlflow.exceptions import MlflowException
        except Exception:  # pragma: no cover
            return False
        return isinstance(error, MlflowException) and error.error_code in _REQUEST_SPECIFIC

    def _guarded(self, job: Callable[..., Any], *args: Any) -> Any:
        """Run ``job`` on the writer thread: skip when broken, classify failures."""
        if self._broken.is_set():
            self._drop()
            raise _Dropped()
        try:
            return job(*args)
        except _Dropped:
            raise
        except Exception as e:
            message = f"{getattr(job, '__name__', 'call').strip('_')}: {type(e).__name__}: {e}"
            self._drop()
            if self._request_specific(e):
                self._set_error(message)
                _log.warning("MLflow write dropped: %s", redact_secrets(message))
            else:
                self._trip(message)
            raise _Dropped() from e

    def _init_guarded(self) -> None:
        """Import mlflow and create the client (off the event loop; the import alone takes seconds).
        A failure opens the breaker (it is not a write, so not counted)."""
        try:
            from mlflow import MlflowClient

            db = sqlite_path(self.tracking_uri)
            if db is not None:
                db.parent.mkdir(parents=True, exist_ok=True)
            self._client = MlflowClient(tracking_uri=self.tracking_uri)
        except Exception as e:
            self._trip(f"init: {type(e).__name__}: {e}")
            raise _Dropped() from e

    async def ready(self, timeout_s: float = 120.0) -> bool:
        """Wait (off the loop) until mlflow is imported and the client exists; ``False`` when that
        failed or took longer than ``timeout_s`` (the breaker is then open)."""
        if not self.enabled or self._ready is None:
            return False
        if not self._ready.done():
            await asyncio.to_thread(concurrent.futures.wait, [self._ready], timeout_s)
        if not self._ready.done():
            self._trip(f"importing mlflow / creating the client took more than {timeout_s:.0f}s")
            return False
        return self._ready.exception() is None

    async def _call(self, job: Callable[..., Any], *args: Any, timeout: float | None = None, what: str) -> Any:
        """Run ``job`` on the writer and await it with a deadline; ``None`` on any failure."""
        if not self.enabled or self._worker is None:
            return None
        if self._broken.is_set():
            self._drop()
            return None
        if not await self.ready():
            self._drop()
            return None
        fut = self._worker.submit(self._guarded, job, *args)
        deadline = self.call_timeout_s if timeout is None else timeout
        try:
            return await asyncio.wait_for(asyncio.wrap_future(fut), timeout=deadline)
        except _Dropped:
            return None
        except (asyncio.TimeoutError, TimeoutError):
            # Not counted here: the call is still running and counts itself if it fails.
            self._trip(f"{what}: no answer from {self.tracking_uri} within {deadline:.1f}s")
            return None
        except WriterClosed as e:
            self._drop()
            self._set_error(f"{what}: {e}")
            return None

    def _submit_background(self, job: Callable[..., Any], *args: Any) -> None:
        assert self._worker is not None
        while self._pending and self._pending[0].done():
            self._pending.popleft()
        if len(self._pending) >= self.max_pending:
            self._drop()
            self._set_error(f"more than {self.max_pending} MLflow writes queued; write dropped")
            return
        fut = self._worker.submit(self._guarded, job, *args)
        fut.add_done_callback(_consume_exception)
        self._pending.append(fut)

    async def flush(self, timeout_s: float | None = None) -> bool:
        """Wait until the queued trial writes are done; ``False`` (and the breaker opens) on timeout."""
        if not self.enabled:
            return True
        timeout = self.flush_timeout_s if timeout_s is None else timeout_s
        if self._trial_writer is not None:
            outcome = await asyncio.to_thread(self._trial_writer.flush, timeout)
            if outcome is None:
                self._trip(f"the MLflow trial writer did not finish its queue within {timeout:.1f}s")
                return False
            _, failed, error = outcome
            if failed:
                self._drop(failed)
                self._set_error(f"trial writes failed: {error}")
        pending = [f for f in self._pending if not f.done()]
        if not pending:
            self._pending.clear()
            return True
        _, not_done = await asyncio.to_thread(concurrent.futures.wait, pending, timeout)
        if not_done:
            self._trip(f"{len(not_done)} queued MLflow writes not done after {timeout:.1f}s")
            return False
        self._pending.clear()
        return True

    # ---------------------------------------------------------------- writer-side jobs

    def _ensure_experiment(self) -> str:
        if self.experiment_id is not None:
            return self.experiment_id
        from mlflow.exceptions import MlflowException

        client = self._client
        exp = client.get_experiment_by_name(self.experiment_name)
        if exp is None:
            try:
                exp_id = client.create_experiment(self.experiment_name,
                                                  artifact_location=artifact_location(self.tracking_uri, self.experiment_name))
            except MlflowException as e:  # created concurrently by another process
                if e.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
                exp_id = client.get_experiment_by_name(self.experiment_name).experiment_id
        else:
            exp_id = exp.experiment_id
            if getattr(exp, "lifecycle_stage", "active") == "deleted":
                client.restore_experiment(exp_id)
        self.experiment_id = str(exp_id)
        return self.experiment_id

    @staticmethod
    def _study_tags(context: StudyContext) -> dict[str, str]:
        tags = {k: str(v) for k, v in (context.tags or {}).items()}
        tags.update({STUDY_TAG: context.study_name, ROLE_TAG: "study"})
        if context.dataset_fingerprint:
            tags["hpo.dataset_fingerprint"] = context.dataset_fingerprint
        return tags

    @staticmethod
    def _study_params(context: StudyContext) -> dict[str, Any]:
        params: dict[str, Any] = {
            "study_name": context.study_name,
            "directions": ",".join(context.directions),
            "algorithm": context.algorithm,
            "problem_type": context.problem_type,
            "metric": context.metric,
            "metric_names": ",".join(context.metric_names) if context.metric_names else None,
            "sampler": context.sampler_name,
            "pruner": context.pruner_name,
            "n_trials": context.n_trials,
            "dataset_fingerprint": context.dataset_fingerprint,
        }
        return {k: v for k, v in params.items() if v is not None}

    def _find_parent(self, exp_id: str, study_name: str) -> Any | None:
        quote = "'" if "'" not in study_name else '"' if '"' not in study_name else None
        if quote is None:
            return None
        runs = self._client.search_runs(
            [exp_id],
            filter_string=f"tags.`{STUDY_TAG}` = {quote}{study_name}{quote} and tags.`{ROLE_TAG}` = 'study'",
            max_results=1,
            order_by=["attributes.start_time DESC"],
        )
        return runs[0] if runs else None

    def _logged_trial_numbers(self, exp_id: str, run_id: str) -> set[int]:
        children = self._client.search_runs([exp_id], filter_string=f"tags.`{PARENT_TAG}` = '{run_id}'",
                                            max_results=50_000)
        numbers = (child.data.tags.get(TRIAL_NUMBER_TAG) for child in children)
        return {int(n) for n in numbers if n is not None and n.isdigit()}

    def _start_job(self, context: StudyContext) -> tuple[str, set[str], set[int]]:
        client = self._client
        exp_id = self._ensure_experiment()
        run = self._find_parent(exp_id, context.study_name)
        if run is not None:
            run_id, existing, resumed = run.info.run_id, set(run.data.params), True
            if run.info.status != "RUNNING":
                client.update_run(run_id, status="RUNNING")
            logged = self._logged_trial_numbers(exp_id, run_id)
        else:
            tags = {k: clean_value(k, v, MAX_TAG_VALUE) for k, v in self._study_tags(context).items()}
            run = client.create_run(exp_id, run_name=context.study_name, tags=tags)
            run_id, existing, resumed, logged = run.info.run_id, set(), False, set()
        params = {k: v for k, v in self._study_params(context).items() if clean_key(k) not in existing}
        tags = self._study_tags(context) if resumed else {}
        if params or tags:
            log_batch(client, run_id, params=params, tags=tags)
        if context.search_space:
            client.log_dict(run_id, jsonable(context.search_space), "search_space.json")
        return run_id, existing | {clean_key(k) for k in params}, logged

    def _reopen_job(self, run_id: str) -> tuple[str, set[str], set[int]]:
        run = self._client.get_run(run_id)
        self.experiment_id = str(run.info.experiment_id)
        if run.info.status != "RUNNING":
            self._client.update_run(run_id, status="RUNNING")
        return run_id, set(run.data.params), self._logged_trial_numbers(self.experiment_id, run_id)

    def _trial_job(self, record: TrialRecord) -> None:
        if record.number in self._logged_trials:
            return
        parent, exp_id = self.parent_run_id, self.experiment_id
        if parent is None or exp_id is None:
            raise _Dropped()
        study_name = self._context.study_name if self._context else ""
        write_trial(self._client, record, exp_id=exp_id, parent_run_id=parent, study_name=study_name,
                    metric_names=self._metric_names, log_intermediate=self.log_intermediate)
        self._logged_trials.add(record.number)

    def _end_job(self, summary: dict[str, Any], status: str) -> None:
        run_id = self.parent_run_id
        if run_id is None:
            raise _Dropped()
        now = int(time.time() * 1000)
        step = int(summary.get("n_trials") or 0)
        metrics = [(key, float(value), now, step) for key, value in summary["metrics"].items()
                   if isinstance(value, (int, float)) and not isinstance(value, bool)]
        params = {f"best.{k}": v for k, v in summary["best_params"].items()
                  if clean_key(f"best.{k}") not in self._existing_params}
        log_batch(self._client, run_id, params=params, metrics=metrics, tags=dict(summary["tags"]))
        self._existing_params |= {clean_key(k) for k in params}
        self._client.set_terminated(run_id, status=status)

    def _terminate_job(self, status: str) -> bool:
        if self.parent_run_id is not None:
            self._client.set_terminated(self.parent_run_id, status=status)
        return True

    def _model_job(self, model_file: str, preparer_file: str | None, extra_files: tuple[str, ...], raw_sample: Any,
                   artifact_name: str, metrics: Mapping[str, float] | None, params: Mapping[str, Any] | None,
                   registered_model_name: str | None) -> str:
        from ._model import log_pyfunc_model

        run_id, exp_id = self.parent_run_id, self.experiment_id
        if run_id is None or exp_id is None:
            raise _Dropped()
        new = {k: v for k, v in (params or {}).items() if clean_key(k) not in self._existing_params}
        now = int(time.time() * 1000)
        log_batch(self._client, run_id, params=new, metrics=[(k, float(v), now, 0) for k, v in (metrics or {}).items()])
        self._existing_params |= {clean_key(k) for k in new}
        return log_pyfunc_model(self._client, experiment_id=exp_id, run_id=run_id, model_file=model_file,
                                preparer_file=preparer_file, extra_files=extra_files, raw_sample=raw_sample,
                                name=artifact_name, registered_model_name=registered_model_name)

    # ---------------------------------------------------------------- TrialListener

    def _set_context(self, context: StudyContext) -> None:
        self._context = context
        names = tuple(context.metric_names) if context.metric_names else ((context.metric,) if context.metric else ())
        self._metric_names = tuple(clean_key(n) for n in names) or (
            ("value",) if len(context.directions) <= 1 else tuple(f"value_{i}" for i in range(len(context.directions)))
        )

    def _start_trial_writer(self) -> None:
        if not self.log_trials or self._remote or self._trial_writer is not None or not self.experiment_id:
            return
        # Local store: nested trial runs are written by a child process (MLflow's ORM work would
        # otherwise compete with the study for this process's GIL).
        study_name = self._context.study_name if self._context else ""
        setup = {"exp_id": self.experiment_id, "parent_run_id": self.parent_run_id, "study_name": study_name,
                 "metric_names": self._metric_names, "log_intermediate": self.log_intermediate}
        try:
            self._trial_writer = TrialWriterProcess(self.tracking_uri, setup)
        except Exception as e:  # noqa: BLE001 - fall back to the writer thread
            self._set_error(f"trial writer process: {type(e).__name__}: {e}")

    async def on_study_start(self, study: optuna.Study | None, context: StudyContext) -> None:
        """Create or resume the parent run of ``context.study_name`` (``study`` is not used: a run
        without a study, e.g. with tuning disabled, passes ``None``)."""
        if not self.enabled:
            return
        self._set_context(context)
        result = await self._call(self._start_job, context, what="start study run")
        if result is not None:
            self.parent_run_id, self._existing_params, self._logged_trials = result
            self._run_open = True
            self._start_trial_writer()

    async def reopen_run(self, run_id: str, context: StudyContext | None = None) -> bool:
        """Reopen the parent run ``run_id`` (a resumed graph run whose process died): status back to
        RUNNING, its params and logged trials known, so later writes go to the same record.
        ``False`` when tracking is off or MLflow failed (see :attr:`last_error`)."""
        if not self.enabled:
            return False
        if context is not None:
            self._set_context(context)
        result = await self._call(self._reopen_job, run_id, what="reopen run")
        if result is None:
            return False
        self.parent_run_id, self._existing_params, self._logged_trials = result
        self._run_open = True
        return True

    async def on_trial_finished(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        """Queue a nested run for ``trial`` (returns without waiting for MLflow)."""
        if not self.enabled or not self.log_trials:
            return
        if self._context is None:
            directions = tuple(d.name.lower() for d in study.directions)
            await self.on_study_start(study, StudyContext(study_name=study.study_name, directions=directions))
        if self._broken.is_set() or self.parent_run_id is None:
            self._drop()
            return
        try:
            record = snapshot_trial(trial)
        except Exception as e:  # pragma: no cover - defensive: a listener never raises
            self._drop()
            self._set_error(f"trial snapshot failed: {type(e).__name__}: {e}")
            return
        if self._trial_writer is not None:
            if record.number not in self._logged_trials:
                self._trial_writer.put(record)
                self._logged_trials.add(record.number)
            return
        self._submit_background(self._trial_job, record)

    async def on_study_end(self, study: optuna.Study, result: OptimizationResult) -> None:
        """Log best value/params and counts on the parent run and terminate it."""
        if not self.enabled:
            return
        await self.flush()
        if self.parent_run_id is None:
            self._drop()
            return
        summary = summarize(result, self._metric_names)
        status = "FINISHED" if (getattr(result, "n_completed", 0) or 0) > 0 else "FAILED"
        await self._call(self._end_job, summary, status, what="end study run")
        self._run_open = False

    # ---------------------------------------------------------------- final model and lifecycle

    async def log_final_model(
        self,
        model_file: str | os.PathLike[str],
        *,
        preparer_file: str | os.PathLike[str] | None = None,
        raw_sample: Any = None,
        files: Sequence[str | os.PathLike[str]] = (),
        artifact_name: str = "model",
        metrics: Mapping[str, float] | None = None,
        params: Mapping[str, Any] | None = None,
        registered_model_name: str | None = None,
    ) -> str | None:
        """Log a saved model as a portable pyfunc under the parent run (see :mod:`._model`).

        ``model_file`` is a skops file of :mod:`src.mlops.model_io`; ``preparer_file`` the JSON of
        the :class:`~src.mlops.features.FeaturePreparer` that cleans raw rows; ``raw_sample`` a few
        raw training rows (the signature's column types; without it the columns are typed "any");
        ``files`` (e.g. ``metadata.json``) go with the model as artifacts. ``metrics``/``params`` go
        to the parent run (params already set are not changed).

        Returns the model URI (``models:/<id>``), or ``None`` when tracking is off, there is no
        parent run, or MLflow failed: :attr:`last_error` says why -- never silently.
        """
        if not self.enabled:
            return None
        await self.flush()
        if self.parent_run_id is None:
            self._drop()
            self._set_error("log final model: no parent run to log the model under (the study run was never "
                            "opened or reopened)" + (f"; earlier: {self.last_error}" if self.last_error else ""))
            return None
        uri = await self._call(
            self._model_job, os.fspath(model_file), None if preparer_file is None else os.fspath(preparer_file),
            tuple(os.fspath(f) for f in files), raw_sample, artifact_name, metrics, params, registered_model_name,
            timeout=self.model_timeout_s, what="log final model",
        )
        if uri is not None:
            self.model_uri = uri
        return uri

    async def end_run(self, status: str = "FINISHED") -> bool:
        """Terminate the parent run with ``status`` (FINISHED, FAILED or KILLED); ``True`` when done."""
        if status not in ("FINISHED", "FAILED", "KILLED"):
            raise ConfigurationError(f"status must be FINISHED, FAILED or KILLED, but got {status!r}.")
        if not self.enabled:
            return False
        await self.flush()
        if self.parent_run_id is None:
            return False
        done = await self._call(self._terminate_job, status, what="end run")
        self._run_open = False
        return done is True

    def close(self, timeout_s: float | None = None) -> None:
        """Stop the writer thread after the queued writes (waits at most ``timeout_s``, default
        ``flush_timeout_s``). Blocking: in async code use :meth:`aclose`."""
        if self._trial_writer is not None:
            self._trial_writer.stop(self.flush_timeout_s if timeout_s is None else timeout_s)
            self._trial_writer = None
        if self._worker is not None:
            finished = self._worker.stop(self.flush_timeout_s if timeout_s is None else timeout_s)
            if not finished and not self._broken.is_set():
                self._trip("closing: queued MLflow writes did not finish in time")

    async def aclose(self, timeout_s: float | None = None) -> None:
        """Async :meth:`close`: waits for queued writes without blocking the event loop."""
        if self._worker is None:
            return
        await self.flush(timeout_s)
        # When broken, only instant drops remain queued (or one call stuck until its HTTP timeout,
        # which must not delay the caller): wait briefly.
        await asyncio.to_thread(self.close, 0.5 if self._broken.is_set() else timeout_s)

    async def __aenter__(self) -> MLflowTracker:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()
