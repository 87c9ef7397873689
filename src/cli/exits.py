"""Exit codes of ``hpo`` and the exceptions that choose them.

=====  ==========================================================================================
code   meaning
=====  ==========================================================================================
0      success
1      failure at run time (the reason is printed; an unreachable database among them)
2      bad input: an option, a file, the data or a resume that changes the run (the reason is printed)
130    interrupted by SIGINT (Ctrl-C); the way to resume is printed
143    stopped by SIGTERM (a container stop, a batch scheduler); the way to resume is printed
=====  ==========================================================================================
"""

from __future__ import annotations

import signal

__all__ = [
    "EXIT_OK",
    "EXIT_FAILURE",
    "EXIT_BAD_INPUT",
    "BadInput",
    "exit_code_for_signal",
]

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT = 0, 1, 2


class BadInput(Exception):
    """A user error found by the command line itself (exit code 2); the message names the option."""


def exit_code_for_signal(sig: signal.Signals) -> int:
    """The shell's convention for a process ended by ``sig``: 128 + its number (130 SIGINT, 143 SIGTERM)."""
    return 128 + int(sig)
