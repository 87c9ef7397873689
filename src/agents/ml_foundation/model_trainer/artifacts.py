"""Local model artifacts: a directory holding ``model.skops``, ``preparer.json`` and ``metadata.json``.

``model.skops`` is the fitted :class:`~src.mlops.objectives.TunedModel` (model-level preprocessing +
estimator, predicting in the original label space; it takes prepared features), written with skops
and read back trusting an explicit list of types only (:mod:`src.mlops.model_io`): reading it never
runs code. ``preparer.json`` is the :class:`~src.mlops.features.FeaturePreparer` of the training
table (plain JSON), so :func:`load_model_artifact` returns an :class:`ArtifactModel` that predicts on
raw rows (the columns of the training CSV):

>>> model, metadata = load_model_artifact(state["model_path"], digests=recorded_digests(state, state["model_path"]))
>>> model.predict(pd.read_csv("new_customers.csv"))      # raw rows; the target column may be absent
>>> model.model.predict(X_prepared)                     # the bare TunedModel, on prepared features

Security. A file beside the model cannot vouch for it (whoever can swap the model can rewrite that
file too), so the SHA-256 of the files a run wrote travel *with the run*: :func:`save_model_artifact`
returns them (:class:`SavedArtifact`), the graph keeps them in its checkpointed state
(``artifact_digests``) and ``register_model`` records them in the history database. Loading checks
them before anything is read:

* ``load_model_artifact(path, digests=...)`` -- the digests of the run that wrote ``path`` (from the
  state, :func:`recorded_digests`, or the history database, :func:`recorded_artifact_digests`);
* ``load_model_artifact(path, trusted=True)`` -- you vouch for the folder yourself (e.g. you copied
  it from your own storage); the model file is still read with skops' trusted types only;
* neither: refused with :class:`UnrecordedArtifactError`.

File names are fixed (``metadata.json`` cannot point elsewhere) and must resolve inside the folder.
``metadata.json`` records params, metrics, fingerprint, study name, library versions and the
digests for information; it is JSON, and later nodes add metrics and the MLflow run to it.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import hashlib
import importlib.metadata
import json
import os
import platform
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from src.mlops.datasets import write_atomically
from src.mlops.errors import DataValidationError, MLOpsError
from src.mlops.features import FeaturePreparer, load_preparer
from src.mlops.model_io import (
    MODEL_FORMAT,
    RawRowsModel,
    UntrustedModelError,
    dump_model,
    load_model,
)

from .state import jsonable

__all__ = [
    "MODEL_FILE",
    "METADATA_FILE",
    "PREPARER_FILE",
    "ArtifactModel",
    "SavedArtifact",
    "UnrecordedArtifactError",
    "UntrustedModelError",
    "save_model_artifact",
    "load_model_artifact",
    "load_run_artifact",
    "load_recorded_artifact",
    "recorded_digests",
    "recorded_artifact_digests",
    "read_artifact_metadata",
    "update_artifact_metadata",
    "library_versions",
    "file_digest",
]

MODEL_FILE = "model.skops"
METADATA_FILE = "metadata.json"
PREPARER_FILE = "preparer.json"
#: metadata format version (2: skops model file, digests recorded outside the folder).
FORMAT_VERSION = 2

#: A saved model that predicts on raw rows (see :class:`~src.mlops.model_io.RawRowsModel`).
ArtifactModel = RawRowsModel

_DISTRIBUTIONS = {
    "sklearn": ("scikit-learn",),
    "lightgbm": ("lightgbm",),
    "xgboost": ("xgboost", "xgboost-cpu"),
    "optuna": ("optuna",),
    "pandas": ("pandas",),
    "numpy": ("numpy",),
    "skops": ("skops",),
}


class UnrecordedArtifactError(MLOpsError, ValueError):
    """An artifact folder whose digests no run of ours recorded, loaded without ``trusted=True``."""


@dataclass(frozen=True)
class SavedArtifact:
    """What :func:`save_model_artifact` wrote: the folder and the SHA-256 of each file to check later."""

    path: Path
    #: file name -> SHA-256 (the model file, and the preparer when there is one).
    digests: dict[str, str] = field(default_factory=dict)

    def state_entry(self) -> dict[str, dict[str, str]]:
        """``{path: digests}``: this artifact's entry of the graph state's ``artifact_digests``."""
        return {str(self.path): dict(self.digests)}


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


def file_digest(path: str | os.PathLike[str]) -> str:
    """The SHA-256 of a file (hex)."""
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
    p = p.parent if p.name in (MODEL_FILE, METADATA_FILE, PREPARER_FILE) else p
    return p.resolve()


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
) -> SavedArtifact:
    """Write ``model``, its ``preparer`` and its metadata under ``directory`` (created; files replaced
    atomically); returns the folder and the digests to keep with the run (:class:`SavedArtifact`).

    ``metadata`` must be plain data (params, metrics, fingerprint, study name...); the library
    versions, the creation time, the file names and their SHA-256 are added. ``preparer``: the
    :class:`~src.mlops.features.FeaturePreparer` of the training table (or its ``to_dict()``, or the
    path of its JSON file), written as ``preparer.json`` so that the loaded model predicts on raw
    rows; its features must include the model's.

    Raises:
        UntrustedModelError: the model holds a type outside the trusted list of
            :mod:`src.mlops.model_io` (it could not be loaded back safely).
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
    model_file = dump_model(model, directory / MODEL_FILE)
    digests = {MODEL_FILE: file_digest(model_file)}
    preparer_file = directory / PREPARER_FILE
    if prep is not None:
        _write_json(preparer_file, prep.to_dict())
        digests[PREPARER_FILE] = file_digest(preparer_file)
    else:
        preparer_file.unlink(missing_ok=True)
    (directory / "model.joblib").unlink(missing_ok=True)  # a pickle left by an older version
    meta = dict(jsonable(dict(metadata)))
    meta.update({
        "format_version": FORMAT_VERSION,
        "model_format": MODEL_FORMAT,
        "model_file": MODEL_FILE,
        "preparer_file": PREPARER_FILE if prep is not None else None,
        "sha256": dict(digests),
        "model_class": f"{type(model).__module__}.{type(model).__qualname__}",
        "library_versions": library_versions(),
        "created_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    })
    _write_json(directory / METADATA_FILE, meta)
    return SavedArtifact(directory, digests)


def read_artifact_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``metadata.json`` of an artifact (``path``: its directory or one of its files). Plain JSON:
    reading it runs no code, and nothing in it is trusted to locate or vouch for the model file."""
    file = _directory_of(path) / METADATA_FILE
    if not file.is_file():
        raise DataValidationError(f"model artifact {str(file.parent)!r} has no {METADATA_FILE}; save it with save_model_artifact")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise DataValidationError(f"cannot read {str(file)!r}: {e}") from e
    if not isinstance(data, dict):
        raise DataValidationError(f"{str(file)!r} does not hold a JSON object")
    return data


def update_artifact_metadata(path: str | os.PathLike[str], updates: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``updates`` (plain data) into an artifact's ``metadata.json``; returns the new metadata."""
    meta = read_artifact_metadata(path)
    meta.update(jsonable(dict(updates)))
    _write_json(_directory_of(path) / METADATA_FILE, meta)
    return meta


def recorded_digests(state: Mapping[str, Any], path: str | os.PathLike[str]) -> dict[str, str]:
    """The digests the run of ``state`` recorded for the artifact at ``path`` (``state["artifact_digests"]``).

    Raises:
        UnrecordedArtifactError: the state records none for that folder (a checkpoint written by an
            older version, or a path the run did not write).
    """
    key = str(_directory_of(path))
    found = (state.get("artifact_digests") or {}).get(key)
    if not found:
        raise UnrecordedArtifactError(
            f"the run's state records no digests for the model artifact {key!r}, so it cannot be checked "
            "before loading; train the model again (a new run) instead of resuming this one"
        )
    return dict(found)


def load_run_artifact(state: Mapping[str, Any], path: str | os.PathLike[str]) -> tuple[ArtifactModel, dict[str, Any]]:
    """:func:`load_model_artifact` with the digests the run of ``state`` recorded for ``path``."""
    return load_model_artifact(path, digests=recorded_digests(state, path))


async def recorded_artifact_digests(repository: Any, path: str | os.PathLike[str]) -> dict[str, str] | None:
    """The digests the history database (a :class:`~src.mlops.persistence.HistoryRepository`) holds
    for the artifact folder ``path``, or ``None`` when no run recorded it."""
    return await repository.get_artifact_digests(str(_directory_of(path)))


async def load_recorded_artifact(repository: Any, path: str | os.PathLike[str]) -> tuple[ArtifactModel, dict[str, Any]]:
    """:func:`load_model_artifact` with the digests the history database recorded for ``path``
    (read off the event loop).

    Raises:
        UnrecordedArtifactError: no run recorded that folder.
    """
    digests = await recorded_artifact_digests(repository, path)
    if digests is None:
        raise UnrecordedArtifactError(
            f"no run recorded the model artifact {str(_directory_of(path))!r} in the history database; "
            "pass trusted=True to load_model_artifact if you vouch for the folder"
        )
    return await asyncio.to_thread(load_model_artifact, path, digests=digests)


def _inside(directory: Path, name: str) -> Path:
    file = directory / name
    real = file.resolve()
    if real.parent != directory:
        raise UntrustedModelError(
            f"model artifact file {str(file)!r} resolves to {str(real)!r}, outside the artifact folder "
            f"{str(directory)!r}; artifact files must live in their folder"
        )
    return real


def _check_digest(file: Path, name: str, expected: str | None) -> None:
    if not file.is_file():
        raise DataValidationError(f"model artifact {str(file.parent)!r} has no file {name!r}")
    actual = file_digest(file)
    if expected != actual:
        raise UntrustedModelError(
            f"{name} of {str(file.parent)!r} does not match the SHA-256 the run recorded ({actual} != {expected}): "
            "the file changed after the run wrote it; refusing to load it (train again instead of editing it)"
        )


def load_model_artifact(
    path: str | os.PathLike[str],
    *,
    digests: Mapping[str, str] | None = None,
    trusted: bool = False,
) -> tuple[ArtifactModel, dict[str, Any]]:
    """Load ``(model, metadata)`` from an artifact directory (or one of its files).

    ``model`` is an :class:`ArtifactModel`: its ``predict`` / ``predict_proba`` take raw rows (the
    columns of the training table) when the artifact has a preparer; ``model.model`` is the bare
    TunedModel for prepared features.

    Args:
        digests: file name -> SHA-256 as recorded by the run that wrote the folder
            (:attr:`SavedArtifact.digests`, ``recorded_digests(state, path)`` or
            ``await recorded_artifact_digests(repository, path)``). Every listed file must match
            before anything is read; the preparer is read only when listed.
        trusted: load a folder no run recorded, because you vouch for it. The model file is still
            read with the trusted types of :mod:`src.mlops.model_io` only.

    Raises:
        UnrecordedArtifactError: neither ``digests`` nor ``trusted=True``.
        UntrustedModelError: a digest differs, a file resolves outside the folder, the metadata
            names another model file, or the model file is not a skops file of trusted types.
    """
    directory = _directory_of(path)
    if digests is None and not trusted:
        raise UnrecordedArtifactError(
            f"refusing to load the model artifact {str(directory)!r}: no run recorded its digests. Pass "
            "digests= (from the run's state or the history database), or trusted=True if you vouch for the folder"
        )
    metadata = read_artifact_metadata(directory)
    named = metadata.get("model_file")
    if named != MODEL_FILE:
        hint = " (a pickle written by an older version: train again)" if named == "model.joblib" else ""
        raise UntrustedModelError(
            f"{METADATA_FILE} of {str(directory)!r} names the model file {named!r}, but artifact files have fixed "
            f"names inside their folder ({MODEL_FILE!r}){hint}"
        )
    model_file = _inside(directory, MODEL_FILE)
    preparer_file: Path | None = None
    if digests is not None:
        if MODEL_FILE not in digests:
            raise UntrustedModelError(f"the recorded digests of {str(directory)!r} do not cover {MODEL_FILE!r}")
        _check_digest(model_file, MODEL_FILE, digests[MODEL_FILE])
        if PREPARER_FILE in digests:
            preparer_file = _inside(directory, PREPARER_FILE)
            _check_digest(preparer_file, PREPARER_FILE, digests[PREPARER_FILE])
    else:
        if not model_file.is_file():
            raise DataValidationError(f"model artifact {str(directory)!r} has no file {MODEL_FILE!r}")
        if metadata.get("preparer_file"):
            preparer_file = _inside(directory, PREPARER_FILE)
    preparer = load_preparer(preparer_file) if preparer_file is not None else None
    return ArtifactModel(load_model(model_file), preparer), metadata
