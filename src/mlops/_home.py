"""The one resolver of ``HPO_HOME``: the base directory of the embedded database, the default MLflow
store and the runs (``./.hpo`` unless ``HPO_HOME`` says otherwise)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

__all__ = ["ENV_HPO_HOME", "DEFAULT_HPO_HOME", "resolve_hpo_home"]

ENV_HPO_HOME = "HPO_HOME"
DEFAULT_HPO_HOME = "./.hpo"


def resolve_hpo_home(hpo_home: str | os.PathLike[str] | None = None, *, env: Mapping[str, str] | None = None) -> Path:
    """``hpo_home`` if given, else ``$HPO_HOME`` (of ``env``, default ``os.environ``), else ``./.hpo``,
    as an absolute path (relative paths are taken from the current directory; not created here)."""
    if hpo_home is None:
        env = os.environ if env is None else env
        hpo_home = env.get(ENV_HPO_HOME) or DEFAULT_HPO_HOME
    return Path(hpo_home).expanduser().resolve()
