"""Real OpenSSH daemons on loopback addresses, one per address, standing in for a cluster of SSH hosts.

Each "host" is its own ``/usr/sbin/sshd -D`` with its own generated host key, so one can be stopped
to test failover and each has a distinct known_hosts entry. Everything lives in a private
directory: the system's host keys, ``/root/.ssh`` and ``/etc/ssh`` are never touched. Shared by the
test fixtures and ``tools/bench/ssh_start.py``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))  # also when tools/bench imports this
from daemon_process import stop_process, wait_listening

SSHD = Path(os.environ.get("KF_SSHD", "/usr/sbin/sshd"))
SSH_KEYGEN = os.environ.get("KF_SSH_KEYGEN", "ssh-keygen")
DEFAULT_ADDRESSES = ("127.0.0.2", "127.0.0.3", "127.0.0.4")


class SshdMissing(RuntimeError):
    """OpenSSH server or ssh-keygen is not installed; the message says what to install."""


@dataclass
class SshHost:
    address: str
    port: int
    config: Path
    host_key: Path
    process: subprocess.Popen[bytes] | None = None
    prefix: tuple[str, ...] = ()  # what sshd runs under, e.g. ("ip", "netns", "exec", name) for a network namespace
    env: dict[str, str] | None = None  # sshd's environment when not ours (e.g. KRB5_CONFIG, KRB5_KTNAME)

    def known_hosts_line(self) -> str:
        public = Path(f"{self.host_key}.pub").read_text().split()
        return f"[{self.address}]:{self.port} {public[0]} {public[1]}\n"

    def start(self) -> None:
        if self.process is not None and self.process.poll() is None:
            return
        self.process = subprocess.Popen([*self.prefix, str(SSHD), "-D", "-e", "-f", str(self.config)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=self.env)
        wait_listening("sshd", self.address, self.port, self.process)

    def stop(self) -> None:
        """Stop the daemon (listener and its running sessions): the host is down."""
        if self.process is None:
            return
        stop_process(self.process)
        self.process = None


@dataclass
class SshCluster:
    root: Path
    client_key: Path
    known_hosts: Path
    hosts: list[SshHost] = field(default_factory=list)

    @property
    def port(self) -> int:
        return self.hosts[0].port

    @property
    def addresses(self) -> list[str]:
        return [h.address for h in self.hosts]

    def host(self, address: str) -> SshHost:
        return next(h for h in self.hosts if h.address == address)

    def provisioner_config(self) -> dict[str, object]:
        """The kernelspec config that reaches these hosts as root with the generated key."""
        return {
            "remote_hosts": self.addresses,
            "ssh_port": self.port,
            "ssh_user": "root",
            "ssh_key_files": [str(self.client_key)],
            "known_hosts": str(self.known_hosts),
        }

    def stop(self) -> None:
        for host in self.hosts:
            host.stop()


def check_tools() -> None:
    if not SSHD.exists():
        raise SshdMissing(f"{SSHD} is missing: install Debian's openssh-server (tools/setup-machine does)")
    if shutil.which(SSH_KEYGEN) is None:
        raise SshdMissing("ssh-keygen is missing: install Debian's openssh-client (tools/setup-machine does)")


def free_port(addresses: tuple[str, ...]) -> int:
    """A port free on every address, so one ssh_port serves all hosts."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind((addresses[0], 0))
            port = probe.getsockname()[1]
        if all(_bindable(a, port) for a in addresses):
            return port
    raise RuntimeError(f"no port is free on all of {addresses}")


def _bindable(address: str, port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((address, port))
        except OSError:
            return False
    return True


def keygen(path: Path, comment: str) -> None:
    subprocess.run([SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)], check=True)


def start_cluster(root: Path, addresses: tuple[str, ...] = DEFAULT_ADDRESSES, prefix: tuple[str, ...] = (),
                  port: int | None = None, extra_config: str = "", env: dict[str, str] | None = None) -> SshCluster:
    """Generate keys and configs under ``root`` and start one sshd per address (each under ``prefix``; ``port``
    for addresses this network namespace cannot bind to probe a free one). ``extra_config`` lines come first, so
    they override the defaults (sshd keeps a keyword's first value); ``env`` is the daemons' environment."""
    check_tools()
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # the privilege-separation directory sshd requires
    root.mkdir(parents=True, exist_ok=True)
    client_key = root / "client_ed25519"
    keygen(client_key, "kernelfleet-test-client")
    authorized = root / "authorized_keys"
    authorized.write_text(Path(f"{client_key}.pub").read_text())
    port = port or free_port(addresses)
    cluster = SshCluster(root=root, client_key=client_key, known_hosts=root / "known_hosts")
    for address in addresses:
        host_key = root / f"host_{address}_ed25519"
        keygen(host_key, f"kernelfleet-test-host-{address}")
        config = root / f"sshd_{address}.conf"
        config.write_text(
            extra_config +
            f"ListenAddress {address}:{port}\n"
            f"HostKey {host_key}\n"
            f"PidFile {root / f'sshd_{address}.pid'}\n"
            f"AuthorizedKeysFile {authorized}\n"
            "StrictModes no\nUsePAM no\nPermitRootLogin prohibit-password\nPubkeyAuthentication yes\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nAllowTcpForwarding yes\n"
            "MaxSessions 64\nMaxStartups 64:30:128\nLogLevel ERROR\nPrintMotd no\nUseDNS no\n"
        )
        cluster.hosts.append(SshHost(address=address, port=port, config=config, host_key=host_key, prefix=prefix,
                                     env=env))
    cluster.known_hosts.write_text("".join(h.known_hosts_line() for h in cluster.hosts))
    try:
        for host in cluster.hosts:
            host.start()
    except BaseException:
        cluster.stop()
        raise
    return cluster
