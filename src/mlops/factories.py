"""Samplers and pruners built from a name plus options (F6)."""

from __future__ import annotations

import importlib.util
import inspect
import math
from collections.abc import Mapping
from typing import Any

import warnings

import numpy as np
import optuna

from .errors import ConfigurationError
from .search_space import SearchSpace, parse_search_space

__all__ = ["SamplerFactory", "PrunerFactory"]


def _check_options(kind: str, name: str, cls: Any, options: Mapping[str, Any], extra: tuple[str, ...] = ()) -> None:
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self"} | set(extra)
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise ConfigurationError(
            f"{kind} {name!r} does not take option(s) {unknown}; accepted: {sorted(accepted - {'args', 'kwargs'})}"
        )


def _build(kind: str, name: str, cls: Any, options: Mapping[str, Any]) -> Any:
    _check_options(kind, name, cls, options)
    try:
        with warnings.catch_warnings():  # "group"/PatientPruner/... are stable enough for us
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return cls(**options)
    except (TypeError, ValueError) as e:
        raise ConfigurationError(f"{kind} {name!r} rejected options {dict(options)}: {e}") from e


class SamplerFactory:
    """``SamplerFactory.create("tpe", seed=42, n_startup_trials=10)`` and friends.

    Names: tpe, random, cmaes, gp, qmc, grid, nsga2 (multi-objective), nsga3, bruteforce, and the
    adapters of other backends (:mod:`.external_samplers`, optional extras): hyperopt (Hyperopt's TPE),
    skopt (scikit-optimize). ``search_space`` (our spec) is needed by ``grid``; for ``tpe`` a
    conditional space turns on Optuna's ``group`` mode so conditional params are modelled jointly.
    """

    NAMES = ("tpe", "random", "cmaes", "gp", "qmc", "grid", "nsga2", "nsga3", "bruteforce", "hyperopt", "skopt")
    #: samplers that cannot drive a multi-objective study
    SINGLE_OBJECTIVE = ("cmaes", "hyperopt", "skopt", "scikit-optimize", "cma", "cma-es", "cma_es")
    _ALIASES = {"tpesampler": "tpe", "cma": "cmaes", "cma-es": "cmaes", "cma_es": "cmaes", "gaussian_process": "gp",
                "sobol": "qmc", "nsgaii": "nsga2", "nsga-ii": "nsga2", "nsga_ii": "nsga2", "nsgaiii": "nsga3",
                "brute_force": "bruteforce", "gridsearch": "grid", "scikit-optimize": "skopt",
                "scikit_optimize": "skopt", "hyperopt-tpe": "hyperopt"}

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return cls.NAMES

    @classmethod
    def create(cls, name: str | optuna.samplers.BaseSampler | None = "tpe", *, seed: int | None = None,
               search_space: SearchSpace | Mapping[str, Any] | None = None, grid_points: int = 5,
               **options: Any) -> optuna.samplers.BaseSampler:
        if isinstance(name, optuna.samplers.BaseSampler):
            return name
        key = str(name or "tpe").strip().lower()
        key = cls._ALIASES.get(key, key)
        s = optuna.samplers
        if key == "tpe":
            space = parse_search_space(search_space) if search_space is not None else None
            opts = {"seed": seed, "multivariate": True, **options}
            if space is not None and space.is_conditional and "group" not in options:
                opts["group"] = True
            return _build("sampler", key, s.TPESampler, opts)
        if key == "random":
            return _build("sampler", key, s.RandomSampler, {"seed": seed, **options})
        if key == "cmaes":
            if importlib.util.find_spec("cmaes") is None:
                raise ConfigurationError("sampler 'cmaes' needs the 'cmaes' package: pip install cmaes")
            return _build("sampler", key, s.CmaEsSampler, {"seed": seed, "warn_independent_sampling": False, **options})
        if key == "gp":
            if importlib.util.find_spec("torch") is None:
                raise ConfigurationError(
                    "sampler 'gp' needs PyTorch, which is an optional extra: pip install -e '.[gp]' "
                    "(on this project's machines: pip install torch==2.13.0 for the CPU build)"
                )
            return _build("sampler", key, s.GPSampler, {"seed": seed, **options})
        if key == "qmc":
            return _build("sampler", key, s.QMCSampler, {"seed": seed, "warn_independent_sampling": False, **options})
        if key == "nsga2":
            return _build("sampler", key, s.NSGAIISampler, {"seed": seed, **options})
        if key == "nsga3":
            return _build("sampler", key, s.NSGAIIISampler, {"seed": seed, **options})
        if key == "bruteforce":
            return _build("sampler", key, s.BruteForceSampler, {"seed": seed, **options})
        if key in ("hyperopt", "skopt"):
            if importlib.util.find_spec(key) is None:
                raise ConfigurationError(
                    f"sampler {key!r} needs the {key!r} package, an optional extra: pip install -e '.[{key}]'")
            from .external_samplers import HyperoptSampler

            return _build("sampler", key, HyperoptSampler, {"seed": seed, **options}) if key == "hyperopt" \
                else _skopt(seed, options)
        if key == "grid":
            grid = options.pop("search_space", None) or _grid_from_space(search_space, grid_points)
            return _build("sampler", key, s.GridSampler, {"search_space": grid, "seed": seed, **options})
        raise ConfigurationError(f"unknown sampler {name!r}; known samplers: {list(cls.NAMES)}")


