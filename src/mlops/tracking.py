"""Best-effort MLflow tracking of HPO studies (F19).

:class:`MLflowTracker` implements the :class:`~src.mlops.types.TrialListener` protocol:

* ``on_study_start`` creates — or, for a study name seen before, resumes — a *parent run* tagged
  ``hpo.study_name=<name>``, ``hpo.role=study`` with the study context as params/tags (secrets redacted)
  and the search space as ``search_space.json``;
* ``on_trial_finished`` logs one *nested run per trial* (params, objective value(s), intermediate
  values as a metric history, duration, state, fail reason) with three client calls
  (``create_run`` + ``log_batch`` + ``set_terminated``). It does not wait for them: writes are queued
  to one background thread, so a trial costs the optimizer only a snapshot of the trial;
* ``on_study_end`` waits for the queued writes, then logs best value/params and trial counts on the
  parent run and terminates it (FINISHED, or FAILED without a completed trial);
* :meth:`MLflowTracker.log_final_model` logs the fitted model with ``mlflow.sklearn.log_model`` and a
  signature inferred from a sample, under the parent run.

Best-effort by construction:

* every MLflow call runs on the tracker's own daemon thread (never on the event loop; the
  ``mlflow`` import itself happens there too), and the loop waits with ``asyncio.wait_for``;
* HTTP stores get bounded timeouts: ``MLFLOW_HTTP_REQUEST_TIMEOUT=request_timeout_s``,
  ``MLFLOW_HTTP_REQUEST_MAX_RETRIES=max_retries``, ``MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR=1``.
  MLflow reads these from ``os.environ`` at call time, so the tracker sets them *only while its own
  call runs* (under a process-wide lock) and restores the previous values afterwards. An unrelated
  MLflow HTTP call made by another thread at that very moment would see the bounded values too;
  nothing else is affected. The tracker's values win over values already in the environment while
  its calls run;
* circuit breaker: the first operational failure (refused connection, timeout, server error, missing
  answer within the deadline) switches the tracker to ``state == "broken"``; from then on every write
  is skipped immediately and counted in :attr:`MLflowTracker.dropped_writes`. Errors tied to one
  request (an invalid value) drop that write only. :attr:`MLflowTracker.last_error` holds the last
  error, redacted;
* MLflow's asynchronous logging is never used (it can hang at interpreter exit); ``log_batch`` is
  called with ``synchronous=True``.

Default store: ``sqlite:///<HPO_HOME>/mlflow.db`` with artifacts under ``<HPO_HOME>/mlartifacts``
(see :func:`default_tracking_uri`); ``MLFLOW_TRACKING_URI`` overrides it; an explicit
``tracking_uri`` overrides both. ``HPO_HOME`` defaults to ``./.hpo``.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import importlib.metadata
import json
import logging
import math
import os
import queue
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna

from .errors import ConfigurationError
from .types import FAIL_REASON_ATTR, OptimizationResult, StudyContext

__all__ = [
    "MLflowTracker",
    "default_tracking_uri",
    "resolve_tracking_uri",
    "resolve_hpo_home",
    "redact_secrets",
]

_log = logging.getLogger(__name__)

STUDY_TAG = "hpo.study_name"
ROLE_TAG = "hpo.role"
TRIAL_NUMBER_TAG = "hpo.trial_number"
PARENT_TAG = "mlflow.parentRunId"
RUN_NAME_TAG = "mlflow.runName"

_MAX_PARAMS_PER_BATCH = 100
_MAX_TAGS_PER_BATCH = 100
_MAX_ENTITIES_PER_BATCH = 1000
_MAX_PARAM_VALUE = 6000
_MAX_TAG_VALUE = 8000
_MAX_KEY = 250
_MAX_INTERMEDIATE_POINTS = 500

#: Serializes the temporary environment changes of all trackers in the process.
_ENV_LOCK = threading.RLock()


# --------------------------------------------------------------------------------------------------
# Secrets and names
# --------------------------------------------------------------------------------------------------

_URL_USERINFO_RE = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^/@\s'\"]+)@")
_KV_SECRET_RE = re.compile(
    r"(?i)(?P<key>\b(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key)\s*[=:]\s*)(?P<value>[^\s&;,'\"]+)"
)
_SECRET_KEY_RE = re.compile(
    r"(?i)(?:^|[._\-\s])(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|credentials?|dsn|"
    r"database[_-]?url|db[_-]?url|connection[_-]?string|conn[_-]?str)(?:$|[._\-\s])"
)


def redact_secrets(value: Any) -> str:
    """``str(value)`` with credentials removed.

    ``postgresql://user:pass@host/db`` -> ``postgresql://***@host/db`` (any ``scheme://userinfo@``),
    and ``password=...``/``token=...``/``secret=...``/``api_key=...`` -> ``password=***``.
    """
    text = str(value)
    text = _URL_USERINFO_RE.sub(lambda m: f"{m.group('scheme')}***@", text)
    return _KV_SECRET_RE.sub(lambda m: f"{m.group('key')}***", text)


def _is_secret_key(key: str) -> bool:
    return bool(_SECRET_KEY_RE.search(f"_{key}_"))


def _clean_value(key: str, value: Any, limit: int, *, by_key: bool = True) -> str:
    """Redacted, length-limited text; with ``by_key`` a secret-looking key hides the whole value."""
    text = "***" if by_key and _is_secret_key(key) else redact_secrets(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _clean_key(key: Any) -> str:
    """A name MLflow accepts for params, metrics and tags (alphanumerics, ``_ - . space``)."""
    text = re.sub(r"[^\w.\- ]", "_", str(key)).strip() or "_"
    if text.startswith("."):
        text = "_" + text
    return text[:_MAX_KEY]


# --------------------------------------------------------------------------------------------------
# Store location
# --------------------------------------------------------------------------------------------------


def resolve_hpo_home(hpo_home: str | os.PathLike[str] | None = None) -> Path:
    """``hpo_home`` if given, else ``$HPO_HOME``, else ``./.hpo`` — as an absolute path."""
    raw = hpo_home if hpo_home is not None else os.environ.get("HPO_HOME") or ".hpo"
    return Path(raw).expanduser().resolve()


def default_tracking_uri(hpo_home: str | os.PathLike[str] | None = None) -> str:
    """``sqlite:///<HPO_HOME>/mlflow.db`` with an absolute path (``sqlite:////abs/path/mlflow.db``)."""
    return f"sqlite:///{(resolve_hpo_home(hpo_home) / 'mlflow.db').as_posix()}"


