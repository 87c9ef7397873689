"""One cell of bench_real -- (table, seed, budget, arm) -- in its own process, pinned to one CPU core.

    python bench/real_cell.py SPEC.json RESULT.json

bench_real starts this script once per cell (``start_new_session``, so a hard kill at 3 x budget + 60 s
takes the whole process group, the ``hpo`` child included) and reads RESULT.json:
``{"ok": bool, "error": str | None, "wall_s": float, "test": {metric: value}, ...}``.

SPEC.json: ``arm_kind`` ("ours" or a peer of bench/peers.py), ``core``, ``dev``/``test`` (CSV paths),
``target``, ``problem_type``, ``budget``, ``seed``; for ours also ``hpo`` (the CLI executable), ``args``
(everything after ``train`` except the data and output paths), ``product`` (the checkout whose ``src``
loads the artifact), ``cell_dir``.

The first thing this script does is pin itself (and so every child) to ``core``. It imports the
bench's own modules by file path, never as the ``bench`` package: for the ours arms it runs under the
product checkout's Python with that checkout's ``src`` first on ``sys.path`` (the product may have a
``bench`` package of its own).
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__" and len(sys.argv) == 3:  # pin before the heavy imports start their threads
    import json as _json

    _core = _json.loads(open(sys.argv[1]).read()).get("core")
    if _core is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {int(_core)})

import contextlib
import importlib.util
import inspect
import json
import subprocess
import time
import traceback
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent
STDERR_TAIL = 2000  # characters of the hpo command's stderr kept in a failure's error


def load_bench_module(name: str) -> ModuleType:
    """A module of this bench directory by file path (``_benchreal_<name>``), not through ``bench``."""
    mod_name = f"_benchreal_{name}"
    if mod_name in sys.modules:
        return sys.modules[mod_name]
    spec = importlib.util.spec_from_file_location(mod_name, HERE / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    spec.loader.exec_module(module)
    return module


def _read(spec: dict[str, Any]) -> tuple[Any, Any, Any, Any]:
    import pandas as pd

    dev, test = pd.read_csv(spec["dev"]), pd.read_csv(spec["test"])
    t = spec["target"]
    return dev.drop(columns=[t]), dev[t], test.drop(columns=[t]), test[t]


# ------------------------------------------------------------------------------------------ summary
_BULKY = {"data_ref", "splits", "data_notes", "dataset_info", "merged_params", "default_params", "preparer_path",
          "data_path", "mlflow_model_uri"}


def run_summary(out: dict[str, Any]) -> dict[str, Any]:
    """The run's own figures from out.json (scheme, trials, best validation value, durations...), without
    the bulky parts; unknown new keys are kept, so fields a newer CLI adds show up without a change here."""
    summary: dict[str, Any] = {}
    for k, v in out.items():
        if k in _BULKY:
            continue
        if k == "hpo" and isinstance(v, dict):
            hpo = {hk: hv for hk, hv in v.items() if hk not in ("failure_reasons",)}
            reasons = v.get("failure_reasons") or {}
            if reasons:
                counts: dict[str, int] = {}
                for r in reasons.values():
                    key = str(r).split(":")[0][:60]
                    counts[key] = counts.get(key, 0) + 1
                hpo["failure_reason_counts"] = counts
            summary["hpo"] = hpo
            continue
        text = json.dumps(v, default=str)
        summary[k] = v if len(text) <= 4000 else text[:4000] + "...(cut)"
    return summary


# ----------------------------------------------------------------------------------------------- ours
def _load_artifact(path: str) -> Any:
    from src.agents.ml_foundation.model_trainer import load_model_artifact

    kwargs = {"trusted": True} if "trusted" in inspect.signature(load_model_artifact).parameters else {}
    model, _ = load_model_artifact(path, **kwargs)  # our own run's artifact
    return model


def _run_hpo(spec: dict[str, Any], run_dir: Path, env: dict[str, str] | None) -> tuple[dict[str, Any], int, Path]:
    """One `hpo train` of the cell in ``run_dir``: ``(record, exit code, out.json path)``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    out_json = run_dir / "out.json"
    cmd = [spec["hpo"], "train", "--data", spec["dev"], "--output-json", str(out_json), *spec["args"]]
    res: dict[str, Any] = {"command": " ".join(cmd)}
    with open(run_dir / "hpo.stdout", "w") as so, open(run_dir / "hpo.stderr", "w") as se:
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=run_dir, stdout=so, stderr=se, stdin=subprocess.DEVNULL, env=env)
        res["wall_s"] = time.perf_counter() - t0
    return res, proc.returncode, out_json


