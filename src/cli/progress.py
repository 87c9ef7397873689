"""The tuning progress on stderr, fed by the tuner's per-trial events.

On a terminal it is a tqdm bar: over trials when the study has a size (``--n-trials``), over
seconds when only ``--timeout`` bounds it (the trial count then goes beside the bar), a plain
counter otherwise. In a log file (stderr not a terminal) a bar's carriage returns would make one
endless line, so it writes a plain line about every tenth of the study (or every 10 s), never one
per trial.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any, TextIO

from tqdm import tqdm

__all__ = ["Progress"]

#: seconds between two progress lines in a log file when the study has no size.
LOG_EVERY_S = 10.0


def _best(value: Any) -> str:
    return f"{value:.5f}" if isinstance(value, (int, float)) else "-"


class Progress:
    """Progress of one study. ``update`` takes the tuner's ``study_start`` and ``trial`` events."""

    def __init__(self, *, n_trials: int | None, timeout: float | None, enabled: bool,
                 stream: TextIO | None = None) -> None:
        self.n_trials = n_trials
        self.timeout = None if n_trials else timeout
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.t0 = time.monotonic()
        self._bar: tqdm | None = None
        self._last_line = 0.0
        self._last_step = -1

    # -- events ----------------------------------------------------------------------------------
    def update(self, event: dict[str, Any]) -> None:
        if not self.enabled or not isinstance(event, dict):
            return
        kind = event.get("event")
        if kind == "study_start":
            self.t0 = time.monotonic()  # the study's own time, not the loading before it
            self.n_trials = event.get("n_trials") or self.n_trials
            if self.n_trials:
                self.timeout = None
            self._show(int(event.get("n_done") or 0), event)
        elif kind == "trial":
            self._show(int(event.get("n_done") or 0), event)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    # -- rendering -------------------------------------------------------------------------------
    @staticmethod
    def _postfix(event: dict[str, Any]) -> str:
        parts = [f"best={_best(event.get('best_value'))}"]
        state = event.get("state")
        if state:
            # a failed trial names why ("deadline": cut by the study's end, not a broken config)
            reason = str(event.get("fail_reason") or "").split(":")[0].strip()
            parts.append(f"last={state}({reason})" if state == "FAIL" and reason else f"last={state}")
        return ", ".join(parts)

    def _show(self, done: int, event: dict[str, Any]) -> None:
        elapsed = time.monotonic() - self.t0
        if self.tty:
            self._bar_update(done, elapsed, event)
        else:
            self._log_line(done, elapsed, event)

    def _width(self) -> dict[str, Any]:
        """Follow the terminal's width; a terminal that reports no size (a bare pty: tqdm would then
        draw nothing) gets 100 columns and 24 rows."""
        try:
            columns = os.get_terminal_size(self.stream.fileno()).columns
        except (AttributeError, OSError, ValueError):
            columns = 0
        return {"dynamic_ncols": True} if columns > 0 else {"ncols": 100, "nrows": 24}

    def _bar_update(self, done: int, elapsed: float, event: dict[str, Any]) -> None:
        if self._bar is None:
            common: dict[str, Any] = {"desc": "  tuning", "file": self.stream, "leave": True, **self._width()}
            if self.n_trials:
                self._bar = tqdm(total=self.n_trials, unit="trial", **common)
            elif self.timeout:
                self._bar = tqdm(total=round(self.timeout), unit="s", **common,
                                 bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s [{elapsed}{postfix}]")
            else:
                self._bar = tqdm(unit="trial", **common)
        bar = self._bar
        position = min(elapsed, float(bar.total)) if self.timeout and not self.n_trials else done
        if bar.total is not None:
            position = min(position, bar.total)
        bar.n = position
        postfix = self._postfix(event)
        bar.set_postfix_str(postfix if self.n_trials else f"trials={done}, {postfix}", refresh=False)
        bar.refresh()

    def _log_line(self, done: int, elapsed: float, event: dict[str, Any]) -> None:
        if self.n_trials:
            step = done * 10 // self.n_trials  # tenths of the study
            if step == self._last_step and done != self.n_trials:
                return
            self._last_step = step
            count = f"{done}/{self.n_trials} trials"
        else:
            if self._last_line and elapsed - self._last_line < LOG_EVERY_S:
                return
            self._last_line = elapsed
            count = f"{done} trials" + (f", {elapsed:.0f}/{self.timeout:.0f} s" if self.timeout else "")
        self.stream.write(f"  tuning {count}, {self._postfix(event)}, {elapsed:.1f} s\n")
        self.stream.flush()
