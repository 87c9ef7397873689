"""``hpo`` entry point: process set-up, dispatch, and the one place that maps outcomes to exit codes.

Process-wide state is set here and only here, before anything starts a thread: the environment
defaults MLflow reads, the warning filters (specific noisy warnings, by category and module), and
logging (one line per record; tracebacks only with ``HPO_LOG_LEVEL=DEBUG``).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import os
import signal
import sys
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .exits import EXIT_BAD_INPUT, EXIT_FAILURE, EXIT_OK, BadInput, exit_code_for_signal

__all__ = ["main", "run"]

ENV_LOG_LEVEL = "HPO_LOG_LEVEL"

#: environment defaults MLflow reads at import or first use (set before any thread exists).
_ENV_DEFAULTS = {"MLFLOW_DISABLE_TELEMETRY": "true", "MLFLOW_LOGGING_LEVEL": "WARNING", "DO_NOT_TRACK": "true",
                 "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}  # its bars would cut through ours

#: (category, module regex) of warnings a user cannot act on.
_QUIET_WARNINGS: tuple[tuple[type[Warning], str], ...] = (
    (FutureWarning, r"mlflow(\.|$)"),
    (DeprecationWarning, r"mlflow(\.|$)"),
    (UserWarning, r"mlflow\.types\.utils"),           # "Hint: Inferred schema contains integer column(s)..."
    (UserWarning, r"mlflow\.models\.signature"),
    (UserWarning, r"mlflow\.pyfunc(\.|$)"),             # "Add type hints to predict", "no input example"
    (UserWarning, r"pgserver(\.|$)"),                  # platformdirs: XDG_RUNTIME_DIR unset
    (UserWarning, r"optuna\.importance(\.|$)"),         # PED-ANOVA on few trials (the dashboard's plots)
)


class _OneLineFormatter(logging.Formatter):
    """A log record on one line: an attached exception becomes ``(Type: message)``, not a traceback."""

    def format(self, record: logging.LogRecord) -> str:
        exc = record.exc_info
        record.exc_info, record.exc_text = None, None
        try:
            line = super().format(record)
        finally:
            record.exc_info = exc
        if exc and exc[1] is not None:
            first = (str(exc[1]).strip().splitlines() or [""])[0]
            line += f" ({type(exc[1]).__name__}: {first})"
        return line


def _configure_process() -> None:
    from src.mlops.tracking import http_settings  # MLflow reads its HTTP bounds from the environment

    for key, value in {**_ENV_DEFAULTS, **http_settings()}.items():  # user values win
        os.environ.setdefault(key, value)
    for category, module in _QUIET_WARNINGS:
        warnings.filterwarnings("ignore", category=category, module=module)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # one line per trial is the progress bar's job
    level_name = (os.environ.get(ENV_LOG_LEVEL) or "WARNING").upper()
    level = getattr(logging, level_name, logging.WARNING)
    handler = logging.StreamHandler(sys.stderr)
    fmt = "%(levelname)s %(name)s: %(message)s"
    handler.setFormatter(logging.Formatter(fmt) if level <= logging.DEBUG else _OneLineFormatter(fmt))
    if level > logging.DEBUG:
        from .outage import QuietDuringOutage

        handler.addFilter(QuietDuringOutage())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("mlflow", "alembic", "optuna", "asyncio"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
    # the pools log every failed reconnect while PostgreSQL restarts; the outage watch says it once
    for pool_logger in ("psycopg.pool", "asyncpg.pool"):
        logging.getLogger(pool_logger).setLevel(max(level, logging.ERROR))


async def _run(command: Any, args: Any, outage_s: float) -> dict[str, Any]:
    from .lifecycle import stoppable

    async with stoppable() as stopper:
        return await command(args, stopper, outage_s=outage_s)


def _stopped_message(command: str, reason: Any, context: dict[str, str]) -> str:
    thread, node, study = context.get("thread_id"), context.get("node"), context.get("study_name")
    saved = context.get("saved") == "yes"
    where = f" in {node}" if command == "train" and node else ""
    if reason.is_signal:
        head = f"{reason.message}{where}"
    else:
        head = f"error: {reason.message}: the run stopped{where}"
    if command == "train" and saved:
        run = f"run {context['run_id']}, " if context.get("run_id") else ""
        if reason.is_signal:
            kept = ("Finished steps and trials are saved; trials that were running are recorded as failed "
                    "'cancelled' (they do not use the budget).")
            when = ""
        else:
            kept = ("Steps and trials finished before the outage are saved; trials that were running are "
                    "failed as 'stale' and retried when the run resumes.")
            when = " once PostgreSQL is back"
        return f"{head} ({run}thread {thread}).\n  {kept}\n  To resume{when}: hpo train --thread-id {thread}"
    if command == "tune" and saved and study:
        return (f"{head}.\n  Study {study} keeps its finished trials: continue it by running the same command "
                f"with --study-name {study}")
    if not saved and command in ("train", "tune"):
        return f"{head}; nothing was saved (--no-db): run the command again to start over"
    return head


def main(argv: Sequence[str] | None = None) -> int:
    _configure_process()
    try:
        return _main(argv)
    except KeyboardInterrupt:  # Ctrl-C before the command's signal handlers were installed: nothing ran yet
        print("interrupted before the command started", file=sys.stderr)
        return exit_code_for_signal(signal.SIGINT)


def _main(argv: Sequence[str] | None) -> int:
    from .parser import build_parser, check_output_path

    args = build_parser().parse_args(argv)
    from src.mlops.errors import ConfigurationError, DatabaseUnavailableError, MLOpsError
    from src.mlops.persistence import redact_secrets

    from .commands import COMMANDS
    from .lifecycle import Stopped
    from .output import print_summary, write_json
    from .outage import outage_window

    try:
        output: Path | None = check_output_path(getattr(args, "output_json", None))
        outage_s = outage_window(os.environ)
    except (BadInput, ConfigurationError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        out = asyncio.run(_run(COMMANDS[args.command], args, outage_s))
    except Stopped as e:
        print(_stopped_message(args.command, e.reason, e.context), file=sys.stderr)
        if output is not None:
            write_json(output, {"status": "interrupted" if e.reason.is_signal else "failed",
                                "signal": e.reason.signal.name if e.reason.signal else None,
                                "message": e.reason.message, **e.context})
        return exit_code_for_signal(e.reason.signal) if e.reason.signal else EXIT_FAILURE
    except BadInput as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except DatabaseUnavailableError as e:
        print(f"error: database unavailable: {e}", file=sys.stderr)
        return EXIT_FAILURE
    except MLOpsError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT if isinstance(e, ValueError | KeyError) else EXIT_FAILURE
    except Exception as e:  # noqa: BLE001 - a failure at run time: say what, exit 1
        logging.getLogger("hpo").debug("run failed", exc_info=True)
        print(f"error: run failed: {type(e).__name__}: {redact_secrets(str(e))}", file=sys.stderr)
        return EXIT_FAILURE
    if args.command == "worker":
        write_json(output, out)
    if args.command == "report" and out.get("status") == "completed_untracked":
        print(f"error: the report was written, but not logged to MLflow: {out.get('mlflow_error')}", file=sys.stderr)
        return EXIT_FAILURE
    if args.command in ("train", "tune"):
        print_summary(out, command=args.command)
        write_json(output, out)
        if out.get("status") == "completed_untracked":
            print(f"\nerror: the model was saved, but its MLflow record is incomplete: {out.get('mlflow_error')}",
                  file=sys.stderr)
            return EXIT_FAILURE
        if out.get("status") != "completed":
            err = out.get("error") or {}
            print(f"\nerror in {err.get('node', '?')}: {err.get('message', 'unknown error')}", file=sys.stderr)
            return EXIT_BAD_INPUT
    return EXIT_OK


def run() -> None:
    """The ``hpo`` console command: :func:`main`, then a quick exit.

    Once a command is done (its output printed and written, its servers and stores closed), tearing
    the interpreter down -- freeing the objects of the imported libraries (MLflow, SQLAlchemy,
    scikit-learn, LightGBM...) one by one -- took another 1-1.6 s on bench_real's pinned 60 s cells
    and 3.5 s on a loaded machine: wall time a user waits for after the summary, which the run's
    time budget did not count. So the exit does what the interpreter's own does that matters (wait
    for the threads that are not daemons, run the exit handlers: logging, the embedded PostgreSQL's
    cleanup, multiprocessing's children), flushes the standard streams, and ends the process."""
    code = main()
    current = threading.current_thread()
    for t in threading.enumerate():
        if t is not current and not t.daemon:
            t.join()
    atexit._run_exitfuncs()  # CPython's own exit handlers, in their order (the last registered first)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


if __name__ == "__main__":  # pragma: no cover
    run()
