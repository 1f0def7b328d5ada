"""The pure parts of the SSH path: host order and the launch command's quoting (no hosts needed)."""

from __future__ import annotations

import shlex
import subprocess

import pytest

from kernelfleet.provisioners.ssh.command import LAUNCH_SCRIPT, RemoteEnvError, check_env, encode_env, launch_command
from kernelfleet.provisioners.ssh.hosts import HostBalancer, balancer_for


def test_round_robin_takes_turns_and_offers_the_rest_as_fallbacks() -> None:
    balancer = HostBalancer(["a", "b", "c"])
    assert [balancer.candidates("round-robin") for _ in range(4)] == [
        ["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"], ["a", "b", "c"]]


def test_least_connection_prefers_the_emptiest_host_and_counts_releases() -> None:
    balancer = HostBalancer(["a", "b", "c"])
    for host in ("a", "a", "b"):
        balancer.acquire(host)
    assert balancer.candidates("least-connection")[0] == "c"
    balancer.release("a")
    balancer.release("a")
    balancer.release("a")  # never below zero
    assert balancer.kernels["a"] == 0
    assert balancer.candidates("least-connection")[:2] in (["a", "c"], ["c", "a"])
    with pytest.raises(ValueError, match="unknown load-balancing algorithm"):
        balancer.candidates("bogus")


def test_balancers_are_per_host_list() -> None:
    assert balancer_for(["x", "y"]) is balancer_for(["x", "y"])
    assert balancer_for(["x", "y"]) is not balancer_for(["y", "x"])


def test_the_launch_command_parses_back_to_exactly_its_words() -> None:
    argv = ["/opt/py", "-c", "print('hi'); $(x) `y` \"z\"", "a b"]
    words = shlex.split(launch_command(argv, "kid-1", "/var/log/k f"))
    assert words == ["exec", "/bin/sh", "-c", LAUNCH_SCRIPT, "kernelfleet-launch", "/var/log/k f", "kid-1", "", *argv]


def test_the_script_exports_values_without_evaluating_them() -> None:
    """The env-reading loop of LAUNCH_SCRIPT, run by /bin/sh on its stdin payload."""
    env = {"KERNEL_A": "x'; touch /tmp/never; echo '", "SPEC_B": "$(id) `id` $HOME \\n"}
    start = LAUNCH_SCRIPT.index("while IFS=")
    reader = LAUNCH_SCRIPT[start:LAUNCH_SCRIPT.index("done\n", start) + 5]  # just the while-read loop
    out = subprocess.run(["/bin/sh", "-c", reader + 'printf "%s|%s" "$KERNEL_A" "$SPEC_B"'],
                         input=encode_env(check_env("k", env, trusted_names=["SPEC_B"])), capture_output=True,
                         check=True)
    assert out.stdout.decode() == f"{env['KERNEL_A']}|{env['SPEC_B']}"


@pytest.mark.parametrize(("name", "value"), [("IFS", "x"), ("BAD NAME", "x"), ("BASH_FUNC_f%%", "() { id; }"),
                                             ("X", "a\nb"), ("KERNEL_X", "$(id)"), ("KERNEL_USERNAME", "a b")])
def test_check_env_refuses(name: str, value: str) -> None:
    with pytest.raises(RemoteEnvError):
        check_env("k", {name: value})