def run_ours(spec: dict[str, Any], peers: ModuleType) -> dict[str, Any]:
    """The product through its CLI, as a user runs it; its saved artifact scored on the raw test rows.
    With ``spec["own_home"]`` (ours-first, ours-warm) it runs in the cell's own new HPO_HOME; with
    ``spec["prime"]`` (ours-warm) the command runs twice there and the second run is the one scored:
    the first one's record is kept under ``prime``."""
    cell = Path(spec["cell_dir"])
    cell.mkdir(parents=True, exist_ok=True)
    env = None
    prime: dict[str, Any] | None = None
    if spec.get("own_home"):
        env = {**os.environ, "HPO_HOME": str(cell / "hpo-home")}
    if spec.get("prime"):
        prime, code, prime_json = _run_hpo(spec, cell / "prime", env)
        prime["exit_code"] = code
        if prime_json.exists():
            with contextlib.suppress(ValueError):
                prime["run"] = run_summary(json.loads(prime_json.read_text()))
    res, code, out_json = _run_hpo(spec, cell, env)
    if prime is not None:
        res["prime"] = prime
    res["exit_code"] = code
    out: dict[str, Any] = {}
    if out_json.exists():
        try:
            out = json.loads(out_json.read_text())
        except ValueError as e:
            res["error"] = f"out.json is not JSON: {e}"
            return res
        res["run"] = run_summary(out)
    if code != 0 or out.get("status") != "completed" or not out.get("model_path"):
        tail = (cell / "hpo.stderr").read_text(errors="replace")[-STDERR_TAIL:].strip()
        err = out.get("error")
        res["error"] = (f"hpo train exited {code}, status {out.get('status')!r}"
                        + (f", error {json.dumps(err, default=str)[:500]}" if err else "") + f"; stderr: {tail}")
        return res
    pt = spec["problem_type"]
    _, _, X_test, y_test = _read(spec)
    t1 = time.perf_counter()
    res["test"] = peers.score_model(_load_artifact(out["model_path"]), pt, X_test, y_test)
    res["score_s"] = time.perf_counter() - t1
    if out.get("defaults_model_path"):
        try:
            res["defaults_test"] = peers.score_model(_load_artifact(out["defaults_model_path"]), pt, X_test, y_test)
        except Exception as e:  # noqa: BLE001 - a diagnostic column: its failure must not fail the cell
            res["defaults_error"] = f"{type(e).__name__}: {e}"
    return res


# ----------------------------------------------------------------------------------------------- main
def run_cell(spec: dict[str, Any]) -> dict[str, Any]:
    warnings.filterwarnings("ignore")
    if spec["arm_kind"] == "ours":
        product = str(Path(spec["product"]).resolve())
        if product not in sys.path:
            sys.path.insert(0, product)
    peers = load_bench_module("peers")
    if spec["arm_kind"] == "ours":
        return run_ours(spec, peers)
    X_dev, y_dev, X_test, y_test = _read(spec)
    return peers.run_peer(spec["arm_kind"], X_dev, y_dev, X_test, y_test, spec["problem_type"],
                          float(spec["budget"]), int(spec["seed"]))


def main(spec_path: str, result_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text())
    t0 = time.perf_counter()
    try:
        res = run_cell(spec)
    except Exception as e:  # noqa: BLE001 - a crashed arm is a result (failed, with its error)
        res = {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()[-4000:]}
    res.setdefault("wall_s", time.perf_counter() - t0)
    res["cell_s"] = time.perf_counter() - t0
    res["ok"] = "error" not in res and "test" in res
    res["cpu_affinity"] = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    tmp = Path(result_path).with_suffix(".tmp")
    tmp.write_text(json.dumps(res, default=str))
    tmp.replace(result_path)
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: real_cell.py SPEC.json RESULT.json")
    raise SystemExit(main(sys.argv[1], sys.argv[2]))
