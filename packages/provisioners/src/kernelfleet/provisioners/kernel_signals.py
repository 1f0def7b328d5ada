"""Pure: which signal numbers ``send_signal`` carries to a kernel by name (protocol 2.2), and what it says when not.

jupyter_client hands a provisioner signal *numbers* of the server's own platform; the comm port carries names
(kernelfleet.protocol.signals), so a number is named here, on the host whose numbering it is. Every engine's
provisioner shares RemoteProvisionerBase.send_signal, which calls these before and after the request; the messages
name the kernel and the signal, and for a refusal the launcher's own reason or the launcher version that is needed.
"""

from __future__ import annotations

import signal

from kernelfleet.protocol.signals import ALLOWED_SIGNALS, FIRST_LAUNCHERS, NOT_SUPPORTED, OWN_OPS, UNKNOWN_OP


class SignalNotDelivered(RuntimeError):
    """``send_signal`` did not deliver the signal; the message names the kernel, the signal and why."""


def signal_label(signum: int) -> str:
    """``SIGUSR1 (10)``, or ``signal 99`` for a number that is no signal here."""
    try:
        return f"{signal.Signals(signum).name} ({int(signum)})"
    except ValueError:
        return f"signal {signum}"


def carried_name(kernel_id: str, signum: int) -> str:
    """The allowed name the comm port carries for ``signum``, or SignalNotDelivered saying why it carries none."""
    carried = ", ".join(ALLOWED_SIGNALS)
    try:
        name = signal.Signals(signum).name
    except ValueError:
        raise SignalNotDelivered(f"Kernel {kernel_id}: signal {signum} is no signal on this server's platform; "
                                 f"nothing was sent (kernels can be sent {carried})") from None
    if name in ALLOWED_SIGNALS:
        return name
    if name in OWN_OPS:  # send_signal takes these itself; reached only by a caller that bypasses it
        raise SignalNotDelivered(f"Kernel {kernel_id}: {signal_label(signum)} is sent as the comm port's "
                                 f"{OWN_OPS[name]} request, not as a signal")
    raise SignalNotDelivered(
        f"Kernel {kernel_id}: {signal_label(signum)} was not delivered: the launch protocol carries {carried} to a "
        "kernel by name, and SIGINT, SIGTERM, SIGKILL as interrupt, terminate and kill; no other signal"
    )


def refused_message(kernel_id: str, name: str, error: str, launcher: str) -> str:
    """The launcher answered ``ok:false`` to the signal op: what that means for the operator.

    ``launcher`` is the report's "launcher" field ("python/0.1.0"), empty when the launcher did not say. A 2.0 or
    2.1 launcher answers "unknown op": the message names the first version of that launcher which carries signals."""
    who = f"the kernel's launcher ({launcher})" if launcher else "the kernel's launcher"
    if error == UNKNOWN_OP:
        language = launcher.partition("/")[0]
        first = FIRST_LAUNCHERS.get(language)
        needed = (f"{language}/{first} or later" if first else
                  "a Kernel Fleet launcher of protocol 2.2 (python, r, scala 0.2.0 or later)")
        return (f"Kernel {kernel_id}: {name} was not delivered: {who} predates protocol 2.2, which carries signals "
                f"other than SIGINT, SIGTERM and SIGKILL; it needs {needed}: rebuild the kernel's image or reinstall "
                "its kernelspec's launcher with this Kernel Fleet")
    if error == NOT_SUPPORTED:
        return (f"Kernel {kernel_id}: {name} was not delivered: {who} does not carry it (docs/protocol.md, "
                "section 4, lists what each launcher refuses and why)")
    return f"Kernel {kernel_id}: {name} was not delivered: {who} refused it: {error}"
