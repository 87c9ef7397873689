"""The report page: one self-contained HTML file (styles inline, plotly's JS embedded once, figures
as JSON in inline scripts). Every string that comes from the study -- its name, params, values,
attributes, failure reasons -- is escaped here; JSON inside ``<script>`` has ``<`` written as
``\\u003c`` so no value can close the script. The page loads nothing: no link, image or script
points outside the file (the PNG files are named relatively, beside it)."""

from __future__ import annotations

import datetime as _dt
import html
import json
import math
from collections.abc import Mapping
from typing import Any

from optuna.trial import TrialState

from ..compare import COMPARE_ATTR
from ..jsonutil import to_jsonable
from ..narrowing import phase_summary, ranges_text
from ..redaction import redact_secrets
from ._figures import SECTION_PLOTS

__all__ = ["render_page", "SECTIONS", "MAX_TABLE_ROWS"]

#: section id -> title, in page order (every section is present; one without data says why).
SECTIONS = {"summary": "Study", "history": "Optimization history", "importances": "Parameter importances",
            "parallel": "Parallel coordinates", "slices": "Slices", "pareto": "Pareto front",
            "convergence": "Convergence", "phases": "Adaptive narrowing", "families": "Model families",
            "comparison": "Defaults vs random search vs tuned", "recommendations": "Recommendations",
            "trials": "Trials"}
