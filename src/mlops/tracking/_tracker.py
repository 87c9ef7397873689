"""The MLflow tracker: a parent run per study, a nested run per trial, the final model; best-effort
behind a circuit breaker (see the package docstring)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import ConfigurationError
from ..jsonutil import to_jsonable
from ..redaction import redact_secrets
from ..types import OptimizationResult, StudyContext
from ._breaker import Breaker, Dropped
from ._runs import (
    MAX_TAG_VALUE,
    PARENT_TAG,
    ROLE_TAG,
    STUDY_TAG,
    TRIAL_NUMBER_TAG,
    TrialRecord,
    clean_key,
    clean_value,
    log_batch,
    snapshot_trial,
    summarize,
    write_trial,
)
from ._store import (
    artifact_location,
    default_call_timeout,
    http_settings,
    is_remote,
    prepare_sqlite_store,
    resolve_tracking_uri,
    store_init_lock,
)

if TYPE_CHECKING:
    import optuna

__all__ = ["MLflowTracker"]


class MLflowTracker(Breaker):
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

        self._init_breaker()
        self._client: Any = None
        self._context: StudyContext | None = None
        self._metric_names: tuple[str, ...] = ("value",)
        self._existing_params: set[str] = set()
        self._logged_trials: set[int] = set()
        self._run_open = False
        #: the queued job opening the parent run (see on_study_start)
        self._starting: Any = None
        if self.enabled:
            self._start_writer(self._init_client)

    # ---------------------------------------------------------------- public state

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

    async def flush(self, timeout_s: float | None = None) -> bool:
        """Wait until the queued trial writes are done; ``False`` (and the breaker opens) on timeout."""
        if not self.enabled:
            return True
        timeout = self.flush_timeout_s if timeout_s is None else timeout_s
        return await self._wait_pending(timeout)

    # ---------------------------------------------------------------- writer-side jobs

    def _init_client(self) -> None:
        """The writer thread's first job (from the constructor, so it overlaps the caller's own start-up):
        import MLflow, prepare a local SQLite store; for a local store, also open it and find or create
        the experiment now (a server is contacted only by the first awaited call, under its deadline)."""
        from mlflow import MlflowClient

        with store_init_lock(self.tracking_uri):  # two first runs must not both create MLflow's schema
            prepare_sqlite_store(self.tracking_uri)
            self._client = MlflowClient(tracking_uri=self.tracking_uri)
            if not self._remote:
                self._ensure_experiment()

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
            client.log_dict(run_id, to_jsonable(context.search_space), "search_space.json")
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
            raise Dropped()
        study_name = self._context.study_name if self._context else ""
        write_trial(self._client, record, exp_id=exp_id, parent_run_id=parent, study_name=study_name,
                    metric_names=self._metric_names, log_intermediate=self.log_intermediate)
        self._logged_trials.add(record.number)

    def _end_job(self, summary: dict[str, Any], status: str) -> None:
        run_id = self.parent_run_id
        if run_id is None:
            raise Dropped()
        now = int(time.time() * 1000)
        step = int(summary.get("n_trials") or 0)
        metrics = [(key, float(value), now, step) for key, value in summary["metrics"].items()
                   if isinstance(value, (int, float)) and not isinstance(value, bool)]
        params = {f"best.{k}": v for k, v in summary["best_params"].items()
                  if clean_key(f"best.{k}") not in self._existing_params}
        log_batch(self._client, run_id, params=params, metrics=metrics, tags=dict(summary["tags"]))
        self._existing_params |= {clean_key(k) for k in params}
        if summary.get("analysis"):
            self._client.log_dict(run_id, summary["analysis"], "analysis.json")
        if summary.get("phases"):
            self._client.log_dict(run_id, summary["phases"], "phases.json")
        if summary.get("pareto"):  # multi-objective: the front and the picked point
            self._client.log_dict(run_id, summary["pareto"], "pareto_front.json")
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
            raise Dropped()
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

    async def on_study_start(self, study: optuna.Study | None, context: StudyContext) -> None:
        """Create or resume the parent run of ``context.study_name`` (``study`` is not used: a run
        without a study, e.g. with tuning disabled, passes ``None``).

        A local store's run is queued, not awaited: the study's first trials start while MLflow
        opens its store and the run (the trial writes queue behind it); :meth:`wait_started` awaits
        it where the run id is needed. A server's is awaited under the call deadline, so that an
        unreachable server opens the breaker at once instead of holding the writer queue."""
        if not self.enabled:
            return
        self._set_context(context)
        if self._remote:
            result = await self._call(self._start_job, context, what="start study run")
            if result is not None:
                self.parent_run_id, self._existing_params, self._logged_trials = result
                self._run_open = True
            return
        self._starting = self._submit_background(self._open_job, context)

    def _open_job(self, context: StudyContext) -> None:
        self.parent_run_id, self._existing_params, self._logged_trials = self._start_job(context)
        self._run_open = True

    async def wait_started(self) -> str | None:
        """The parent run id once the run queued by :meth:`on_study_start` is open (``None`` when
        tracking is off or MLflow failed within the call deadline: see :attr:`last_error`)."""
        starting = self._starting
        if not self.enabled or starting is None or self.parent_run_id is not None:
            return self.parent_run_id
        try:
            await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(starting)), timeout=self.call_timeout_s)
        except (asyncio.TimeoutError, TimeoutError):
            self._trip(f"start study run: no answer from {self.tracking_uri} within {self.call_timeout_s:.1f}s")
        except Exception:  # noqa: BLE001 - counted by the guarded job; the reason is in last_error
            pass
        return self.parent_run_id

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
        if self._broken.is_set() or (self.parent_run_id is None and self._starting is None):
            self._drop()
            return
        try:
            record = snapshot_trial(trial)
        except Exception as e:  # pragma: no cover - defensive: a listener never raises
            self._drop()
            self._set_error(f"trial snapshot failed: {type(e).__name__}: {e}")
            return
        self._submit_background(self._trial_job, record)

    async def on_study_end(self, study: optuna.Study, result: OptimizationResult) -> None:
        """Log best value/params and counts on the parent run and terminate it."""
        if not self.enabled:
            return
        if self.parent_run_id is None and self._starting is None:
            self._drop()
            return
        summary = summarize(result, self._metric_names)
        status = "FINISHED" if (getattr(result, "n_completed", 0) or 0) > 0 else "FAILED"
        # Queued behind the trial writes, not awaited: the study's caller (final fits under a time
        # budget) does not wait for MLflow; flush(), log_final_model() and aclose() do.
        self._submit_background(self._end_job, summary, status)
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
