"""``hpo dashboard``: optuna-dashboard on our per-study journal storage, on 127.0.0.1 by default,
listing the studies; stopped by SIGINT."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from ._helpers import ROOT, env_for, hpo

pytestmark = pytest.mark.slow


def test_dashboard_lists_our_studies(home: Path):
    run = hpo(home, "tune", "--dataset", "iris", "--algorithm", "knn", "--n-trials", "2", "--scheme", "holdout",
              "--study-name", "dash-study", "--no-mlflow", "--quiet")
    assert run.returncode == 0, run.stderr
    proc = subprocess.Popen([sys.executable, "-m", "src.cli", "dashboard", "--port", "0"], cwd=str(ROOT),
                            env=env_for(home), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        line = proc.stdout.readline()  # "  dashboard: http://127.0.0.1:PORT/dashboard  (Ctrl-C stops it)"
        assert "dashboard: http://127.0.0.1:" in line, (line, proc.stderr.read() if proc.poll() is not None else "")
        base = line.split()[1].rsplit("/dashboard", 1)[0]
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/studies", timeout=10) as r:
                    studies = json.load(r)["study_summaries"]
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        by_name = {s["study_name"]: s for s in studies}
        assert "dash-study" in by_name
        with urllib.request.urlopen(f"{base}/api/studies/{by_name['dash-study']['study_id']}", timeout=10) as r:
            detail = json.load(r)
        assert len(detail["trials"]) == 2
        with urllib.request.urlopen(f"{base}/dashboard", timeout=10) as r:
            assert r.status == 200 and b"<html" in r.read().lower()
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert code == 130  # stopped by Ctrl-C, like any command


def test_dashboard_refuses_a_port_in_use(home: Path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        run = hpo(home, "dashboard", "--port", str(port), timeout=120)
    assert run.returncode == 2
    assert f"--port {port}: cannot listen there" in run.stderr