def _skopt(seed: int | None, options: Mapping[str, Any]) -> optuna.samplers.BaseSampler:
    """The skopt adapter (its options are ``skopt.Optimizer``'s, checked by the adapter itself)."""
    from .external_samplers import SkoptSampler

    try:
        return SkoptSampler(seed=seed, **options)
    except (TypeError, ValueError) as e:
        if isinstance(e, ConfigurationError):
            raise
        raise ConfigurationError(f"sampler 'skopt' rejected options {dict(options)}: {e}") from e


def _grid_from_space(space: SearchSpace | Mapping[str, Any] | None, points: int) -> dict[str, list[Any]]:
    if space is None:
        raise ConfigurationError("sampler 'grid' needs a search space (or a 'search_space' option of value lists)")
    sp = parse_search_space(space)
    if sp.is_conditional:
        raise ConfigurationError(
            "sampler 'grid' cannot walk a conditional search space; remove the 'when' conditions or use 'bruteforce'"
        )
    grid: dict[str, list[Any]] = {}
    for p in sp:
        if p.type == "categorical":
            grid[p.name] = list(p.choices or ())
        elif p.type == "int":
            step = int(p.step or 1)
            values = list(range(int(p.low), int(p.high) + 1, step))
            if len(values) > points:
                idx = np.unique(np.linspace(0, len(values) - 1, points).round().astype(int))
                values = [values[i] for i in idx]
            grid[p.name] = values
        else:
            if p.log:
                vals = np.exp(np.linspace(math.log(p.low), math.log(p.high), points))
            else:
                vals = np.linspace(p.low, p.high, points)
            grid[p.name] = sorted({float(v) for v in vals})
    return grid


class PrunerFactory:
    """``PrunerFactory.create("median", n_startup_trials=5, n_warmup_steps=10)`` and friends.

    Names: median, percentile, successive_halving, hyperband, threshold, patient, none.
    ``patient`` wraps another pruner: ``create("patient", patience=3, wrapped="median")``.
    """

    NAMES = ("median", "percentile", "successive_halving", "hyperband", "threshold", "patient", "none")
    _ALIASES = {"sha": "successive_halving", "asha": "successive_halving", "successivehalving": "successive_halving",
                "nop": "none", "null": "none", "off": "none", "no": "none"}

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return cls.NAMES

    @classmethod
    def tuning_defaults(cls, name: Any, *, cv: bool) -> dict[str, Any] | None:
        """The options the engine gives ``median``/``percentile`` when the caller gives none: steps
        are boosting rounds on a validation split (early rounds say little about the final score, so
        warm up longer) and folds under CV (prune from the second fold on); ``percentile`` keeps the
        top 75 % (Optuna's ``percentile=75.0`` keeps the top 75 %: 25.0 would prune three trials in
        four). ``None`` for other pruners (they take their own defaults or need options)."""
        key = cls._ALIASES.get(str(name).strip().lower(), str(name).strip().lower()) if isinstance(name, str) else None
        if key not in ("median", "percentile"):
            return None
        options: dict[str, Any] = {"n_startup_trials": 8, "n_warmup_steps": 1 if cv else 30}
        if key == "percentile":
            options["percentile"] = 75.0
        return options

    @classmethod
    def create(cls, name: str | optuna.pruners.BasePruner | None = "median", **options: Any) -> optuna.pruners.BasePruner:
        if isinstance(name, optuna.pruners.BasePruner):
            return name
        key = "none" if name is None else str(name).strip().lower()
        key = cls._ALIASES.get(key, key)
        p = optuna.pruners
        if key == "median":
            return _build("pruner", key, p.MedianPruner, {"n_startup_trials": 5, "n_warmup_steps": 5, **options})
        if key == "percentile":
            if "percentile" not in options:
                raise ConfigurationError("pruner 'percentile' needs option 'percentile' (0-100), e.g. percentile=25.0")
            return _build("pruner", key, p.PercentilePruner, {"n_startup_trials": 5, "n_warmup_steps": 5, **options})
        if key == "successive_halving":
            return _build("pruner", key, p.SuccessiveHalvingPruner, options)
        if key == "hyperband":
            return _build("pruner", key, p.HyperbandPruner, options)
        if key == "threshold":
            if "lower" not in options and "upper" not in options:
                raise ConfigurationError("pruner 'threshold' needs option 'lower' and/or 'upper'")
            return _build("pruner", key, p.ThresholdPruner, options)
        if key == "patient":
            opts = dict(options)
            wrapped = opts.pop("wrapped", None)
            wrapped_options = opts.pop("wrapped_options", {}) or {}
            if "patience" not in opts:
                raise ConfigurationError("pruner 'patient' needs option 'patience' (an int >= 0)")
            inner = None if wrapped in (None, "none") else cls.create(wrapped, **wrapped_options)
            return _build("pruner", key, p.PatientPruner, {"wrapped_pruner": inner, **opts})
        if key == "none":
            if options:
                raise ConfigurationError(f"pruner 'none' takes no options, got {sorted(options)}")
            return p.NopPruner()
        raise ConfigurationError(f"unknown pruner {name!r}; known pruners: {list(cls.NAMES)}")
