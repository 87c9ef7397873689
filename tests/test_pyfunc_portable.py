"""The logged MLflow model loads and predicts on raw rows where this project is not installed (issue 8.1).

The proof: a fresh interpreter (``python -I -S``: no site-packages, no ``.pth`` files -- so neither the
editable install's finder nor anything else of this project -- no current directory, no PYTHON*
variables), started in another directory, whose only packages are the *closure of the model's logged
requirements*: each distribution named in ``requirements.txt`` and, recursively, what it requires,
linked from this machine's environment (the versions the requirements pin). That is what an
environment built from the logged requirements holds. The project's code must then come from the
model itself.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pytest
from packaging.requirements import Requirement

from src.mlops.features import load_preparer
from src.mlops.tracking import MLflowTracker, default_tracking_uri
from src.mlops.types import StudyContext

from ._models import saved_model


def _closure(requirements: list[str]) -> dict[str, importlib.metadata.Distribution]:
    """The installed distributions of ``requirements`` and everything they require (no extras)."""
    seen: dict[str, importlib.metadata.Distribution] = {}
    todo = [Requirement(r) for r in requirements]
    while todo:
        req = todo.pop()
        key = re.sub(r"[-_.]+", "-", req.name).lower()
        if key in seen or (req.marker is not None and not req.marker.evaluate({"extra": ""})):
            continue
        dist = importlib.metadata.distribution(req.name)
        seen[key] = dist
        todo.extend(Requirement(r) for r in (dist.requires or []))
    return seen


def _site_of(requirements: list[str], target: Path) -> list[str]:
    """A site directory of links to the top-level files of the closure's distributions."""
    target.mkdir()
    dists = _closure(requirements)
    for dist in dists.values():
        base = Path(dist.locate_file(""))
        for top in {Path(f).parts[0] for f in (dist.files or [])}:
            if top in ("..", "__pycache__") or (target / top).exists():
                continue
            if (base / top).exists():
                (target / top).symlink_to(base / top)
    return sorted(dists)


@pytest.mark.slow
@pytest.mark.parametrize("steps", [None, {"select__method": "k_best", "select__k": 2}], ids=["plain", "pipeline"])
async def test_logged_model_predicts_raw_rows_without_this_project(tmp_path, monkeypatch, steps):
    model, model_file, preparer_file, raw = saved_model(tmp_path, steps)
    assert (steps is None) == (type(model.preprocessor).__name__ == "CategoryEncoder")  # the selection is in the model
    store = default_tracking_uri(tmp_path / "home")
    tracker = MLflowTracker(store, "portable")
    await tracker.on_study_start(None, StudyContext(study_name="portable", directions=("maximize",)))
    uri = await tracker.log_final_model(model_file, preparer_file=preparer_file, raw_sample=raw.head(50))
    await tracker.aclose()
    assert uri is not None, tracker.last_error

    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(tmp_path / "downloaded")))
    requirements = [line.strip() for line in (local / "requirements.txt").read_text().splitlines()
                    if line.strip() and not line.startswith("#")]
    assert all("==" in r for r in requirements), requirements  # pinned
    names = {Requirement(r).name for r in requirements}
    assert {"mlflow", "scikit-learn", "skops", "lightgbm", "pandas"} <= names
    assert not names & {"hpo-agent", "src"}
    closure = _site_of(requirements, tmp_path / "site")
    assert "hpo-agent" not in closure

    csv = tmp_path / "new_rows.csv"
    raw.to_csv(csv, index=False)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    script = f"""
import importlib.util, json, sys
sys.path.insert(0, {str(tmp_path / 'site')!r})
assert importlib.util.find_spec("src") is None, "this project is importable: the test proves nothing"
import mlflow.pyfunc, pandas as pd
model = mlflow.pyfunc.load_model({uri!r})
rows = pd.read_csv({str(csv)!r})
labels = model.predict(rows)
proba = model.predict(rows.drop(columns=["churn"]), params={{"predict_method": "predict_proba"}})
import src
print(json.dumps({{"labels": [str(v) for v in labels], "proba": proba.to_numpy().tolist(),
                  "columns": list(proba.columns), "src": src.__file__}}))
"""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path), "MLFLOW_TRACKING_URI": store,
           "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
    done = subprocess.run([sys.executable, "-I", "-S", "-c", script], cwd=elsewhere, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])

    expected = model.predict(load_preparer(preparer_file).transform(raw))
    assert out["labels"] == [str(v) for v in expected]  # raw rows in, the original labels out
    assert out["columns"] == ["no", "yes"]
    np.testing.assert_allclose(out["proba"], model.predict_proba(load_preparer(preparer_file).transform(raw)))
    assert "/code/src/" in out["src"] and not out["src"].startswith(str(Path(__file__).resolve().parents[1]))