def resolve_tracking_uri(tracking_uri: str | None = None, *, hpo_home: str | os.PathLike[str] | None = None) -> str:
    """Explicit ``tracking_uri``, else ``$MLFLOW_TRACKING_URI``, else :func:`default_tracking_uri`."""
    if tracking_uri:
        return str(tracking_uri)
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return default_tracking_uri(hpo_home)


def _sqlite_path(uri: str) -> Path | None:
    if not uri.startswith("sqlite:///"):
        return None
    raw = uri[len("sqlite:///") :].split("?", 1)[0]
    if raw in ("", ":memory:"):
        return None
    return Path(raw).expanduser().resolve()


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._") or "experiment"


# --------------------------------------------------------------------------------------------------
# The worker thread
# --------------------------------------------------------------------------------------------------


class _Worker:
    """One daemon thread running submitted calls in order (a daemon never blocks interpreter exit)."""

    def __init__(self, name: str) -> None:
        self._queue: queue.SimpleQueue[tuple[concurrent.futures.Future[Any], Callable[..., Any], tuple[Any, ...]] | None]
        self._queue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()
        self._stopped = False

    def submit(self, fn: Callable[..., Any], *args: Any) -> concurrent.futures.Future[Any]:
        fut: concurrent.futures.Future[Any] = concurrent.futures.Future()
        if self._stopped:
            fut.set_exception(RuntimeError("the MLflow tracker is closed"))
            return fut
        self._queue.put((fut, fn, args))
        return fut

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            fut, fn, args = item
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                fut.set_result(fn(*args))
            except BaseException as e:  # noqa: BLE001 - handed to the awaiting side
                fut.set_exception(e)

    def stop(self, timeout: float | None) -> bool:
        """Let queued calls finish, then end the thread; wait at most ``timeout`` seconds."""
        if not self._stopped:
            self._stopped = True
            self._queue.put(None)
        self._thread.join(timeout)
        return not self._thread.is_alive()


# --------------------------------------------------------------------------------------------------
# Snapshots taken on the event loop (cheap, immutable)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _TrialRecord:
    number: int
    state: str
    params: dict[str, Any]
    values: tuple[float, ...] | None
    intermediate: tuple[tuple[int, float], ...]
    start_ms: int | None
    end_ms: int | None
    duration_s: float | None
    fail_reason: str | None
    user_attrs: dict[str, Any] = field(default_factory=dict)


def _ms(dt: Any) -> int | None:
    return int(dt.timestamp() * 1000) if dt is not None else None


