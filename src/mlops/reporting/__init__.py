"""The study report (SPEC F26): one self-contained HTML file that works offline, and the same plots
as PNG files beside it.

>>> from src.mlops.reporting import write_report
>>> files = write_report(study, "report.html")      # any Optuna study of this project (or not)
>>> files.html, files.pngs                          # Path, {"history": Path, ...}

Sections (ids in :data:`SECTIONS`): the study, optimization history, parameter importances, parallel
coordinates, slices, the Pareto front (multi-objective studies), convergence, the per-family
comparison, recommendations and the trial table. The analysis is :func:`src.mlops.analysis.analyze_study`'s
(computed here unless given). Plotly's JavaScript is embedded in the page (the library's own code
contains URLs -- map tiles, licences -- that these charts never fetch; a Content-Security-Policy in
the page forbids any fetch anyway).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna

from ..analysis import analyze_study
from ._figures import SECTION_PLOTS, objective_names, plotly_figures, safe_view, write_pngs
from ._html import MAX_TABLE_ROWS, SECTIONS, render_page

__all__ = ["ReportFiles", "write_report", "SECTIONS", "SECTION_PLOTS", "MAX_TABLE_ROWS"]


@dataclass
class ReportFiles:
    """What :func:`write_report` wrote."""

    html: Path
    pngs: dict[str, Path] = field(default_factory=dict)
    analysis: dict[str, Any] = field(default_factory=dict)

    def paths(self) -> list[Path]:
        return [self.html, *self.pngs.values()]


def write_report(study: optuna.Study, out: str | Path, *, analysis: dict[str, Any] | None = None,
                 pngs: bool = True) -> ReportFiles:
    """Write ``out`` (HTML) and, with ``pngs``, ``<stem>-<plot>.png`` beside it. Blocking (plots are
    drawn here): from async code, use :func:`awrite_report`."""
    import plotly.offline

    out = Path(out).expanduser().resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    analysis = analysis if analysis is not None else analyze_study(study).to_dict()
    metric = analysis.get("metric")
    names = objective_names(study, metric)
    view = safe_view(study)
    figures = plotly_figures(view, analysis, names)
    png_files = write_pngs(view, analysis, names, out.parent, out.stem) if pngs else {}
    page = render_page(study, analysis, figures, {k: p.name for k, p in png_files.items()}, names,
                       plotly.offline.get_plotlyjs())
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(out)
    return ReportFiles(html=out, pngs=png_files, analysis=analysis)


async def awrite_report(study: optuna.Study, out: str | Path, **options: Any) -> ReportFiles:
    """:func:`write_report` in a thread (the event loop keeps running)."""
    return await asyncio.to_thread(write_report, study, out, **options)


__all__.append("awrite_report")
