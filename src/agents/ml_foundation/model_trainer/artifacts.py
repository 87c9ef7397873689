"""Local model artifacts: a directory holding ``model.joblib``, ``preparer.json`` and ``metadata.json``.

``model.joblib`` is ``joblib.dump`` of the fitted :class:`~src.mlops.objectives.TunedModel`
(model-level preprocessing + estimator, predicting in the original label space; it takes prepared
features). ``preparer.json`` is the :class:`~src.mlops.features.FeaturePreparer` of the training
table (the cleaning of ``prepare_features``: parsed numbers, dates, categories, dropped and renamed
columns), so :func:`load_model_artifact` returns an :class:`ArtifactModel` that predicts on raw rows
(the columns of the training CSV):

>>> model, metadata = load_model_artifact(run_dir / "model")
>>> model.predict(pd.read_csv("new_customers.csv"))      # raw rows; the target column may be absent
>>> model.model.predict(X_prepared)                     # the bare TunedModel, on prepared features

``metadata.json`` records the params, metrics, dataset fingerprint, study name, library versions
and the SHA-256 of the model and preparer files; :func:`load_model_artifact` checks those digests
before unpickling.

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
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd

from src.mlops.datasets import write_atomically
from src.mlops.errors import DataValidationError
from src.mlops.features import FeaturePreparer, load_preparer

from .state import jsonable

__all__ = [
    "MODEL_FILE",
    "METADATA_FILE",
    "PREPARER_FILE",
    "ArtifactModel",
    "save_model_artifact",
    "load_model_artifact",
    "read_artifact_metadata",
    "update_artifact_metadata",
    "library_versions",
]

MODEL_FILE = "model.joblib"
METADATA_FILE = "metadata.json"
PREPARER_FILE = "preparer.json"
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


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    text = json.dumps(jsonable(data), indent=2, sort_keys=True)
    write_atomically(path, lambda tmp: Path(tmp).write_text(text + "\n", encoding="utf-8"))


def _directory_of(path: str | os.PathLike[str]) -> Path:
    p = Path(path).expanduser()
    return p.parent if p.name in (MODEL_FILE, METADATA_FILE, PREPARER_FILE) else p


class ArtifactModel:
    """A saved model that predicts on raw rows: the artifact's preparer, then its TunedModel.

    ``predict`` / ``predict_proba`` / ``score_samples`` take the rows as they are in the training
    table (same columns; the target and extra columns are ignored) and clean them exactly like
    training did. ``model`` is the bare :class:`~src.mlops.objectives.TunedModel` for already-prepared
    features; every other attribute (``classes_``, ``feature_names``, ``predict_for_metric``,
    ``encode_labels``...) is the TunedModel's and works on prepared features. Without a preparer (an
    artifact saved without one) the rows go to the TunedModel as they are.
    """

    def __init__(self, model: Any, preparer: FeaturePreparer | None = None) -> None:
        self.model = model
        self.preparer = preparer

    def prepare(self, rows: Any) -> Any:
        """The model's features of raw ``rows`` (a DataFrame).

        Raises:
            DataValidationError: a raw column the model needs is missing.
        """
        if self.preparer is None:
            return rows
        try:
            return self.preparer.transform(rows)
        except DataValidationError as e:
            names = getattr(self.model, "feature_names", None) or []
            if names and isinstance(rows, pd.DataFrame) and set(names) <= {str(c) for c in rows.columns}:
                raise DataValidationError(
                    f"{e} These rows hold the model's prepared feature columns instead: "
                    "pass prepared features to `.model` (the bare TunedModel)."
                ) from e
            raise

    def predict(self, rows: Any) -> np.ndarray:
        """Predictions for raw rows (original class labels, numbers, or 1 = anomaly)."""
        return self.model.predict(self.prepare(rows))  # type: ignore[no-any-return]

    def predict_proba(self, rows: Any) -> np.ndarray:
        """Class probabilities for raw rows, columns in ``classes_`` order."""
        return self.model.predict_proba(self.prepare(rows))  # type: ignore[no-any-return]

    def score_samples(self, rows: Any) -> np.ndarray:
        """Anomaly scores for raw rows (higher = more anomalous)."""
        return self.model.score_samples(self.prepare(rows))  # type: ignore[no-any-return]

    def __getattr__(self, name: str) -> Any:
        if name in ("model", "preparer") or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.model, name)

    def __repr__(self) -> str:
        return f"ArtifactModel({self.model!r}, preparer={'yes' if self.preparer is not None else 'no'})"


def _as_preparer(preparer: FeaturePreparer | Mapping[str, Any] | str | os.PathLike[str]) -> FeaturePreparer:
    if isinstance(preparer, FeaturePreparer):
        return preparer
    if isinstance(preparer, Mapping):
        return FeaturePreparer.from_dict(preparer)
    return load_preparer(preparer)


def save_model_artifact(
    model: Any,
    directory: str | os.PathLike[str],
    metadata: Mapping[str, Any],
    *,
    preparer: FeaturePreparer | Mapping[str, Any] | str | os.PathLike[str] | None = None,
) -> Path:
    """Write ``model``, its ``preparer`` and its metadata under ``directory`` (created; files replaced
    atomically).

    ``metadata`` must be plain data (params, metrics, fingerprint, study name...); the library
    versions, the creation time, the model and preparer file names and their SHA-256 are added.
    ``preparer``: the :class:`~src.mlops.features.FeaturePreparer` of the training table (or its
    ``to_dict()``, or the path of its JSON file), written as ``preparer.json`` so that the loaded
    model predicts on raw rows; its features must include the model's. Returns the directory
    (absolute).
    """
    directory = Path(directory).expanduser().resolve()
    prep = None if preparer is None else _as_preparer(preparer)
    names = getattr(model, "feature_names", None) or []
    if prep is not None and not set(names) <= set(prep.feature_names):
        lacking = [n for n in names if n not in set(prep.feature_names)]
        raise DataValidationError(
            f"the preparer does not yield the model's feature columns {lacking[:10]}: "
            "pass the preparer of the table the model was trained on"
        )
    directory.mkdir(parents=True, exist_ok=True)
    model_file = directory / MODEL_FILE
    write_atomically(model_file, lambda tmp: joblib.dump(model, tmp))
    preparer_file = directory / PREPARER_FILE
    if prep is not None:
        _write_json(preparer_file, prep.to_dict())
    else:
        preparer_file.unlink(missing_ok=True)
    meta = dict(jsonable(dict(metadata)))
    meta.update({
        "format_version": FORMAT_VERSION,
        "model_file": MODEL_FILE,
        "model_sha256": _sha256(model_file),
        "preparer_file": PREPARER_FILE if prep is not None else None,
        "preparer_sha256": _sha256(preparer_file) if prep is not None else None,
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


def _artifact_file(directory: Path, metadata: Mapping[str, Any], kind: str, verify: bool, default: str) -> Path:
    """The artifact's ``<kind>_file`` (default ``default``), checked against ``<kind>_sha256`` with ``verify``."""
    file = directory / str(metadata.get(f"{kind}_file") or default)
    if not file.is_file():
        raise DataValidationError(f"model artifact {str(directory)!r} has no {kind} file {file.name!r}")
    if verify:
        expected = metadata.get(f"{kind}_sha256")
        actual = _sha256(file)
        if expected != actual:
            raise DataValidationError(
                f"{kind} file {str(file)!r} does not match the SHA-256 recorded in {METADATA_FILE} "
                f"({actual} != {expected}); it changed after it was saved — retrain instead of editing it"
            )
    return file


def load_model_artifact(path: str | os.PathLike[str], *, verify: bool = True) -> tuple[ArtifactModel, dict[str, Any]]:
    """Load ``(model, metadata)`` from an artifact directory (or one of its files).

    ``model`` is an :class:`ArtifactModel`: its ``predict`` / ``predict_proba`` take raw rows (the
    columns of the training table) when the artifact has a preparer; ``model.model`` is the bare
    TunedModel for prepared features. With ``verify`` (default) the model and preparer files must
    match the SHA-256 in the metadata. Unpickling runs code: load only artifacts you trust (see the
    module docstring).
    """
    directory = _directory_of(path)
    metadata = read_artifact_metadata(directory)
    model_file = _artifact_file(directory, metadata, "model", verify, MODEL_FILE)
    preparer = None
    if metadata.get("preparer_file"):
        preparer = load_preparer(_artifact_file(directory, metadata, "preparer", verify, PREPARER_FILE))
    return ArtifactModel(joblib.load(model_file), preparer), metadata
