"""A second "machine" on this one: a network namespace joined to ours by a veth pair, which a test can cut.

Only addresses of our own are used: a /30 of 10.250.0.0/16 on the veth pair, and the namespace's loopback.
Nothing else on the machine is touched; the cut is an iptables DROP on the namespace's end of the pair,
inside the namespace, so packets vanish as in a real partition (no reset, no unreachable error).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass


class NetnsMissing(RuntimeError):
    """``ip`` or ``iptables`` is missing, or namespaces cannot be made here; the message says which."""


def run(*argv: str) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise NetnsMissing(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


@dataclass
class Netns:
    """Namespace ``name`` at ``inner_ip``, reached from here through ``outer_ip`` on veth ``outer_dev``."""

    name: str
    outer_dev: str
    inner_dev: str
    outer_ip: str
    inner_ip: str
    cut_now: bool = False

    @classmethod
    def create(cls) -> Netns:
        for tool in ("ip", "iptables"):
            if shutil.which(tool) is None:
                raise NetnsMissing(f"{tool} is missing: install Debian's iproute2 and iptables (tools/setup-machine)")
        pid = os.getpid()
        subnet = pid % 16000  # a /30 of 10.250.0.0/16 of this process's own
        base = f"10.250.{subnet // 64}.{(subnet % 64) * 4}"
        prefix, last = base.rsplit(".", 1)
        ns = cls(name=f"kff-{pid}", outer_dev=f"kffo{pid}"[:15], inner_dev=f"kffi{pid}"[:15],
                 outer_ip=f"{prefix}.{int(last) + 1}", inner_ip=f"{prefix}.{int(last) + 2}")
        try:
            run("ip", "netns", "add", ns.name)
            run("ip", "link", "add", ns.outer_dev, "type", "veth", "peer", "name", ns.inner_dev)
            run("ip", "link", "set", ns.inner_dev, "netns", ns.name)
            run("ip", "addr", "add", f"{ns.outer_ip}/30", "dev", ns.outer_dev)
            run("ip", "link", "set", ns.outer_dev, "up")
            ns.exec("ip", "addr", "add", f"{ns.inner_ip}/30", "dev", ns.inner_dev)
            ns.exec("ip", "link", "set", ns.inner_dev, "up")
            ns.exec("ip", "link", "set", "lo", "up")
        except NetnsMissing:
            ns.destroy()
            raise
        return ns

    @property
    def prefix(self) -> tuple[str, ...]:
        """Prepend to a command to run it inside the namespace."""
        return ("ip", "netns", "exec", self.name)

    def exec(self, *argv: str) -> str:
        return run(*self.prefix, *argv)

    def cut(self) -> None:
        """Drop every packet between the namespace and the rest of the machine (both directions)."""
        self.exec("iptables", "-I", "INPUT", "-i", self.inner_dev, "-j", "DROP")
        self.exec("iptables", "-I", "OUTPUT", "-o", self.inner_dev, "-j", "DROP")
        self.cut_now = True

    def heal(self) -> None:
        if not self.cut_now:
            return
        self.exec("iptables", "-D", "INPUT", "-i", self.inner_dev, "-j", "DROP")
        self.exec("iptables", "-D", "OUTPUT", "-o", self.inner_dev, "-j", "DROP")
        self.cut_now = False

    def pids(self) -> list[int]:
        out = subprocess.run(["ip", "netns", "pids", self.name], capture_output=True, text=True, check=False).stdout
        return [int(p) for p in out.split()]

    def destroy(self) -> None:
        """Kill what still runs inside, delete the namespace (its veth end and the peer go with it)."""
        for pid in self.pids():
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        subprocess.run(["ip", "link", "del", self.outer_dev], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, check=False)
