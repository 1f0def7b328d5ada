"""kernel_signals: which numbers send_signal carries by name, and what it says when a launcher refuses one.
(Delivery itself is tested on real kernels: tests/e2e/test_signals.py and the Docker, Kubernetes and SSH tests.)"""

from __future__ import annotations

import signal

import pytest

from kernelfleet.protocol.signals import ALLOWED_SIGNALS, NOT_ALLOWED, NOT_SUPPORTED, UNKNOWN_OP
from kernelfleet.provisioners.kernel_signals import SignalNotDelivered, carried_name, refused_message


@pytest.mark.parametrize("name", ALLOWED_SIGNALS)
def test_an_allowed_number_is_carried_by_its_name_on_this_platform(name: str) -> None:
    assert carried_name("k-1", int(signal.Signals[name])) == name


@pytest.mark.parametrize(("signum", "says"), [
    (signal.SIGSEGV, f"Kernel k-1: SIGSEGV ({int(signal.SIGSEGV)}) was not delivered: the launch protocol carries"),
    (signal.SIGINT, "Kernel k-1: SIGINT (2) is sent as the comm port's interrupt request, not as a signal"),
    (signal.SIGKILL, "Kernel k-1: SIGKILL (9) is sent as the comm port's kill request"),
    (-3, "Kernel k-1: signal -3 is no signal on this server's platform; nothing was sent"),
    (4242, "Kernel k-1: signal 4242 is no signal on this server's platform"),
])
def test_anything_else_is_refused_before_sending(signum: int, says: str) -> None:
    with pytest.raises(SignalNotDelivered) as refused:
        carried_name("k-1", signum)
    assert str(refused.value).startswith(says)


@pytest.mark.parametrize(("launcher", "needed"), [
    ("python/0.1.0", "it needs python/0.2.0 or later"),
    ("r/0.1.0", "it needs r/0.2.0 or later"),
    ("scala/0.1.0", "it needs scala/0.2.0 or later"),
    ("", "it needs a Kernel Fleet launcher of protocol 2.2 (python, r, scala 0.2.0 or later)"),
    ("custom/3", "it needs a Kernel Fleet launcher of protocol 2.2"),
])
def test_an_older_launcher_is_told_which_version_carries_signals(launcher: str, needed: str) -> None:
    message = refused_message("k-1", "SIGUSR1", UNKNOWN_OP, launcher)
    assert message.startswith("Kernel k-1: SIGUSR1 was not delivered: the kernel's launcher")
    assert "predates protocol 2.2" in message and needed in message
    assert (f"({launcher})" in message) == bool(launcher)


def test_a_launcher_refusal_keeps_the_launchers_reason() -> None:
    assert "does not carry it" in refused_message("k-1", "SIGSTOP", NOT_SUPPORTED, "scala/0.2.0")
    assert refused_message("k-1", "SIGHUP", NOT_ALLOWED, "r/0.2.0") == (
        "Kernel k-1: SIGHUP was not delivered: the kernel's launcher (r/0.2.0) refused it: signal not allowed")
