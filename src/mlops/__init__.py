"""The HPO engine: async Optuna optimizer, search spaces, model registry, objectives, persistence."""

from ._home import resolve_hpo_home

__all__ = ["resolve_hpo_home"]
