"""The report's plots, twice: interactive plotly figures for the HTML page and PNG files beside it
(matplotlib). Both are drawn from a *safe view* of the study: a copy whose param names and
categorical values are HTML-escaped, so a hostile value cannot inject markup through a plot label
(plotly renders a subset of HTML in labels, links included)."""

from __future__ import annotations

import html
import logging
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import CategoricalDistribution
from optuna.trial import FrozenTrial, TrialState, create_trial

from ..analysis import internal_study

__all__ = ["SECTION_PLOTS", "safe_view", "plotly_figures", "write_pngs", "top_params", "objective_names"]

log = logging.getLogger("src.mlops.reporting")

#: plot name -> section title, in page order ("pareto" only for multi-objective studies).
SECTION_PLOTS = {"history": "Optimization history", "importances": "Parameter importances",
                 "parallel": "Parallel coordinates", "slices": "Slices", "pareto": "Pareto front"}
#: params shown in the parallel-coordinates and slice plots (the most important first).
MAX_PLOT_PARAMS = 6


def _esc(value: Any) -> Any:
    return html.escape(value, quote=True) if isinstance(value, str) else value


def safe_view(study: optuna.Study) -> optuna.Study:
    """An in-memory copy of ``study``'s trials (same numbers) with escaped names and categorical values."""
    view = internal_study(study.directions, "report")
    trials = []
    for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):  # every state: same numbers
        dists = {}
        for name, d in t.distributions.items():
            if isinstance(d, CategoricalDistribution):
                d = CategoricalDistribution([_esc(c) for c in d.choices])
            dists[_esc(name)] = d
        values = t.values if t.state == TrialState.COMPLETE else None
        trials.append(create_trial(
            state=t.state, values=values, params={_esc(k): _esc(v) for k, v in t.params.items()},
            distributions=dists, intermediate_values=dict(t.intermediate_values),
            user_attrs={}, system_attrs={}))
    view.add_trials(trials)
    return view


def objective_names(study: optuna.Study, metric: str | None) -> list[str]:
    names = study.metric_names
    if names:
        return [str(n) for n in names]
    if len(study.directions) == 1:
        return [metric or "objective"]
    return [f"objective {i}" for i in range(len(study.directions))]


def top_params(importances: dict[str, float], view: optuna.Study) -> list[str] | None:
    """The escaped names of the most important params (all varied ones when importances are unknown)."""
    known = {n for t in view.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) for n in t.params}
    ranked = [_esc(n) for n in importances if _esc(n) in known]
    if not ranked:
        ranked = sorted(known)
    return ranked[:MAX_PLOT_PARAMS] or None


def _target(view: optuna.Study) -> Callable[[FrozenTrial], float] | None:
    return (lambda t: t.values[0]) if len(view.directions) > 1 else None


def _has_complete(view: optuna.Study) -> bool:
    return bool(view.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))


def plotly_figures(view: optuna.Study, analysis: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """Plot name -> plotly figure, or a list of them for "slices" (one per param); a plot that cannot
    be drawn is left out (the page says why)."""
    import plotly.graph_objects as go

    v = optuna.visualization
    multi = len(view.directions) > 1
    target, name0 = _target(view), _esc(names[0])
    params = top_params(analysis.get("importances") or {}, view)
    out: dict[str, Any] = {}
    if not _has_complete(view):
        return out
    makers: dict[str, Callable[[], Any]] = {
        "history": lambda: v.plot_optimization_history(view, target=target, target_name=name0),
        "parallel": lambda: v.plot_parallel_coordinate(view, params=params, target=target, target_name=name0),
        # one small figure per param (a grid on the page): one row of six panels is unreadable
        "slices": lambda: [v.plot_slice(view, params=[p], target=target, target_name=name0) for p in params or []],
    }
    if multi:
        makers["pareto"] = lambda: v.plot_pareto_front(view, target_names=[_esc(n) for n in names])
    for key, make in makers.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out[key] = make()
        except (ValueError, RuntimeError) as e:
            log.warning("report: the %s plot could not be drawn (%s)", key, e)
    imp = analysis.get("importances") or {}
    if imp:
        items = list(imp.items())[::-1]  # most important on top
        fig = go.Figure(go.Bar(x=[v for _, v in items], y=[_esc(k) for k, _ in items], orientation="h",
                               text=[f"{v:.2f}" for _, v in items], textposition="outside"))
        fig.update_layout(title="Parameter importances", xaxis_title="importance (sums to 1)",
                          height=max(300, 28 * len(items) + 120), margin={"l": 160})
        out["importances"] = fig
    for key, fig in list(out.items()):
        for f in fig if isinstance(fig, list) else [fig]:
            f.update_layout(template="plotly_white", autosize=True)
            if key == "slices":
                f.update_layout(height=340, margin={"l": 60, "r": 20, "t": 50, "b": 50})
        if isinstance(fig, list) and not fig:
            del out[key]
    return out


def write_pngs(view: optuna.Study, analysis: dict[str, Any], names: list[str], directory: Path,
               stem: str) -> dict[str, Path]:
    """The same plots as PNG files ``<stem>-<plot>.png`` in ``directory`` (matplotlib, no browser)."""
    import matplotlib

    matplotlib.use("Agg", force=False)  # headless; a notebook's own backend is kept
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as m

    out: dict[str, Path] = {}
    if not _has_complete(view):
        return out
    target, name0 = _target(view), names[0]
    params = top_params(analysis.get("importances") or {}, view)
    makers: dict[str, Callable[[], Any]] = {
        "history": lambda: m.plot_optimization_history(view, target=target, target_name=name0),
        "parallel": lambda: m.plot_parallel_coordinate(view, params=params, target=target, target_name=name0),
        "slices": lambda: m.plot_slice(view, params=params, target=target, target_name=name0),
    }
    if len(view.directions) > 1:
        makers["pareto"] = lambda: m.plot_pareto_front(view, target_names=names)
    imp = analysis.get("importances") or {}
    if imp:
        makers["importances"] = lambda: _importance_axes(plt, imp)
    for key, make in makers.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                axes = make()
        except (ValueError, RuntimeError) as e:
            log.warning("report: the %s PNG could not be drawn (%s)", key, e)
            continue
        first = axes.flat[0] if hasattr(axes, "flat") else axes
        fig = first.get_figure()
        if key == "slices":
            fig.set_size_inches(max(8, 3.2 * len(params or [])), 4)
        path = directory / f"{stem}-{key}.png"
        fig.savefig(path, dpi=100, bbox_inches="tight")
        plt.close(fig)
        out[key] = path
    return out


def _importance_axes(plt: Any, importances: dict[str, float]) -> Any:
    items = list(importances.items())[::-1]
    fig, ax = plt.subplots(figsize=(8, max(3, 0.35 * len(items) + 1)))
    ax.barh([k for k, _ in items], [v for _, v in items])
    ax.set_xlabel("importance (sums to 1)")
    ax.set_title("Parameter importances")
    return ax