def _snapshot_trial(trial: optuna.trial.FrozenTrial) -> _TrialRecord:
    values = tuple(float(v) for v in trial.values) if trial.values is not None else None
    inter = sorted(trial.intermediate_values.items())
    if len(inter) > _MAX_INTERMEDIATE_POINTS:  # keep an even subsample, always the last point
        step = len(inter) / _MAX_INTERMEDIATE_POINTS
        picked = [inter[int(i * step)] for i in range(_MAX_INTERMEDIATE_POINTS - 1)] + [inter[-1]]
        inter = picked
    duration = trial.duration.total_seconds() if trial.duration is not None else None
    reason = trial.user_attrs.get(FAIL_REASON_ATTR)
    return _TrialRecord(
        number=int(trial.number),
        state=trial.state.name,
        params=dict(trial.params),
        values=values,
        intermediate=tuple((int(s), float(v)) for s, v in inter),
        start_ms=_ms(trial.datetime_start),
        end_ms=_ms(trial.datetime_complete),
        duration_s=duration,
        fail_reason=None if reason is None else str(reason),
        user_attrs={k: v for k, v in trial.user_attrs.items() if k != FAIL_REASON_ATTR},
    )


_STATUS_BY_STATE = {"COMPLETE": "FINISHED", "PRUNED": "FINISHED", "FAIL": "FAILED"}


# --------------------------------------------------------------------------------------------------
# The tracker
# --------------------------------------------------------------------------------------------------


class _Dropped(Exception):
    """Internal: a write skipped because the breaker is open."""


