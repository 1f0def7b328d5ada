"""The launcher's voice: its logger, its one-line errors and exit statuses, shared by both of its phases.

Both the reporting phase (main.py, reporter.py) and the long-lived supervisor (supervisor.py, which must
stay small) import this; it needs nothing but ``logging``.
"""

from __future__ import annotations

import logging
import sys

EXIT_USAGE = 2
EXIT_FAILURE = 1
PROG = "kernelfleet-launcher"

log = logging.getLogger("kernelfleet.launcher")


def fail(message: str, status: int) -> int:
    """Print the launcher's one-line error and return the exit status to use."""
    print(f"{PROG}: error: {message}", file=sys.stderr, flush=True)
    return status


def setup_logging(level: int) -> None:
    """One stderr handler, the same line format in every phase of the launcher."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("[%(levelname).1s %(asctime)s %(name)s] %(message)s"))
    log.addHandler(handler)
    log.setLevel(level)
    log.propagate = False