#: trial rows in the table (the best and the latest are kept when a study holds more).
MAX_TABLE_ROWS = 1000
#: plotly options that keep the page offline: no logo link, no "edit in Chart Studio", no MathJax
_CONFIG = {"displaylogo": False, "showLink": False, "showSendToCloud": False, "showEditInChartStudio": False,
           "plotlyServerURL": "", "responsive": True, "typesetMath": False}

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1f2933;background:#f5f7fa}
main{max-width:1200px;margin:0 auto;padding:16px 24px 48px}
h1{font-size:1.6em;margin:16px 0 4px;word-break:break-all}
h2{font-size:1.25em;margin:0 0 8px}
section{background:#fff;border:1px solid #d9e2ec;border-radius:6px;padding:16px;margin:16px 0}
nav a{margin-right:12px;color:#486581}
table{border-collapse:collapse;font-size:.9em}
th,td{border-bottom:1px solid #e4e7eb;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f0f4f8;position:sticky;top:0}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.kv th{background:none;position:static;width:220px}
.scroll{max-height:600px;overflow:auto;border:1px solid #e4e7eb}
.params{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.85em;word-break:break-all}
.note{color:#52606d;font-style:italic}
.badge{display:inline-block;padding:2px 8px;border-radius:10px;font-weight:600}
.improving{background:#e3f8e0;color:#1d6f16}.plateaued{background:#fff3c4;color:#8d6a00}
.other{background:#e4e7eb;color:#3e4c59}
tr.best td{background:#fffbea}
li{margin:4px 0}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(360px,1fr));gap:8px}
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _num(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return "-" if v is None else str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            return str(v)
        return f"{v:.6g}"
    return str(v)


def _script_json(obj: Any) -> str:
    text = json.dumps(obj, separators=(",", ":"), default=str)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _kv(rows: list[tuple[str, Any]]) -> str:
    body = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows if v not in (None, ""))
    return f'<table class="kv">{body}</table>'


def _summary(study: Any, analysis: Mapping[str, Any], names: list[str]) -> str:
    attrs = study.user_attrs
    recipe = attrs.get("hpo.recipe") if isinstance(attrs.get("hpo.recipe"), Mapping) else {}
    data = recipe.get("data") if isinstance(recipe.get("data"), Mapping) else {}
    where = data.get("path") or data.get("name") or data.get("kind")
    best = study.best_trials if len(study.directions) > 1 else None
    rows: list[tuple[str, Any]] = [
        ("study", study.study_name),
        ("objective", ", ".join(f"{n} ({d.name.lower()})" for n, d in zip(names, study.directions))),
        ("model family", recipe.get("algorithm")), ("problem type", recipe.get("problem_type")),
        ("data", redact_secrets(where) if where else None), ("dataset fingerprint", recipe.get("fingerprint")),
        ("sampler", attrs.get("sampler")), ("pruner", attrs.get("pruner")),
        ("trials", f"{analysis.get('n_trials')} ({analysis.get('n_complete')} complete, {analysis.get('n_pruned')} "
                   f"pruned, {analysis.get('n_failed')} failed)"),
    ]
    if best is None:
        rows += [("best value", _num(analysis.get("best_value"))), ("best trial", analysis.get("best_trial"))]
        if analysis.get("best_trial") is not None:
            params = study.get_trials(deepcopy=False)[analysis["best_trial"]].params
            rows.append(("best params", json.dumps(to_jsonable(params), default=str)))
    else:
        rows.append(("Pareto-optimal trials", ", ".join(str(t.number) for t in best)))
    rows.append(("report written", _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")))
    return _kv(rows)


def _figure(key: str, fig: Any) -> str:
    if isinstance(fig, list):  # a grid of small figures
        return '<div class="grid">' + "".join(_figure(f"{key}-{i}", f) for i, f in enumerate(fig)) + "</div>"
    plain = fig.to_plotly_json()
    spec = {"data": plain["data"], "layout": plain["layout"], "config": _CONFIG}
    div = f"plot-{key}"
    return (f'<div id="{div}" class="plot"></div>'
            f'<script>(function(){{var f={_script_json(to_jsonable(spec, non_finite="null"))};'
            f'Plotly.newPlot("{div}",f.data,f.layout,f.config);}})();</script>')


def _png_link(pngs: Mapping[str, str], key: str) -> str:
    if key not in pngs:
        return ""
    return f'<p class="note">Also as a PNG file beside this page: <a href="{_e(pngs[key])}">{_e(pngs[key])}</a></p>'


def _convergence(c: Mapping[str, Any]) -> str:
    status = c.get("status", "unknown")
    css = status if status in ("improving", "plateaued") else "other"
    out = f'<p><span class="badge {css}">{_e(status.replace("_", " "))}</span> {_e(c.get("summary", ""))}</p>'
    labels = {"n_complete": "complete trials", "first_value": "first value", "best_value": "best value",
              "last_improvement_trial": "trial of the last improvement",
              "complete_trials_since_improvement": "complete trials since then", "gain_total": "total gain",
              "gain_last_half": "gain in the last half of the trials",
              "share_of_gain_in_last_half": "share of the gain made in the last half", "pareto_size": "Pareto front"}
    return out + _kv([(label, _num(c[k])) for k, label in labels.items() if k in c])


def _families(rows: list[Mapping[str, Any]]) -> str:
    if not rows:
        return '<p class="note">One model family in this study: nothing to compare.</p>'
    head = "".join(f"<th>{h}</th>" for h in ("family", "complete trials", "best", "median", "gap to the best",
                                             "never came close"))
    body = "".join(
        f"<tr><td>{_e(r['family'])}</td><td class=num>{r['n_complete']}</td><td class=num>{_num(r['best_value'])}</td>"
        f"<td class=num>{_num(r['median_value'])}</td><td class=num>{_num(r['gap_to_best'])}</td>"
        f"<td>{'yes' if r['never_close'] else ''}</td></tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _phases(study: Any) -> str:
    phases = phase_summary(study)
    if not phases:
        return '<p class="note">One phase: the search space was not narrowed (narrowing: --phases N).</p>'
    # one row per phase for its trials and best; the ranges below, one row per param (a column per
    # phase): a column per param squeezed 17 LightGBM ranges into unreadable slivers
    head = "".join(f"<th>{h}</th>" for h in ("phase", "trials", "complete", "best value", "best trial"))
    rows = [f"<tr><td class=num>{p['phase']}</td><td>{p['start_trial']}&ndash;{_num(p['end_trial'])} "
            f"({p['n_trials']})</td><td class=num>{p['n_complete']}</td><td class=num>"
            f"{_num(p['best_value'])}</td><td class=num>{_num(p['best_trial'])}</td></tr>" for p in phases]
    texts = [ranges_text(p["ranges"]) for p in phases]
    names = sorted({n for p in phases for n in p["ranges"]})
    range_head = "<th>param</th>" + "".join(f"<th>phase {p['phase']}</th>" for p in phases)
    range_rows = ["<tr><td>" + _e(n) + "</td>" + "".join(f"<td class=params>{_e(t.get(n, '-'))}</td>" for t in texts)
                  + "</tr>" for n in names]
    note = ('<p class="note">Each phase narrows the numeric ranges around the best trial so far (and widens a '
            "side where it sat on a bound); trials numbered from the phase's first trial were sampled in its "
            "ranges.</p>")
    return (note + f'<table><tr>{head}</tr>{"".join(rows)}</table>'
            f'<h3>Ranges searched in each phase</h3><div class="scroll"><table><tr>{range_head}</tr>'
            f'{"".join(range_rows)}</table></div>')


def _comparison(study: Any) -> str:
    c = study.user_attrs.get(COMPARE_ATTR)
    if not isinstance(c, Mapping):
        return '<p class="note">No comparison was run for this study (hpo tune/train --compare random).</p>'
    method = str(c.get("method", "random"))
    head = f"<tr><th>{_e(c.get('metric', 'metric'))}</th><th>defaults</th><th>{_e(method)} search</th><th>tuned</th></tr>"
    rows = [(str(c.get("scored_on", "validation")), c.get("defaults"), c.get(method), c.get("tuned"))]
    if any(c.get(k) is not None for k in ("test_defaults", f"test_{method}", "test_tuned")):
        rows.append(("test", c.get("test_defaults"), c.get(f"test_{method}"), c.get("test_tuned")))
    body = "".join(f'<tr data-row="{_e(r[0])}"><th>{_e(r[0])}</th>' + "".join(
        f"<td class=num>{_num(v)}</td>" for v in r[1:]) + "</tr>" for r in rows)
    note = (f'<p class="note">{_e(method)} search: the same objective with the same budget ({_e(c.get("budget"))}); '
            f'{_e(c.get(f"{method}_trials"))} trials in {_num(c.get(f"{method}_seconds"))} s. Direction: '
            f'{_e(c.get("direction"))}.</p>')
    if "test" not in [r[0] for r in rows]:
        note += '<p class="note">Test scores come with hpo train (hpo tune never reads a test split).</p>'
    return f"<table>{head}{body}</table>" + note


def _recommendations(recs: list[Mapping[str, Any]]) -> str:
    if not recs:
        return '<p class="note">Nothing to recommend: no rule fired.</p>'
    return "<ul>" + "".join(f"<li>{_e(r.get('message', r.get('kind')))}</li>" for r in recs) + "</ul>"


def _trials(study: Any, names: list[str], best: int | None) -> str:
    trials = sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
    note = ""
    if len(trials) > MAX_TABLE_ROWS:
        keep = {t.number for t in trials[-MAX_TABLE_ROWS + 1:]} | ({best} if best is not None else set())
        note = (f'<p class="note">{len(trials)} trials: the table shows the latest {MAX_TABLE_ROWS - 1} and the '
                "best.</p>")
        trials = [t for t in trials if t.number in keep]
    value_heads = "".join(f"<th>{_e(n)}</th>" for n in names)
    head = f"<tr><th>#</th><th>state</th>{value_heads}<th>seconds</th><th>source</th><th>params</th><th>note</th></tr>"
    rows = []
    for t in trials:
        values = t.values if t.state == TrialState.COMPLETE and t.values else [None] * len(names)
        cells = "".join(f"<td class=num>{_num(v)}</td>" for v in values)
        secs = t.duration.total_seconds() if t.duration is not None else None
        params = ", ".join(f"{k}={_num(v)}" for k, v in t.params.items())
        reason = t.user_attrs.get("fail_reason") or ""
        css = ' class="best"' if t.number == best else ""
        rows.append(f"<tr{css}><td class=num>{t.number}</td><td>{t.state.name}</td>{cells}"
                    f"<td class=num>{_num(round(secs, 2) if secs is not None else None)}</td>"
                    f"<td>{_e(t.user_attrs.get('source', 'sampler'))}</td><td class=params>{_e(params)}</td>"
                    f"<td>{_e(reason)}</td></tr>")
    return note + f'<div class="scroll"><table>{head}{"".join(rows)}</table></div>'


def render_page(study: Any, analysis: Mapping[str, Any], figures: Mapping[str, Any], pngs: Mapping[str, str],
                names: list[str], plotly_js: str) -> str:
    """The whole page. ``pngs``: plot name -> file name relative to the page."""
    multi = len(study.directions) > 1
    parts: dict[str, str] = {"summary": _summary(study, analysis, names)}
    for key in SECTION_PLOTS:
        if key == "pareto" and not multi:
            parts[key] = '<p class="note">Single-objective study: there is no Pareto front.</p>'
        elif key in figures:
            note = ""
            if key == "importances":
                note = f'<p class="note">{_e(analysis.get("importance_note", ""))}</p>'
            elif key in ("parallel", "slices"):
                note = '<p class="note">The most important params (at most 6).</p>'
            if multi and key in ("history", "parallel", "slices"):
                note += f'<p class="note">Values of the first objective, {_e(names[0])}.</p>'
            parts[key] = note + _figure(key, figures[key]) + _png_link(pngs, key)
        elif key == "importances" and analysis.get("importance_note"):
            parts[key] = f'<p class="note">Importances {_e(analysis["importance_note"])}.</p>'
        else:
            parts[key] = '<p class="note">Not drawn: the study has no complete trial to plot.</p>'
    parts["convergence"] = _convergence(analysis.get("convergence") or {})
    parts["families"] = _families(analysis.get("families") or [])
    parts["phases"] = _phases(study)
    parts["comparison"] = _comparison(study)
    parts["recommendations"] = _recommendations(analysis.get("recommendations") or [])
    parts["trials"] = _trials(study, names, analysis.get("best_trial"))
    nav = "".join(f'<a href="#{k}">{_e(v)}</a>' for k, v in SECTIONS.items())
    body = "".join(f'<section id="{k}"><h2>{_e(SECTIONS[k])}</h2>{parts[k]}</section>' for k in SECTIONS)
    title = _e(f"HPO report: {study.study_name}")
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
            f"script-src 'unsafe-inline' 'unsafe-eval'; style-src 'unsafe-inline'; img-src data: blob:; "
            f'font-src data:">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{title}</title>'
            f"<style>{_CSS}</style><script>{plotly_js}</script></head><body><main><h1>{title}</h1>"
            f"<nav>{nav}</nav>{body}</main></body></html>")