class MLflowTracker:
    """Log an Optuna study to MLflow: a parent run per study, a nested run per trial, the final model.

    Args:
        tracking_uri: MLflow tracking URI; default ``$MLFLOW_TRACKING_URI`` or
            ``sqlite:///<HPO_HOME>/mlflow.db`` (see :func:`resolve_tracking_uri`).
        experiment_name: experiment to log into (created if missing; for a SQLite store its artifact
            location is ``<directory of the .db>/mlartifacts/<experiment>``).
        enabled: ``False`` makes every method a no-op (``state == "disabled"``; nothing is counted).
        request_timeout_s: HTTP timeout of one MLflow request (HTTP stores only), >= 1.
        max_retries: HTTP retries per request (HTTP stores only), 0..10.
        hpo_home: base directory of the default store (default ``$HPO_HOME`` or ``~/.hpo``).
        call_timeout_s: deadline of one awaited MLflow operation; default
            ``request_timeout_s * (max_retries + 1) + backoff + 1`` for HTTP stores (4 s with the
            defaults), 30 s for database URIs (``postgresql://``...), 120 s for SQLite/file stores.
        flush_timeout_s: how long ``on_study_end``/``flush`` wait for queued trial writes (default 30 s).
        model_timeout_s: deadline of :meth:`log_final_model` (default 300 s).
        log_trials: ``False`` skips the nested trial runs (parent run only).
        log_intermediate: also log each trial's intermediate values (per boosting round / fold) as a
            metric history. Off by default: it multiplies the rows written per trial, and the values
            stay in the Optuna study anyway.
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
        scheme = self.tracking_uri.split(":", 1)[0].lower()
        self._remote = scheme in ("http", "https")
        if call_timeout_s is None:
            if self._remote:
                backoff = sum(min(2.0**i, 120.0) for i in range(self.max_retries))
                call_timeout_s = self.request_timeout_s * (self.max_retries + 1) + backoff + 1.0
            elif scheme.split("+", 1)[0] in ("postgresql", "postgres", "mysql", "mssql"):
                call_timeout_s = 30.0  # a database store: the first call may create MLflow's schema
            else:
                call_timeout_s = 120.0  # SQLite/file: creating the schema takes seconds on first use
        self.call_timeout_s = float(call_timeout_s)
        self.flush_timeout_s = float(flush_timeout_s)
        self.model_timeout_s = float(model_timeout_s)
        self.log_trials = bool(log_trials)
        self.log_intermediate = bool(log_intermediate)
        self.max_pending = int(max_pending)

        #: id of the parent run of the study (``None`` until ``on_study_start`` succeeded).
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
        self._pending: collections.deque[concurrent.futures.Future[Any]] = collections.deque()
        self._worker: _Worker | None = None
        self._trial_writer: _TrialWriterProcess | None = None
        self._ready: concurrent.futures.Future[Any] | None = None
        if self.enabled:
            self._worker = _Worker(name=f"mlflow-tracker-{id(self):x}")
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

    def __repr__(self) -> str:
        return (
            f"MLflowTracker(tracking_uri={redact_secrets(self.tracking_uri)!r}, "
            f"experiment_name={self.experiment_name!r}, state={self.state!r})"
        )

    # ---------------------------------------------------------------- failure handling

    def _drop(self, n: int = 1) -> None:
        with self._counter_lock:
            self._dropped += n

    def _set_error(self, message: str) -> None:
        text = redact_secrets(message)
        with self._counter_lock:
            self._last_error = text if len(text) <= 1000 else text[:997] + "..."

    def _trip(self, message: str) -> None:
        if not self._broken.is_set():
            _log.warning(
                "MLflow tracking disabled for the rest of this study (%s): %s",
                redact_secrets(self.tracking_uri),
                redact_secrets(message),
            )
        self._set_error(message)
        self._broken.set()

    @staticmethod
    def _request_specific(error: BaseException) -> bool:
        """An error about one request's content (drop that write) rather than the backend (trip)."""
        try:
            from mlflow.exceptions import MlflowException
        except Exception:  # pragma: no cover
            return False
        if isinstance(error, MlflowException):
            return error.error_code in {
                "INVALID_PARAMETER_VALUE",
                "RESOURCE_ALREADY_EXISTS",
                "RESOURCE_DOES_NOT_EXIST",
                "BAD_REQUEST",
                "INVALID_STATE",
            }
        return False

    def _guarded(self, job: Callable[..., Any], *args: Any) -> Any:
        """Run ``job`` on the worker thread: skip when broken, bound HTTP, classify failures."""
        if self._broken.is_set():
            self._drop()
            raise _Dropped()
        try:
            with self._http_env():
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
        """Run :meth:`_init_job`; a failure opens the breaker (it is not a write, so not counted)."""
        try:
            self._init_job()
        except Exception as e:
            self._trip(f"init: {type(e).__name__}: {e}")
            raise _Dropped() from e

    @contextlib.contextmanager
    def _http_env(self) -> Iterator[None]:
        if not self._remote:
            yield
            return
        wanted = {
            "MLFLOW_HTTP_REQUEST_TIMEOUT": str(max(1, math.ceil(self.request_timeout_s))),
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(self.max_retries),
            "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
        }
        with _ENV_LOCK:
            saved = {k: os.environ.get(k) for k in wanted}
            os.environ.update(wanted)
            try:
                yield
            finally:
                for k, v in saved.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v

    async def _call(self, job: Callable[..., Any], *args: Any, timeout: float | None = None, what: str) -> Any:
        """Run ``job`` on the worker and await it with a deadline; ``None`` on any failure."""
        if not self.enabled or self._worker is None:
            return None
        if self._broken.is_set():
            self._drop()
            return None
        if not await self._await_ready():
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
        except RuntimeError as e:  # worker closed
            self._drop()
            self._set_error(f"{what}: {e}")
            return None

    async def _await_ready(self) -> bool:
        """Wait (off the loop) for the worker's import of mlflow and client creation."""
        assert self._ready is not None
        if not self._ready.done():
            await asyncio.to_thread(concurrent.futures.wait, [self._ready], 120.0)
        if not self._ready.done():
            self._trip("importing mlflow / creating the client took more than 120s")
            return False
        return self._ready.exception() is None

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

    # ---------------------------------------------------------------- worker-side jobs

    def _init_job(self) -> None:
        """Import mlflow and create the client (off the event loop; the import alone takes seconds)."""
        from mlflow import MlflowClient

        db = _sqlite_path(self.tracking_uri)
        if db is not None:
            db.parent.mkdir(parents=True, exist_ok=True)
        self._client = MlflowClient(tracking_uri=self.tracking_uri)

    def _artifact_location(self) -> str | None:
        db = _sqlite_path(self.tracking_uri)
        if db is None:
            return None
        path = db.parent / "mlartifacts" / _slug(self.experiment_name)
        return path.as_uri()

    def _ensure_experiment(self) -> str:
        if self.experiment_id is not None:
            return self.experiment_id
        from mlflow.exceptions import MlflowException

        client = self._client
        exp = client.get_experiment_by_name(self.experiment_name)
        if exp is None:
            try:
                exp_id = client.create_experiment(self.experiment_name, artifact_location=self._artifact_location())
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

    def _log_batch(
        self,
        run_id: str,
        *,
        params: Mapping[str, Any] | None = None,
        metrics: Sequence[tuple[str, float, int, int]] = (),
        tags: Mapping[str, Any] | None = None,
    ) -> None:
        _log_batch(self._client, run_id, params=params, metrics=metrics, tags=tags)

    def _study_tags(self, context: StudyContext) -> dict[str, str]:
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

    def _start_job(self, context: StudyContext) -> tuple[str, set[str], set[int], bool]:
        client = self._client
        exp_id = self._ensure_experiment()
        run = self._find_parent(exp_id, context.study_name)
        logged: set[int] = set()
        if run is not None:
            run_id = run.info.run_id
            existing = set(run.data.params)
            resumed = True
            if run.info.status != "RUNNING":
                client.update_run(run_id, status="RUNNING")
            children = client.search_runs(
                [exp_id], filter_string=f"tags.`{PARENT_TAG}` = '{run_id}'", max_results=50_000
            )
            for child in children:
                number = child.data.tags.get(TRIAL_NUMBER_TAG)
                if number is not None and number.isdigit():
                    logged.add(int(number))
        else:
            tags = {k: _clean_value(k, v, _MAX_TAG_VALUE) for k, v in self._study_tags(context).items()}
            run = client.create_run(exp_id, run_name=context.study_name, tags=tags)
            run_id = run.info.run_id
            existing = set()
            resumed = False
        params = {k: v for k, v in self._study_params(context).items() if _clean_key(k) not in existing}
        tags = self._study_tags(context) if resumed else {}
        if params or tags:
            self._log_batch(run_id, params=params, tags=tags)
        if context.search_space:
            client.log_dict(run_id, _jsonable(context.search_space), "search_space.json")
        return run_id, existing | {_clean_key(k) for k in params}, logged, resumed

    def _trial_job(self, record: _TrialRecord) -> None:
        if record.number in self._logged_trials:
            return
        parent, exp_id = self.parent_run_id, self.experiment_id
        if parent is None or exp_id is None:
            raise _Dropped()
        study_name = self._context.study_name if self._context else ""
        _write_trial(self._client, record, exp_id=exp_id, parent_run_id=parent, study_name=study_name,
                     metric_names=self._metric_names, log_intermediate=self.log_intermediate)
        self._logged_trials.add(record.number)

    def _end_job(self, summary: dict[str, Any], status: str) -> None:
        run_id = self.parent_run_id
        if run_id is None:
            raise _Dropped()
        now = int(time.time() * 1000)
        step = int(summary.get("n_trials") or 0)
        metrics: list[tuple[str, float, int, int]] = []
        for key, value in summary["metrics"].items():
            if value is not None and isinstance(value, (int, float)) and not isinstance(value, bool):
                metrics.append((key, float(value), now, step))
        params = {f"best.{k}": v for k, v in summary["best_params"].items() if _clean_key(f"best.{k}") not in self._existing_params}
        tags = dict(summary["tags"])
        self._log_batch(run_id, params=params, metrics=metrics, tags=tags)
        self._existing_params |= {_clean_key(k) for k in params}
        self._client.set_terminated(run_id, status=status)

    def _terminate_job(self, status: str) -> None:
        if self.parent_run_id is not None:
            self._client.set_terminated(self.parent_run_id, status=status)

    def _model_job(
        self,
        model: Any,
        X_sample: Any,
        artifact_name: str,
        metrics: Mapping[str, float] | None,
        params: Mapping[str, Any] | None,
        registered_model_name: str | None,
        files: Sequence[str | os.PathLike[str]] = (),
    ) -> str:
        import mlflow
        import mlflow.sklearn

        run_id = self.parent_run_id
        if run_id is None:
            raise _Dropped()
        sample = X_sample.head(100) if hasattr(X_sample, "head") else X_sample[:100]
        signature = None
        try:
            from mlflow.models import infer_signature

            signature = infer_signature(sample, model.predict(sample))
        except Exception as e:  # a model without a signature is still worth logging
            self._set_error(f"log_final_model: signature inference failed: {type(e).__name__}: {e}")
        serialization = "skops"
        trusted: list[str] | None = None
        try:
            import skops.io as sio

            trusted = list(sio.get_untrusted_types(data=sio.dumps(model)))
        except Exception:
            serialization = "cloudpickle"
        client = self._client
        if params:
            new = {k: v for k, v in params.items() if _clean_key(k) not in self._existing_params}
            if new:
                self._log_batch(run_id, params=new)
                self._existing_params |= {_clean_key(k) for k in new}
        if metrics:
            now = int(time.time() * 1000)
            self._log_batch(run_id, metrics=[(k, float(v), now, 0) for k, v in metrics.items()])
        previous_status = client.get_run(run_id).info.status
        with _scoped_tracking_uri(self.tracking_uri):
            mlflow.start_run(run_id=run_id)
            try:
                info = mlflow.sklearn.log_model(
                    model,
                    name=artifact_name,
                    signature=signature,
                    serialization_format=serialization,
                    skops_trusted_types=trusted if serialization == "skops" else None,
                    pip_requirements=_pip_requirements(model, serialization),
                    registered_model_name=registered_model_name,
                    await_registration_for=0,
                )
            finally:
                mlflow.end_run(status=previous_status if previous_status != "RUNNING" else "FINISHED")
        for path in files:
            client.log_artifact(run_id, os.fspath(path), artifact_path=f"{artifact_name}_files")
        return str(info.model_uri)

    # ---------------------------------------------------------------- TrialListener

    async def on_study_start(self, study: optuna.Study, context: StudyContext) -> None:
        """Create or resume the parent run of ``context.study_name``."""
        if not self.enabled:
            return
        self._context = context
        names = tuple(context.metric_names) if context.metric_names else ((context.metric,) if context.metric else ())
        self._metric_names = tuple(_clean_key(n) for n in names) or (
            ("value",) if len(context.directions) <= 1 else tuple(f"value_{i}" for i in range(len(context.directions)))
        )
        result = await self._call(self._start_job, context, what="start study run")
        if result is not None:
            self.parent_run_id, self._existing_params, self._logged_trials, _ = result
            if self.log_trials and not self._remote and self._trial_writer is None and self.experiment_id:
                # Local store: nested trial runs are written by a child process (MLflow's ORM work
                # would otherwise compete with the study for this process's GIL).
                setup = {"exp_id": self.experiment_id, "parent_run_id": self.parent_run_id,
                         "study_name": context.study_name, "metric_names": self._metric_names,
                         "log_intermediate": self.log_intermediate}
                try:
                    self._trial_writer = _TrialWriterProcess(self.tracking_uri, setup)
                except Exception as e:  # noqa: BLE001 - fall back to the worker thread
                    self._set_error(f"trial writer process: {type(e).__name__}: {e}")

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
            record = _snapshot_trial(trial)
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
        summary = _summarize(result, self._metric_names)
        status = "FINISHED" if (getattr(result, "n_completed", 0) or 0) > 0 else "FAILED"
        await self._call(self._end_job, summary, status, what="end study run")

    # ---------------------------------------------------------------- final model and lifecycle

    async def log_final_model(
        self,
        model: Any,
        X_sample: Any,
        *,
        artifact_name: str = "model",
        metrics: Mapping[str, float] | None = None,
        params: Mapping[str, Any] | None = None,
        registered_model_name: str | None = None,
        files: Sequence[str | os.PathLike[str]] = (),
    ) -> str | None:
        """Log a fitted scikit-learn-compatible model (a Pipeline, LightGBM, XGBoost...) under the parent run.

        ``files`` (e.g. the local artifact's ``preparer.json`` and ``metadata.json``) are logged as
        run artifacts under ``<artifact_name>_files/``.

        The signature is inferred from ``X_sample`` (first 100 rows) and the model's predictions.
        The model is stored in skops format with its own types trusted (so
        ``mlflow.sklearn.load_model`` works), or cloudpickle when skops cannot serialize it; pip
        requirements are pinned from the installed versions (no slow requirement inference).
        ``metrics``/``params`` go to the parent run too (params already set are not changed).
        Returns the model URI, or ``None`` when tracking is off, broken or the call failed.
        """
        if not self.enabled:
            return None
        await self.flush()
        if self.parent_run_id is None:
            self._drop()
            return None
        uri = await self._call(
            self._model_job,
            model,
            X_sample,
            artifact_name,
            metrics,
            params,
            registered_model_name,
            tuple(files),
            timeout=self.model_timeout_s,
            what="log final model",
        )
        if uri is not None:
            self.model_uri = uri
        return uri

    async def end_run(self, status: str = "FINISHED") -> None:
        """Terminate the parent run with ``status`` (FINISHED, FAILED or KILLED)."""
        if status not in ("FINISHED", "FAILED", "KILLED"):
            raise ConfigurationError(f"status must be FINISHED, FAILED or KILLED, but got {status!r}.")
        if not self.enabled:
            return
        await self.flush()
        if self.parent_run_id is not None:
            await self._call(self._terminate_job, status, what="end run")

    def close(self, timeout_s: float | None = None) -> None:
        """Stop the worker thread after the queued writes (waits at most ``timeout_s``, default
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


# --------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------


def _log_batch(
    client: Any,
    run_id: str,
    *,
    params: Mapping[str, Any] | None = None,
    metrics: Sequence[tuple[str, float, int, int]] = (),
    tags: Mapping[str, Any] | None = None,
) -> None:
    """``log_batch`` in chunks that respect MLflow's limits (100 params, 100 tags, 1000 entities)."""
    from mlflow.entities import Metric, Param, RunTag

    p = [
        Param(_clean_key(k), _clean_value(str(k), v, _MAX_PARAM_VALUE, by_key=False))
        for k, v in (params or {}).items()
    ]
    t = [RunTag(str(k)[:_MAX_KEY], _clean_value(str(k), v, _MAX_TAG_VALUE)) for k, v in (tags or {}).items()]
    m = [Metric(_clean_key(k), float(v), int(ts), int(step)) for k, v, ts, step in metrics]
    while p or t or m:
        bp, p = p[:_MAX_PARAMS_PER_BATCH], p[_MAX_PARAMS_PER_BATCH:]
        bt, t = t[:_MAX_TAGS_PER_BATCH], t[_MAX_TAGS_PER_BATCH:]
        room = _MAX_ENTITIES_PER_BATCH - len(bp) - len(bt)
        bm, m = m[:room], m[room:]
        client.log_batch(run_id, metrics=bm, params=bp, tags=bt, synchronous=True)


