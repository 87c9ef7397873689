"""One coroutine per ``hpo`` command: ``cmd_X(args, stopper, *, outage_s) -> result dict``."""

from __future__ import annotations

from .dashboard import cmd_dashboard
from .history import cmd_db, cmd_studies
from .report import cmd_report
from .train import cmd_train
from .tune import cmd_tune
from .worker import cmd_worker

__all__ = ["COMMANDS", "cmd_train", "cmd_tune", "cmd_worker", "cmd_studies", "cmd_db", "cmd_report", "cmd_dashboard"]

COMMANDS = {"train": cmd_train, "tune": cmd_tune, "worker": cmd_worker, "studies": cmd_studies, "db": cmd_db,
            "report": cmd_report, "dashboard": cmd_dashboard}
