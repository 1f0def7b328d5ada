"""A real MIT Kerberos KDC on loopback with a throwaway realm, for the SPNEGO, YARN and GSSAPI SSH tests.

Everything lives in one private directory: its ``krb5.conf`` and ``kdc.conf`` (pointed at by ``KRB5_CONFIG`` and
``KRB5_KDC_PROFILE``), the database, and a keytab per principal; the machine's ``/etc/krb5.conf`` and
``/etc/krb5kdc`` are never read or touched. ``start_kdc`` creates the realm, adds the principals and starts
``krb5kdc`` in the foreground on a free TCP and UDP port of 127.0.0.1; ``KerberosRealm.kinit`` gets a ticket into a
private credential cache. Used by ``tests/conftest.py``'s ``kdc`` fixture (tests) and by whatever else needs a realm
(the YARN tests, benchmarks). Missing Debian packages raise ``KdcMissing`` with what to install, never a skip.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from daemon_process import stop_process, wait_listening

REALM = "KERNELFLEET.TEST"
TOOLS = {"krb5kdc": "krb5-kdc", "kdb5_util": "krb5-kdc", "kadmin.local": "krb5-admin-server", "kinit": "krb5-user",
         "kdestroy": "krb5-user"}
SBIN = ("/usr/sbin", "/usr/bin", "/sbin", "/bin")


class KdcMissing(RuntimeError):
    """The MIT Kerberos tools are not installed; the message says which Debian packages to install."""


def tool(name: str) -> str:
    path = shutil.which(name) or next((f"{d}/{name}" for d in SBIN if os.access(f"{d}/{name}", os.X_OK)), None)
    if path is None:
        raise KdcMissing(f"{name} is missing: install Debian's {TOOLS[name]} (tools/setup-machine does)")
    return path


def free_port() -> int:
    """A port free for both TCP and UDP on 127.0.0.1 (the KDC listens on both)."""
    for _ in range(50):
        with socket.socket() as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = tcp.getsockname()[1]
            with socket.socket(type=socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
        return port
    raise RuntimeError("no port is free for the KDC on 127.0.0.1")


@dataclass
class KerberosRealm:
    """A running (or stopped) throwaway realm; ``env`` is what a client or service of the realm needs."""

    root: Path
    realm: str
    port: int
    keytabs: dict[str, Path] = field(default_factory=dict)  # principal (without realm) -> its keytab
    process: subprocess.Popen[bytes] | None = None

    @property
    def krb5_conf(self) -> Path:
        return self.root / "krb5.conf"

    @property
    def env(self) -> dict[str, str]:
        """Variables that make libkrb5 use this realm (and nothing of the machine's)."""
        return {"KRB5_CONFIG": str(self.krb5_conf), "KRB5_KDC_PROFILE": str(self.root / "kdc.conf"),
                "KRB5RCACHETYPE": "none"}

    def principal(self, name: str) -> str:
        return f"{name}@{self.realm}"

    def keytab(self, name: str) -> Path:
        return self.keytabs[name]

    def add_principal(self, name: str) -> Path:
        """Add ``name`` (e.g. ``alice``, ``HTTP/localhost``) with a random key, exported to its own keytab."""
        keytab = self.root / f"{name.replace('/', '_')}.keytab"
        self._kadmin(f"addprinc -randkey {name}")
        self._kadmin(f"ktadd -k {keytab} {name}")
        self.keytabs[name] = keytab
        return keytab

    def add_password_principal(self, name: str, password: str) -> None:
        self._kadmin(f"addprinc -pw {password} {name}")

    def _kadmin(self, query: str) -> None:
        run([tool("kadmin.local"), "-r", self.realm, "-q", query], self.env)

    def kinit(self, name: str, ccache: Path, lifetime: str | None = None) -> dict[str, str]:
        """A ticket for ``name`` from its keytab into ``ccache``; returns the env a client needs to use it."""
        env = {**self.env, "KRB5CCNAME": f"FILE:{ccache}"}
        argv = [tool("kinit"), "-k", "-t", str(self.keytabs[name]), "-c", f"FILE:{ccache}"]
        if lifetime is not None:
            argv += ["-l", lifetime]
        run([*argv, self.principal(name)], env)
        return env

    def start(self) -> None:
        if self.process is not None and self.process.poll() is None:
            return
        env = {**os.environ, **self.env}
        self.process = subprocess.Popen([tool("krb5kdc"), "-n", "-r", self.realm, "-P", str(self.root / "kdc.pid")],
                                        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_listening("krb5kdc", "127.0.0.1", self.port, self.process)

    def stop(self) -> None:
        """Stop the KDC: clients then fail with libkrb5's "Cannot contact any KDC"."""
        if self.process is None:
            return
        stop_process(self.process)
        self.process = None


def run(argv: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(argv, env={**os.environ, **env}, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:3])} failed ({done.returncode}): {(done.stderr or done.stdout).strip()}")


def write_configs(root: Path, realm: str, port: int) -> None:
    """krb5.conf for clients and services, kdc.conf for the KDC: TCP only from clients, no DNS at all."""
    (root / "krb5.conf").write_text(
        "[libdefaults]\n"
        f"  default_realm = {realm}\n"
        "  dns_lookup_kdc = false\n  dns_lookup_realm = false\n  dns_canonicalize_hostname = false\n"
        "  rdns = false\n  udp_preference_limit = 1\n  ticket_lifetime = 1h\n  forwardable = true\n"
        "  max_retries = 1\n  kdc_timeout = 2s\n"
        "[realms]\n"
        f"  {realm} = {{\n    kdc = 127.0.0.1:{port}\n  }}\n"
        "[domain_realm]\n"
        f"  localhost = {realm}\n  .localhost = {realm}\n"
        "[logging]\n"
        f"  kdc = FILE:{root / 'kdc.log'}\n"
    )
    (root / "kdc.conf").write_text(
        "[kdcdefaults]\n"
        f"  kdc_listen = 127.0.0.1:{port}\n  kdc_tcp_listen = 127.0.0.1:{port}\n"
        "[realms]\n"
        f"  {realm} = {{\n"
        f"    database_name = {root / 'principal'}\n"
        f"    key_stash_file = {root / 'stash'}\n"
        f"    acl_file = {root / 'kadm5.acl'}\n"
        "    max_life = 1h\n    max_renewable_life = 1h\n"
        "  }\n"
    )
    (root / "kadm5.acl").write_text("")


def start_kdc(root: Path, principals: tuple[str, ...] = (), realm: str = REALM) -> KerberosRealm:
    """Create the realm under ``root``, add ``principals`` (each with a keytab) and start its KDC."""
    for name in TOOLS:
        tool(name)
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    write_configs(root, realm, port)
    kerberos = KerberosRealm(root=root, realm=realm, port=port)
    run([tool("kdb5_util"), "create", "-s", "-r", realm, "-P", "kernelfleet-test-master"], kerberos.env)
    for name in principals:
        kerberos.add_principal(name)
    kerberos.start()
    return kerberos
