"""When ``hpo``'s clock starts and how it ends: the time budget counts from the process's start, to the
hundredth of a second; once the command is done the process exits at once (no interpreter teardown),
but it still does what the interpreter's exit does that matters."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_the_quick_exit_keeps_the_exit_code_joins_threads_runs_exit_handlers_and_flushes(tmp_path):
    # a command that leaves a non-daemon thread writing, registers an exit handler and prints
    # without a newline into a pipe (block-buffered: lost if the streams were not flushed)
    script = textwrap.dedent(f"""
        import atexit, threading, time
        from pathlib import Path
        import importlib
        cli = importlib.import_module("src.cli.main")

        out = Path({str(tmp_path)!r})

        def command():
            def late():
                time.sleep(0.5)
                (out / "thread").write_text("done")
            threading.Thread(target=late).start()
            atexit.register(lambda: (out / "atexit").write_text("ran"))
            print("summary without a newline", end="")
            return 3

        cli.main = command
        cli.run()
        (out / "after").write_text("run() returned")
    """)
    r = subprocess.run([sys.executable, "-c", script], cwd=str(ROOT), capture_output=True, text=True, timeout=60)
    assert r.returncode == 3, r.stderr
    assert r.stdout == "summary without a newline"
    assert (tmp_path / "thread").read_text() == "done"  # the non-daemon thread finished its work
    assert (tmp_path / "atexit").read_text() == "ran"
    assert not (tmp_path / "after").exists()  # the process ended in run()


def test_the_console_script_and_python_m_both_end_through_the_quick_exit():
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'hpo = "src.cli.main:run"' in pyproject
    assert "run()" in (ROOT / "src" / "cli" / "__main__.py").read_text()


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="the precise start is read from Linux's /proc")
def test_the_budget_clock_starts_when_the_process_started_not_up_to_a_second_before():
    # psutil's create_time adds the start to a boot time given in whole seconds: up to 1 s early
    for _ in range(3):
        before = time.time()
        r = subprocess.run([sys.executable, "-c", "from src.cli.adapters import process_start; print(repr(process_start()))"],
                           cwd=str(ROOT), capture_output=True, text=True, timeout=60)
        after = time.time()
        started = float(r.stdout)
        assert before - 0.05 <= started <= after, (before, started, after)
        assert started - before < 0.5  # the interpreter started at once; the imports came after
