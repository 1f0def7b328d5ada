"""Protocol 2.2's ``signal`` comm op (docs/protocol.md, section 4): which signals a launcher delivers, by name.

Gateway Provisioners sent any signal *number* to its launcher. Numbers differ across platforms (SIGUSR1 is 10 on
Linux, 30 on macOS), so the op names the signal, and only the signals below: each is one a kernel may reasonably
handle itself, and none can take the launcher or its comm port away from the server (the launcher signals its
kernel, never itself; the Scala launcher, whose kernel is its own JVM, refuses the ones that would stop it).
SIGINT, SIGTERM and SIGKILL keep their own ops (interrupt, terminate, kill) and are refused here.

The server checks a request against this list before it sends it, and every launcher checks it again (the Python
launcher with this module, the R and Scala launchers with their own copy, pinned by protocol-vectors-2.2.json).
The launcher's small supervisor imports it, so it imports nothing itself.
"""

from __future__ import annotations

SIGNAL_OP_MINOR = 2
# The signals the op carries, in the order the document and the vectors list them.
ALLOWED_SIGNALS = ("SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGCONT", "SIGSTOP", "SIGTSTP")
# Signals with ops of their own: a signal request for one of them is refused, never taken as that op.
OWN_OPS = {"SIGINT": "interrupt", "SIGTERM": "terminate", "SIGKILL": "kill"}

# The one-line errors a launcher answers (``{"ok":false,"error":...}``); the server turns them into messages.
NOT_A_NAME = "signal must be a name such as SIGUSR1"
NOT_ALLOWED = "signal not allowed"
NOT_SUPPORTED = "signal not supported by this launcher"
# What a 2.0 or 2.1 launcher answers to the op: it predates it.
UNKNOWN_OP = "unknown op"

# The first launcher versions that carry the op, by the language part of the report's "launcher" field.
FIRST_LAUNCHERS = {"python": "0.2.0", "r": "0.2.0", "scala": "0.2.0"}


class SignalRefused(ValueError):
    """A signal request this protocol does not carry; the message is one of the errors above."""


def checked_signal_name(value: object) -> str:
    """The request's ``signal`` field if it is an allowed name, else SignalRefused with the launcher's error.

    A number (or anything but a string) is refused as not a name; a string must be exactly one of
    ``ALLOWED_SIGNALS``: no lower case, no name without ``SIG``, no SIGINT/SIGTERM/SIGKILL."""
    if not isinstance(value, str):
        raise SignalRefused(NOT_A_NAME)
    if value not in ALLOWED_SIGNALS:
        raise SignalRefused(NOT_ALLOWED)
    return value