def _write_trial(client: Any, record: _TrialRecord, *, exp_id: str, parent_run_id: str, study_name: str,
                 metric_names: tuple[str, ...], log_intermediate: bool) -> None:
    """One nested run for one trial: create_run + log_batch + set_terminated."""
    status = _STATUS_BY_STATE.get(record.state, "KILLED")
    tags = {
        PARENT_TAG: parent_run_id,
        STUDY_TAG: study_name,
        ROLE_TAG: "trial",
        TRIAL_NUMBER_TAG: str(record.number),
        "hpo.state": record.state,
    }
    if record.fail_reason:
        tags["hpo.fail_reason"] = record.fail_reason
    metrics: list[tuple[str, float, int, int]] = []
    now = record.end_ms or int(time.time() * 1000)
    if record.values is not None:
        names = metric_names if len(metric_names) == len(record.values) else tuple(
            f"value_{i}" for i in range(len(record.values))
        ) if len(record.values) > 1 else ("value",)
        metrics += [(name, v, now, 0) for name, v in zip(names, record.values)]
    if record.duration_s is not None:
        metrics.append(("duration_s", record.duration_s, now, 0))
    if log_intermediate:
        inter_name = f"intermediate_{metric_names[0]}" if len(metric_names) == 1 else "intermediate_value"
        metrics += [(inter_name, v, now, step) for step, v in record.intermediate]
    attrs_tags: dict[str, str] = {}
    for k, v in record.user_attrs.items():
        if isinstance(v, bool) or v is None:
            attrs_tags[f"hpo.attr.{_clean_key(k)}"] = str(v)
        elif isinstance(v, (int, float)) and math.isfinite(float(v)):
            metrics.append((f"attr.{k}", float(v), now, 0))
        elif isinstance(v, str) and len(v) <= 500:
            attrs_tags[f"hpo.attr.{_clean_key(k)}"] = v
    tags = {k: _clean_value(k, v, _MAX_TAG_VALUE) for k, v in tags.items()}
    run = client.create_run(exp_id, start_time=record.start_ms, tags=tags, run_name=f"trial-{record.number:04d}")
    run_id = run.info.run_id
    _log_batch(client, run_id, params=record.params, metrics=metrics, tags=attrs_tags)
    client.set_terminated(run_id, status=status, end_time=record.end_ms)


