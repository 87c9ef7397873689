"""Run ``hpo`` as a real process: the command line exactly as a user (or a scheduler) runs it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: a progress line in a log: "  tuning 6/16 trials, ..." or "  tuning 13 trials, 10/40 s, ..."
PROGRESS = re.compile(r"^\s+tuning (\d+)(?:/\d+)? trials")


def new_home() -> Path:
    """A fresh HPO_HOME. Not under pytest's tmp_path: pgserver runs PostgreSQL as its own user, and
    pytest makes its base temp directory private (0700) when another session starts."""
    return Path(tempfile.mkdtemp(prefix="hpo-cli-"))


def env_for(home: Path, *, embedded: bool = False, **extra: str) -> dict[str, str]:
    """The process environment: ``HPO_HOME=home``; ``embedded`` drops DATABASE_URL (a test that stops
    the server needs the embedded one)."""
    env = dict(os.environ)
    env["HPO_HOME"] = str(home)
    env.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    if embedded:
        env.pop("DATABASE_URL", None)
    env.update(extra)
    return env


def hpo(home: Path, *args: str, timeout: float = 300, env: Mapping[str, str] | None = None,
        **extra: str) -> subprocess.CompletedProcess[str]:
    """``python -m src.cli ARGS`` to its end."""
    return subprocess.run([sys.executable, "-m", "src.cli", *args], cwd=str(ROOT),
                          env=dict(env) if env is not None else env_for(home, **extra),
                          capture_output=True, text=True, timeout=timeout)


def hpo_refused(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``hpo ARGS`` for a command that must be refused before any work (bad input): the CLI's own
    ``main(ARGS)`` in this process, with ``HPO_HOME=home``, the working directory of :func:`hpo`,
    and stdout/stderr captured. It saves the ~5 s a new interpreter spends importing the stack; the
    process-wide settings ``main`` makes (environment, warning filters, logging, Optuna's verbosity)
    are put back afterwards. A command that gets past its checks would run here for real, so use
    :func:`hpo` for anything that is meant to start servers or fit models."""
    import contextlib
    import io
    import logging
    import warnings

    import optuna

    from src.cli.main import main

    env_before, cwd_before = dict(os.environ), os.getcwd()
    def loggers() -> dict[str, logging.Logger]:
        named = logging.root.manager.loggerDict.values()
        return {"": logging.getLogger(), **{lg.name: lg for lg in named if isinstance(lg, logging.Logger)}}

    levels = {name: (lg.level, lg.handlers[:]) for name, lg in loggers().items()}
    verbosity = optuna.logging.get_verbosity()
    out, err = io.StringIO(), io.StringIO()
    try:
        os.environ.update(env_for(home))
        os.chdir(ROOT)
        with warnings.catch_warnings(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(args))
            except SystemExit as e:  # argparse's own errors exit 2 from inside parse_args
                code = e.code if isinstance(e.code, int) else 1
    finally:
        os.chdir(cwd_before)
        os.environ.clear()
        os.environ.update(env_before)
        for name, lg in loggers().items():  # loggers main created go back to inheriting
            level, handlers = levels.get(name, (logging.NOTSET, []))
            lg.setLevel(level)
            lg.handlers[:] = handlers
        optuna.logging.set_verbosity(verbosity)
    return subprocess.CompletedProcess(["hpo", *args], code, out.getvalue(), err.getvalue())


class Running:
    """``hpo`` started in its own session (so a signal can go to its whole process group, as Ctrl-C
    in a terminal does), its stderr read line by line in the background."""

    def __init__(self, home: Path, *args: str, env: Mapping[str, str] | None = None) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "src.cli", *args], cwd=str(ROOT),
                                     env=dict(env) if env is not None else env_for(home),
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     start_new_session=True)
        self.lines: list[str] = []
        self.out: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._out_reader = threading.Thread(target=lambda: self.out.extend(self.proc.stdout), daemon=True)
        self._out_reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def stderr(self) -> str:
        return "".join(self.lines)

    def trials_done(self) -> int:
        done = [int(m.group(1)) for m in map(PROGRESS.match, self.lines) if m]
        return max(done, default=0)

    def wait_for_trials(self, n: int, timeout: float = 240) -> None:
        """Block until the progress shows ``n`` finished trials (fails if the process ends first)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self.trials_done() < n:
                assert self.proc.poll() is None or self._reader.is_alive(), f"hpo ended early:\n{self.stderr}"
                left = deadline - time.monotonic()
                assert left > 0, f"no {n} trials within {timeout} s:\n{self.stderr}"
                self._changed.wait(min(left, 1.0))

    def signal(self, sig: signal.Signals, *, group: bool) -> float:
        """Send ``sig`` (to the whole process group like a terminal's Ctrl-C, or to the process alone
        like ``docker stop``); returns the monotonic time it was sent."""
        (os.killpg if group else os.kill)(self.proc.pid, sig)
        return time.monotonic()

    def finish(self, timeout: float = 240) -> tuple[int, str, str]:
        """(exit code, stdout, stderr) once the process ended."""
        self.proc.wait(timeout=timeout)
        self._reader.join(10)
        self._out_reader.join(10)
        return self.proc.returncode, "".join(self.out), self.stderr


def embedded_dsn(home: Path) -> str:
    """The database the CLI used: DATABASE_URL when set, else the embedded server under ``home``
    (attached to; :func:`stop_embedded` stops it)."""
    from src.mlops.persistence import resolve_database_url

    env = {"HPO_HOME": str(home)}
    if os.environ.get("DATABASE_URL"):
        env["DATABASE_URL"] = os.environ["DATABASE_URL"]
    return resolve_database_url(env, cleanup="keep")


def postmaster_pid(home: Path) -> int | None:
    """Pid of the embedded PostgreSQL of ``home`` if it runs."""
    import psutil

    pid_file = home / "pgdata" / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if psutil.pid_exists(pid) else None


def stop_embedded(home: Path) -> None:
    """Stop the embedded server of ``home`` if one runs (a test's leftovers)."""
    if postmaster_pid(home) is None:
        return
    from src.mlops.persistence import start_embedded_postgres

    handle = start_embedded_postgres(home, cleanup="stop")
    handle.stop()
    handle.release()
