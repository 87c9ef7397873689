"""The HPO engine: async Optuna optimizer, search spaces, model registry, objectives, persistence."""
