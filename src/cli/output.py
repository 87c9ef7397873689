"""What ``hpo train`` and ``hpo tune`` print at the end, and the ``--output-json`` file."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["fmt", "shorten", "print_summary", "write_json", "SHOWN_CHARS"]

#: longest value shown on one summary line (a constant column's value can be pages long).
SHOWN_CHARS = 80


def fmt(v: Any) -> str:
    """A table cell: floats with 4 decimals, ``-`` for missing."""
    if isinstance(v, float):
        return f"{v:.4f}"
    return "-" if v is None else str(v)


def shorten(text: str, limit: int = SHOWN_CHARS) -> str:
    """``text`` cut to ``limit`` characters, saying how much was left out."""
    text = str(text)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"


def _study_lines(hpo: dict[str, Any], *, named: bool) -> list[str]:
    reasons = list((hpo.get("failure_reasons") or {}).values())
    stopped = sum(1 for r in reasons if r == "deadline")
    failed = (hpo.get("n_failed") or 0) - stopped
    what = f"study {hpo.get('study_name')}" if named else "trials"
    lines = [f"  {what}: {hpo.get('n_completed')} complete, {hpo.get('n_pruned')} pruned, "
             f"{failed} failed{f', {stopped} stopped at the timeout' if stopped else ''} "
             f"in {float(hpo.get('duration_s') or 0):.1f} s"]
    for reason in sorted({r for r in reasons if r != "deadline"})[:3]:
        lines.append(f"    failure: {shorten(reason, 160)}")
    if hpo.get("n_cached"):
        lines.append(f"  cached: {hpo['n_cached']} of the complete trials reused stored results (not trained)")
    warm = hpo.get("warm_start")
    if warm:
        if not warm.get("enabled"):
            lines.append("  warm start: off")
        elif warm.get("n_seeded"):
            how = "this data" if warm.get("matched_by") == "dataset" else "a table with the same columns"
            lines.append(f"  warm start: {warm['n_seeded']} trials from earlier studies of {how}")
        else:
            lines.append("  warm start: no earlier study of this data" if warm.get("matched_by") is None
                         else "  warm start: 0 trials (the study was seeded before)")
    for p in hpo.get("phases") or []:
        lines.append(f"  phase {p['phase']}: trials {p['start_trial']}-{p['end_trial']}, best {fmt(p['best_value'])}"
                     + (f" (narrowed around trial {p['best_before']['trial']})" if p.get("best_before") else ""))
    if hpo.get("scheme"):
        why = f": {hpo['scheme_reason']}" if hpo.get("scheme_reason") else ""
        lines.append(f"  scheme {hpo['scheme']}{why}")
    selected = hpo.get("selection")
    if selected and selected.get("used_trial") != selected.get("best_trial"):
        lines.append(f"  final model: trial {selected.get('used_trial')} instead of the best by mean, "
                     f"{selected.get('best_trial')}: {selected.get('reason')}")
    families = hpo.get("families") or {}
    if families:
        lines.append(f"  families ({hpo.get('metric')}, best score each reached):")
        for name, s in families.items():
            mark = " <- chosen" if name == hpo.get("chosen_family") else ""
            tried = f"{s.get('n_trials')} trials" + (f", dropped ({s.get('n_dropped')} pruned unfitted)"
                                                      if s.get("dropped") else "")
            lines.append(f"    {name:22s} {fmt(s.get('best_value')):>8s}  ({tried}){mark}")
    lines += _pareto_lines(hpo)
    members = hpo.get("ensemble") or []
    if members:
        blend = hpo.get("blend")
        if blend and blend.get("deployed"):
            lines.append(f"  final model: a blend of {len(members)} trials, validation {hpo.get('metric')} "
                         f"{fmt(blend.get('value'))} against {fmt(blend.get('single_value'))} for the best alone:")
            lines += [f"    trial {m.get('number'):<5} {m.get('algorithm') or '':22s} weight {m.get('weight', 0):.2f}  "
                      f"(alone {fmt(m.get('value'))})" for m in members]
        else:
            lines.append(f"  final model: the average of the {len(members)} best configurations, trials "
                         + ", ".join(str(m.get("number")) for m in members)
                         + f" (validation {hpo.get('metric')} " + ", ".join(fmt(m.get("value")) for m in members) + ")")
    blend = hpo.get("blend")
    if blend and not blend.get("deployed"):
        need = "" if blend.get("needed_s") is None else f" (about {blend['needed_s']:.1f} s"
        need += "" if not need or blend.get("left_s") is None else f", {max(0.0, blend['left_s']):.1f} s left)"
        lines.append(f"  a blend of the best trials scored {fmt(blend.get('value'))} (best alone "
                     f"{fmt(blend.get('single_value'))}), but its final fits did not fit in the time left{need}")
    swap = hpo.get("trial_for_time")
    if swap:
        lines.append(f"  final model: trial {swap.get('used_trial')} instead of the best, {swap.get('best_trial')}: "
                     f"{swap.get('reason')}")
    return lines + _analysis_lines(hpo.get("analysis"))


def _pareto_lines(hpo: dict[str, Any]) -> list[str]:
    """A multi-objective study: the front (best metric first) and the pick rule's choice."""
    front, pick = hpo.get("pareto_front") or [], hpo.get("pick")
    if not pick:
        return []
    names = list(pick["values"])
    lines = [f"  pareto front ({len(front)} points; latency in ms per 1,000 rows, size in bytes):",
             "    " + f"{'trial':>6s} " + " ".join(f"{n:>12s}" for n in names) + "  family"]
    for p in front[:12]:
        mark = " <- picked" if p["number"] == pick["number"] else ""
        lines.append("    " + f"{p['number']:>6d} " + " ".join(f"{p['values'][n]:>12.5g}" for n in names)
                     + f"  {p.get('family') or hpo.get('algorithm') or '-'}{mark}")
    if len(front) > 12:
        lines.append(f"    ... {len(front) - 12} more in --output-json")
    lines.append(f"  pick rule {pick['rule']!r}, tolerance {pick['tolerance']:g} of the best {names[0]} "
                 f"({pick['best_metric']:.5g}, trial {pick['best_metric_number']}): trial {pick['number']} is trained")
    return lines