def _trial_writer_main(inbox: Any, outbox: Any, tracking_uri: str, setup: dict[str, Any]) -> None:  # pragma: no cover - child process
    """Child process writing nested trial runs, so MLflow's ORM work never competes with the study
    for the parent's GIL. Niced: the study's fits get the CPU first."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group: the parent decides
    with contextlib.suppress(OSError):
        os.nice(10)
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    ok = failed = 0
    last_error: str | None = None
    while True:
        item = inbox.get()
        if item is None:
            outbox.put(("closed", ok, failed, last_error))
            return
        if item == "flush":
            outbox.put(("flushed", ok, failed, last_error))
            ok = failed = 0
            continue
        try:
            _write_trial(client, item, **setup)
            ok += 1
        except Exception as e:  # noqa: BLE001 - counted and reported at the next flush
            failed += 1
            last_error = f"{type(e).__name__}: {e}"


class _TrialWriterProcess:
    """Parent side of :func:`_trial_writer_main` (local stores only: SQLite, file, a database URI)."""

    def __init__(self, tracking_uri: str, setup: dict[str, Any]) -> None:
        from .executors import _context, start_process

        ctx = _context()
        self._inbox, self._outbox = ctx.Queue(), ctx.Queue()
        self._proc = ctx.Process(target=_trial_writer_main, args=(self._inbox, self._outbox, tracking_uri, setup),
                                 daemon=True, name="mlflow-trial-writer")
        start_process(self._proc)
        self._lock = threading.Lock()

    def put(self, record: _TrialRecord) -> None:
        self._inbox.put(record)

    def flush(self, timeout: float) -> tuple[int, int, str | None] | None:
        """Wait until every record put so far is written: (ok, failed, last_error), or None on timeout."""
        with self._lock:
            self._inbox.put("flush")
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                try:
                    kind, ok, failed, err = self._outbox.get(timeout=min(0.5, max(0.01, deadline - time.monotonic())))
                    return ok, failed, err
                except queue.Empty:
                    if not self._proc.is_alive():
                        return None
            return None

    def stop(self, timeout: float) -> None:
        with contextlib.suppress(Exception):
            self._inbox.put(None)
        self._proc.join(timeout)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join(2)


def _consume_exception(fut: concurrent.futures.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()  # mark as retrieved; failures are already counted by _guarded


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=lambda o: o.item() if hasattr(o, "item") else str(o)))


def _summarize(result: Any, metric_names: tuple[str, ...]) -> dict[str, Any]:
    """Plain data for the parent run, taken from an OptimizationResult on the event loop."""
    get = lambda name, default=None: getattr(result, name, default)  # noqa: E731
    metrics: dict[str, Any] = {
        "n_trials": get("n_trials"),
        "n_completed": get("n_completed"),
        "n_pruned": get("n_pruned"),
        "n_failed": get("n_failed"),
        "duration_s": get("duration_s"),
    }
    best_values = get("best_values")
    if best_values and len(best_values) > 1:
        names = metric_names if len(metric_names) == len(best_values) else tuple(f"value_{i}" for i in range(len(best_values)))
        for name, value in zip(names, best_values):
            metrics[f"best_{name}"] = value
    else:
        metrics[f"best_{metric_names[0] if metric_names else 'value'}"] = get("best_value")
    metrics["defaults_value"] = get("defaults_value")
    try:
        metrics["improvement_over_defaults"] = get("improvement_over_defaults")
    except Exception:  # pragma: no cover
        pass
    best_params = dict(get("best_params") or {})
    tags = {
        "hpo.best_params": json.dumps(_jsonable(best_params), sort_keys=True),
        "hpo.stop_reason": str(get("stop_reason", "")),
        "hpo.best_trial_number": str(get("best_trial_number", "")),
    }
    if get("pareto_front"):
        tags["hpo.pareto_front_size"] = str(len(get("pareto_front")))
    return {"metrics": metrics, "best_params": best_params, "tags": tags, "n_trials": get("n_trials")}


@contextlib.contextmanager
def _scoped_tracking_uri(uri: str) -> Iterator[None]:
    """Point MLflow's fluent API (used by ``log_model``) at ``uri`` for the duration, then restore
    the previous global URI and ``MLFLOW_TRACKING_URI`` exactly (``mlflow.set_tracking_uri(None)``
    would otherwise unset a user's environment variable)."""
    import mlflow
    from mlflow.tracking._tracking_service import utils as tracking_utils

    with _ENV_LOCK:
        previous = getattr(tracking_utils, "_tracking_uri", None)
        previous_env = os.environ.get("MLFLOW_TRACKING_URI")
        mlflow.set_tracking_uri(uri)
        try:
            yield
        finally:
            mlflow.set_tracking_uri(previous)
            if previous_env is None:
                os.environ.pop("MLFLOW_TRACKING_URI", None)
            else:
                os.environ["MLFLOW_TRACKING_URI"] = previous_env


def _model_objects(model: Any) -> Iterator[Any]:
    yield model
    get_params = getattr(model, "get_params", None)
    if callable(get_params):
        try:
            values = list(get_params(deep=True).values())
        except Exception:
            values = []
        for v in values:
            if hasattr(v, "get_params") or hasattr(v, "fit"):
                yield v
    for attr in ("steps", "estimators_", "estimator_", "best_estimator_"):
        inner = getattr(model, attr, None)
        if isinstance(inner, list):
            for item in inner:
                yield item[-1] if isinstance(item, tuple) else item
        elif inner is not None:
            yield inner


_DISTRIBUTIONS = {
    "sklearn": ("scikit-learn",),
    "xgboost": ("xgboost", "xgboost-cpu"),
    "lightgbm": ("lightgbm",),
    "mlflow": ("mlflow", "mlflow-skinny"),
    "skops": ("skops",),
    "cloudpickle": ("cloudpickle",),
    "catboost": ("catboost",),
    "imblearn": ("imbalanced-learn",),
}


def _pip_requirements(model: Any, serialization: str) -> list[str]:
    """Pinned requirements of the packages whose classes make up ``model`` (plus mlflow and skops or
    cloudpickle). Looked up by name (``importlib.metadata.packages_distributions`` scans every
    installed distribution and costs seconds)."""
    packages = {"sklearn", "mlflow", "skops" if serialization == "skops" else "cloudpickle"}
    for obj in _model_objects(model):
        module = type(obj).__module__.split(".")[0]
        if module not in ("builtins", "src", "__main__", "numpy", "pandas", "scipy"):
            packages.add(module)
    reqs: set[str] = set()
    for package in sorted(packages):
        for dist in _DISTRIBUTIONS.get(package, (package,)):
            try:
                reqs.add(f"{dist}=={importlib.metadata.version(dist)}")
                break
            except importlib.metadata.PackageNotFoundError:
                continue
    return sorted(reqs)
