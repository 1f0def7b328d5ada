"""The pure parts of the SSH path: host order, the launcher strategy a host gets and the launch command's quoting
(no hosts needed)."""

from __future__ import annotations

import shlex
import subprocess

import pytest

from kernelfleet.provisioners.ssh.command import LAUNCH_SCRIPT, RemoteEnvError, check_env, encode_env, launch_command
from kernelfleet.provisioners.ssh.distributed import DistributedProvisioner
from kernelfleet.provisioners.ssh.host_launchers import (
    LocalHostLauncher,
    SshHostLauncher,
    host_launcher_for,
    is_local_host,
)
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


@pytest.mark.parametrize(("host", "local"), [("localhost", True), (" LOCALHOST ", True), ("127.0.0.1", True),
                                             ("::1", True), ("127.0.0.2", False), ("node-1", False)])
def test_the_host_chooses_the_launcher_strategy_once(host: str, local: bool) -> None:
    """Local names run the launcher as a local process, every other name over SSH; the provisioner asks the
    strategy it got with the host and never branches on the kind again."""
    provisioner = DistributedProvisioner(kernel_id="k-1", kernel_spec=None, parent=None,
                                         remote_hosts=[host.strip()])
    launcher = host_launcher_for(provisioner, host)
    assert isinstance(launcher, LocalHostLauncher if local else SshHostLauncher)
    assert is_local_host(host) is local
    assert launcher.diagnostics() == "the launcher was never started"
    assert provisioner.is_remote is False and provisioner.local_process is None and provisioner.tunnels is None


def test_an_ssh_launcher_talks_to_its_host_only_about_loopback_addresses() -> None:
    provisioner = DistributedProvisioner(kernel_id="k-1", kernel_spec=None, parent=None, tunneling=False)
    launcher = host_launcher_for(provisioner, "node-1")
    assert [launcher.kernel_address(ip) for ip in ("0.0.0.0", "127.0.0.1", "::1", "10.0.0.5")] == [
        "node-1", "node-1", "node-1", "10.0.0.5"]
    assert launcher.info() == {"launcher_pid": None, "remote_log": None, "tunnel": None}
    local = host_launcher_for(provisioner, "localhost")
    assert local.kernel_address("10.0.0.5") == "10.0.0.5"  # no process: the report's address stands