def _analysis_lines(analysis: dict[str, Any] | None) -> list[str]:
    """Convergence, the top importances and the recommendations of the study's analysis."""
    if not analysis or "error" in analysis:
        return [f"  analysis failed: {analysis['error']}"] if analysis else []
    lines = []
    summary = (analysis.get("convergence") or {}).get("summary")
    if summary:
        lines.append(f"  convergence: {summary}")
    top = list((analysis.get("importances") or {}).items())[:5]
    if top:
        lines.append("  importance: " + ", ".join(f"{name} {value:.2f}" for name, value in top))
    for rec in analysis.get("recommendations") or []:
        if rec.get("kind") not in ("still_improving", "plateaued"):  # said by the convergence line
            lines.append(f"  recommendation: {rec.get('message')}")
    return lines


def print_summary(out: dict[str, Any], *, command: str) -> None:
    """The human summary of a ``train`` (a run of the graph) or ``tune`` (a study) result."""
    hpo = out.get("hpo") or {}
    metric = hpo.get("metric") or out.get("metric")
    print()
    if command == "train":
        print(f"  run {out.get('run_id', '-')} (thread {out.get('thread_id', '-')}): {out.get('status')}")
    else:
        print(f"  study {out.get('study_name', '-')}: {out.get('status')}")
    for note in out.get("warnings") or []:
        print(f"  warning: {note}")
    for col, why in (out.get("leak_suspects") or {}).items():
        print(f"  warning: column {col!r} alone predicts the target ({why}); if it is derived from the target or "
              f"known only after the outcome, it leaks: leave it out with --drop-columns {col}")
    if out.get("dropped_columns"):
        print(f"  dropped columns: {', '.join(f'{k} ({shorten(v)})' for k, v in out['dropped_columns'].items())}")
    if out.get("split_sizes"):
        print(f"  rows: {out['split_sizes']}")
    if hpo:
        for line in _study_lines(hpo, named=command == "train"):
            print(line)
    tm, dm = out.get("test_metrics") or {}, out.get("defaults_test_metrics") or {}
    if tm or hpo:
        rows = []
        if hpo.get("best_value") is not None:
            rows.append((f"val {metric}", hpo.get("defaults_value"), hpo.get("best_value")))
        rows += [(f"test {k}", dm.get(k), tm.get(k)) for k in tm]
        cmp = hpo.get("comparison") or {}
        width = max([18] + [len(name) + 1 for name, _, _ in rows])
        print()
        if cmp:
            print(f"  {'metric':{width}s} {'defaults':>10s} {'random':>10s} {'tuned':>10s}")
            for name, defaults, tuned in rows:
                rnd = cmp.get("random") if name == f"val {metric}" else (
                    cmp.get("test_random") if name == f"test {metric}" else None)
                print(f"  {name:{width}s} {fmt(defaults):>10s} {fmt(rnd):>10s} {fmt(tuned):>10s}")
            print(f"  (random: a random search with the same budget, {cmp.get('budget')}; "
                  f"{cmp.get('random_trials')} trials in {float(cmp.get('random_seconds') or 0):.1f} s)")
        else:
            print(f"  {'metric':{width}s} {'defaults':>10s} {'tuned':>10s}")
            for name, defaults, tuned in rows:
                print(f"  {name:{width}s} {fmt(defaults):>10s} {fmt(tuned):>10s}")
        deployed = (out.get("training") or {}).get("deployed")
        if tm and deployed:
            print(f"  (test: models fitted on train+val; the saved model was then refit on all "
                  f"{deployed.get('fit_rows')} rows)")
    if out.get("model_path"):
        print(f"\n  model: {out['model_path']}")
    if out.get("mlflow_run_id"):
        print(f"  mlflow run: {out['mlflow_run_id']}")
    if out.get("mlflow_model_uri"):
        print(f"  mlflow model: {out['mlflow_model_uri']}")
    if out.get("mlflow_error"):
        print(f"  mlflow: NOT RECORDED: {out['mlflow_error']}")
    timings = out.get("timings") or {}
    if timings.get("total") is not None:
        parts = ", ".join(f"{k} {v:.1f}" for k, v in timings.items() if k != "total")
        print(f"  time: {timings['total']:.1f} s ({parts})")
    if out.get("best_params"):
        print(f"  best params: {json.dumps(out['best_params'], default=str)}")


def write_json(path: Path | None, out: dict[str, Any]) -> None:
    """Write ``out`` to ``path`` atomically (a reader never sees half a file)."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(out, f, indent=2, default=str)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
