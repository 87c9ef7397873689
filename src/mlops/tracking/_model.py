"""Logging the final model as a portable MLflow pyfunc (runs on the tracker's writer thread).

What is logged under the study's parent run (an MLflow 3 *logged model*, ``models:/<model_id>``):

* the pyfunc :class:`~._pyfunc.RawRowsPyfunc`, as *models from code* (MLflow executes a two-line
  entry file instead of unpickling a class);
* ``code/src/...``: the ``src/mlops`` package it imports (the cleaning, the model wrapper, the skops
  loader), so neither this checkout nor an install of this project is needed to load it;
* artifacts ``model.skops`` (read with skops' trusted types only), ``preparer.json`` and
  ``metadata.json``;
* a signature of the *raw* columns the cleaning needs, typed as in the training table (the target
  and dropped columns are not required), with a ``predict_method`` param;
* pinned ``requirements.txt``: mlflow, numpy, pandas, scikit-learn, skops, optuna (imported by the
  logged code) and the estimator's library (lightgbm / xgboost-cpu).

Only public client APIs are used (``create_logged_model``, ``log_model_artifacts``, ``log_outputs``,
``finalize_logged_model``, ``create_model_version``): no global tracking URI, no active run.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["log_pyfunc_model", "pip_requirements", "raw_signature"]

_ENTRY = '''"""Entry of the hpo-agent pyfunc model (MLflow "models from code")."""
from mlflow.models import set_model

from src.mlops.tracking._pyfunc import RawRowsPyfunc

set_model(RawRowsPyfunc())
'''

#: import name -> distributions providing it (first installed wins).
_DISTRIBUTIONS = {
    "mlflow": ("mlflow", "mlflow-skinny"),
    "numpy": ("numpy",),
    "pandas": ("pandas",),
    "sklearn": ("scikit-learn",),
    "skops": ("skops",),
    "optuna": ("optuna",),
    "lightgbm": ("lightgbm",),
    "xgboost": ("xgboost-cpu", "xgboost"),
}
#: what the logged code imports whatever the model (the cleaning, the wrapper, the skops loader).
_ALWAYS = ("mlflow", "numpy", "pandas", "sklearn", "skops", "optuna")


def _package_root() -> Path:
    """The directory holding the ``src`` package of this code."""
    return Path(__file__).resolve().parents[3]


def _copy_code(target: Path) -> Path:
    """Copy ``src/__init__.py`` and the ``src/mlops`` package (Python files only) to ``target/src``."""
    root = _package_root() / "src"
    out = target / "src"
    (out / "mlops").mkdir(parents=True)
    shutil.copy2(root / "__init__.py", out / "__init__.py")
    for file in (root / "mlops").rglob("*.py"):
        dest = out / file.relative_to(root)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(file, dest)
    return out


def pip_requirements(model: Any) -> list[str]:
    """Pinned requirements of the logged code and of the libraries the model's estimator comes from."""
    packages = list(_ALWAYS)
    estimator = getattr(model, "estimator", model)
    top = type(estimator).__module__.split(".")[0]
    if top in _DISTRIBUTIONS and top not in packages:
        packages.append(top)
    reqs = []
    for package in packages:
        for dist in _DISTRIBUTIONS[package]:
            try:
                reqs.append(f"{dist}=={importlib.metadata.version(dist)}")
                break
            except importlib.metadata.PackageNotFoundError:
                continue
    return reqs


def raw_signature(raw_sample: Any, required: Sequence[str], predictions: Any) -> Any:
    """The signature of the raw columns ``required`` (inferred from ``raw_sample``; any type when no
    sample is given) with a ``predict_method`` param."""
    import numpy as np
    import pandas as pd
    from mlflow.models import ModelSignature, infer_signature
    from mlflow.types.schema import AnyType, ColSpec, ParamSchema, ParamSpec, Schema

    params = ParamSchema([ParamSpec("predict_method", "string", "predict")])
    if raw_sample is not None and isinstance(raw_sample, pd.DataFrame) and set(required) <= set(map(str, raw_sample.columns)):
        sample = raw_sample.rename(columns=str).loc[:, list(required)]
        signature = infer_signature(sample, None if predictions is None else np.asarray(predictions))
        return ModelSignature(inputs=signature.inputs, outputs=signature.outputs, params=params)
    inputs = Schema([ColSpec(AnyType(), name) for name in required])
    return ModelSignature(inputs=inputs, params=params)


def log_pyfunc_model(
    client: Any,
    *,
    experiment_id: str,
    run_id: str,
    model_file: str | os.PathLike[str],
    preparer_file: str | os.PathLike[str] | None,
    extra_files: Sequence[str | os.PathLike[str]] = (),
    raw_sample: Any = None,
    name: str = "model",
    registered_model_name: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> str:
    """Log the model of ``model_file`` (+ its cleaning) as a pyfunc under ``run_id``; returns its URI."""
    import mlflow.pyfunc
    from mlflow.entities import LoggedModelOutput, LoggedModelStatus
    from mlflow.exceptions import MlflowException
    from mlflow.models import Model

    from ..features import load_preparer
    from ..model_io import RawRowsModel, load_model

    model = load_model(model_file)
    preparer = load_preparer(preparer_file) if preparer_file else None
    wrapped = RawRowsModel(model, preparer)
    required = preparer.required_columns if preparer is not None else list(model.feature_names or [])
    predictions = None
    if raw_sample is not None:
        try:
            predictions = wrapped.predict(raw_sample.head(20))
        except Exception:  # noqa: BLE001 - a sample that does not fit: no output schema
            raw_sample = None
    signature = raw_signature(raw_sample, required, predictions)
    artifacts = {"model": os.fspath(model_file)}
    if preparer_file:
        artifacts["preparer"] = os.fspath(preparer_file)
    for extra in extra_files:
        artifacts[Path(extra).stem] = os.fspath(extra)

    logged = client.create_logged_model(experiment_id, name=name, source_run_id=run_id,
                                        tags=dict(tags or {}), model_type="hpo-agent")
    try:
        with tempfile.TemporaryDirectory(prefix="hpo-pyfunc-") as tmp:
            tmp_path = Path(tmp)
            code = _copy_code(tmp_path / "code")
            entry = tmp_path / "hpo_model.py"
            entry.write_text(_ENTRY, encoding="utf-8")
            local = tmp_path / "model"
            mlflow.pyfunc.save_model(
                local,
                python_model=str(entry),
                artifacts=artifacts,
                code_paths=[str(code)],
                signature=signature,
                pip_requirements=pip_requirements(model),
                mlflow_model=Model(artifact_path=logged.artifact_location, model_uuid=logged.model_id,
                                   run_id=run_id, model_id=logged.model_id),
            )
            client.log_model_artifacts(logged.model_id, str(local))
        client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step=0)])
        client.finalize_logged_model(logged.model_id, LoggedModelStatus.READY)
    except BaseException:
        client.finalize_logged_model(logged.model_id, LoggedModelStatus.FAILED)
        raise
    uri = f"models:/{logged.model_id}"
    if registered_model_name:
        try:
            client.create_registered_model(registered_model_name)
        except MlflowException as e:
            if e.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        client.create_model_version(registered_model_name, source=uri, run_id=run_id, model_id=logged.model_id,
                                    await_creation_for=0)
    return uri
