"""Best-effort MLflow tracking of HPO studies (F19).

:class:`MLflowTracker` implements the :class:`~src.mlops.types.TrialListener` protocol:

* ``on_study_start`` creates -- or, for a study name seen before, resumes -- a *parent run* tagged
  ``hpo.study_name=<name>``, ``hpo.role=study`` with the study context as params/tags (secrets
  redacted) and the search space as ``search_space.json``; :meth:`MLflowTracker.reopen_run` reopens
  a parent run by id (a resumed graph run whose process died keeps its record);
* ``on_trial_finished`` logs one *nested run per trial* (params, objective value(s), duration,
  state, fail reason; intermediate values optionally) without waiting: the tracker's writer thread
  writes it. A local SQLite store is switched to WAL with ``synchronous=NORMAL`` commits
  (:func:`._store.prepare_sqlite_store`): a nested run then costs milliseconds, not the ~100 ms of
  SQLite's default full sync per commit, so the writer keeps up with the study;
* ``on_study_end`` queues (without waiting) the best value/params and trial counts for the parent
  run, and its termination (FINISHED, or FAILED without a completed trial);
* :meth:`MLflowTracker.log_final_model` logs the saved model as a portable pyfunc that takes the
  user's raw rows (:mod:`._model`, :mod:`._pyfunc`).

Best-effort by construction: every MLflow call runs on the tracker's writer thread (never on the
event loop) and is awaited with a deadline; the first operational failure opens a circuit breaker
(``state == "broken"``), after which writes are skipped at once and counted in
:attr:`MLflowTracker.dropped_writes`; :attr:`MLflowTracker.last_error` says why (redacted). The
tracker never changes ``os.environ`` nor MLflow's global state (tracking URI, active run): it uses
``MlflowClient(tracking_uri=...)`` only. MLflow's HTTP bounds come from the environment
(:func:`http_settings`, applied by the ``hpo`` command at start). MLflow's asynchronous logging is
never used (it can hang at interpreter exit).

Default store: ``sqlite:///<HPO_HOME>/mlflow.db`` with artifacts under ``<HPO_HOME>/mlartifacts``
(:func:`default_tracking_uri`); ``MLFLOW_TRACKING_URI`` overrides it; an explicit ``tracking_uri``
overrides both. ``HPO_HOME`` defaults to ``./.hpo``.

Modules: ``_store`` (URIs, store locations, HTTP settings), ``_writer`` (the writer thread),
``_tracker`` (the tracker and its breaker), ``_files`` (files logged later to a study's parent
run: the report), ``_runs`` (trial snapshots, nested runs, batching and
value cleaning), ``_model`` (logging the pyfunc model),
``_pyfunc`` (the pyfunc model itself).
"""

from .._home import resolve_hpo_home
from ..redaction import redact_secrets
from ._files import find_study_run, log_study_files
from ._store import default_tracking_uri, http_settings, resolve_tracking_uri
from ._tracker import MLflowTracker

__all__ = [
    "MLflowTracker",
    "default_tracking_uri",
    "resolve_tracking_uri",
    "resolve_hpo_home",
    "redact_secrets",
    "http_settings",
    "find_study_run",
    "log_study_files",
]
