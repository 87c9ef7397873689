"""Local model artifacts: a directory holding ``model.joblib`` and ``metadata.json``.

``model.joblib`` is ``joblib.dump`` of the fitted :class:`~src.mlops.objectives.TunedModel`
(preprocessing + estimator, predicting in the original label space). ``metadata.json`` records the
params, metrics, dataset fingerprint, study name, library versions and the SHA-256 of the model
file; :func:`load_model_artifact` checks that digest before unpickling.

Security: joblib files are pickles — loading one runs code. The digest catches corruption and
accidental edits, not an attacker who can rewrite both files: load artifacts you produced only.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import importlib.metadata
import json
import os
import platform
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import joblib

from src.mlops.errors import DataValidationError

from .state import jsonable

__all__ = [
    "MODEL_FILE",
    "METADATA_FILE",
    "save_model_artifact",
    "load_model_artifact",
    "read_artifact_metadata",
    "update_artifact_metadata",
    "library_versions",
]

MODEL_FILE = "model.joblib"
METADATA_FILE = "metadata.json"
#: metadata format version (bump on incompatible changes).
FORMAT_VERSION = 1

_DISTRIBUTIONS = {
    "sklearn": ("scikit-learn",),
    "lightgbm": ("lightgbm",),
    "xgboost": ("xgboost", "xgboost-cpu"),
    "optuna": ("optuna",),
    "pandas": ("pandas",),
    "numpy": ("numpy",),
    "joblib": ("joblib",),
}


def library_versions() -> dict[str, str | None]:
    """Versions of Python and of the libraries a model file depends on (``None``: not installed)."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name, dists in _DISTRIBUTIONS.items():
        out[name] = None
        for dist in dists:
            try:
                out[name] = importlib.metadata.version(dist)
                break
            except importlib.metadata.PackageNotFoundError:
                continue
    return out


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _atomic_write(path: Path, write: Any) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    text = json.dumps(jsonable(data), indent=2, sort_keys=True)
    _atomic_write(path, lambda tmp: Path(tmp).write_text(text + "\n", encoding="utf-8"))


def _directory_of(path: str | os.PathLike[str]) -> Path:
    p = Path(path).expanduser()
    return p.parent if p.name in (MODEL_FILE, METADATA_FILE) else p


def save_model_artifact(model: Any, directory: str | os.PathLike[str], metadata: Mapping[str, Any]) -> Path:
    """Write ``model`` and its metadata under ``directory`` (created; files replaced atomically).

    ``metadata`` must be plain data (params, metrics, fingerprint, study name...); the library
    versions, the creation time, the model file name and its SHA-256 are added. Returns the
    directory (absolute).
    """
    directory = Path(directory).expanduser().resolve()
    directory.mkdir(parents=True, exist_ok=True)
    model_file = directory / MODEL_FILE
    _atomic_write(model_file, lambda tmp: joblib.dump(model, tmp))
    meta = dict(jsonable(dict(metadata)))
    meta.update({
        "format_version": FORMAT_VERSION,
        "model_file": MODEL_FILE,
        "model_sha256": _sha256(model_file),
        "model_class": f"{type(model).__module__}.{type(model).__qualname__}",
        "library_versions": library_versions(),
        "created_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    })
    _write_json(directory / METADATA_FILE, meta)
    return directory


def read_artifact_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``metadata.json`` of an artifact (``path``: its directory or one of its files)."""
    file = _directory_of(path) / METADATA_FILE
    if not file.is_file():
        raise DataValidationError(f"model artifact {str(file.parent)!r} has no {METADATA_FILE}; save it with save_model_artifact")
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise DataValidationError(f"cannot read {str(file)!r}: {e}") from e


def update_artifact_metadata(path: str | os.PathLike[str], updates: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``updates`` (plain data) into an artifact's ``metadata.json``; returns the new metadata."""
    meta = read_artifact_metadata(path)
    meta.update(jsonable(dict(updates)))
    _write_json(_directory_of(path) / METADATA_FILE, meta)
    return meta


def load_model_artifact(path: str | os.PathLike[str], *, verify: bool = True) -> tuple[Any, dict[str, Any]]:
    """Load ``(model, metadata)`` from an artifact directory (or its ``model.joblib``).

    With ``verify`` (default) the model file must match the SHA-256 in the metadata. Unpickling runs
    code: load only artifacts you trust (see the module docstring).
    """
    directory = _directory_of(path)
    metadata = read_artifact_metadata(directory)
    model_file = directory / str(metadata.get("model_file") or MODEL_FILE)
    if not model_file.is_file():
        raise DataValidationError(f"model artifact {str(directory)!r} has no model file {model_file.name!r}")
    if verify:
        expected = metadata.get("model_sha256")
        actual = _sha256(model_file)
        if expected != actual:
            raise DataValidationError(
                f"model file {str(model_file)!r} does not match the SHA-256 recorded in {METADATA_FILE} "
                f"({actual} != {expected}); it changed after it was saved — retrain instead of editing it"
            )
    return joblib.load(model_file), metadata
