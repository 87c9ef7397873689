"""The progress display (tqdm on a terminal, a few plain lines in a log), fed the tuner's events."""

from __future__ import annotations

import io
import re

from src.cli.progress import Progress


class _Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def _feed(progress: Progress, n: int, n_trials: int | None) -> None:
    progress.update({"event": "study_start", "n_trials": n_trials, "n_done": 0, "best_value": None})
    for i in range(1, n + 1):
        progress.update({"event": "trial", "n_done": i, "n_trials": n_trials, "state": "COMPLETE",
                         "best_value": 0.5 + i / 1000})
    progress.close()


def test_a_terminal_gets_a_bar_even_when_it_reports_no_size():
    stream = _Stream(tty=True)  # no fileno: like a pty of size 0x0, where tqdm drew nothing
    _feed(Progress(n_trials=12, timeout=None, enabled=True, stream=stream), 12, 12)
    assert "12/12" in stream.getvalue() and "best=0.51200" in stream.getvalue()


def test_a_time_bounded_study_shows_seconds_and_the_trial_count_never_n_over_zero():
    stream = _Stream(tty=True)
    _feed(Progress(n_trials=None, timeout=30, enabled=True, stream=stream), 74, None)
    text = stream.getvalue()
    assert "trials=74" in text and "/30 s" in text and not re.search(r"\b\d+/0\b", text), text[-300:]


def test_a_log_gets_a_line_per_tenth_of_the_study_not_per_trial():
    stream = _Stream(tty=False)
    _feed(Progress(n_trials=40, timeout=None, enabled=True, stream=stream), 40, 40)
    lines = stream.getvalue().splitlines()
    assert 10 <= len(lines) <= 11 and lines[-1].startswith("  tuning 40/40 trials") and "\r" not in stream.getvalue()
    stream = _Stream(tty=False)
    _feed(Progress(n_trials=None, timeout=30, enabled=True, stream=stream), 74, None)  # within 10 s: one line
    assert len(stream.getvalue().splitlines()) == 1 and "/0" not in stream.getvalue()


def test_quiet_prints_nothing():
    stream = _Stream(tty=True)
    _feed(Progress(n_trials=5, timeout=None, enabled=False, stream=stream), 5, 5)
    assert stream.getvalue() == ""


def test_a_failed_trial_names_its_reason_so_a_deadline_cut_does_not_read_as_a_broken_config():
    stream = _Stream(tty=True)
    progress = Progress(n_trials=3, timeout=None, enabled=True, stream=stream)
    progress.update({"event": "study_start", "n_trials": 3, "n_done": 0, "best_value": None})
    progress.update({"event": "trial", "n_done": 1, "state": "COMPLETE", "best_value": 0.9})
    progress.update({"event": "trial", "n_done": 2, "state": "FAIL", "best_value": 0.9,
                     "fail_reason": "exception: ValueError: bad input"})
    assert "last=FAIL(exception)" in stream.getvalue()
    progress.update({"event": "trial", "n_done": 3, "state": "FAIL", "best_value": 0.9, "fail_reason": "deadline"})
    progress.close()
    assert "last=FAIL(deadline)" in stream.getvalue()
