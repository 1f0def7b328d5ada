"""A private dockerd for the fault tests, so restarting "the" Docker daemon never touches the shared one.

Other suites (and other people) use the machine's dockerd at the same time; these tests start their
own daemon with its own data root, exec root, pidfile and socket, a bridge of its own and no iptables
rules (kernels use host networking), load the kernel image into it once per session, and point the
provisioners at it through ``DOCKER_HOST`` (aiodocker reads it when the shared Docker client is
made). The daemon must be given a bridge of its own: with ``--bridge=none`` dockerd deletes the link
named ``docker0`` when it starts, which is the shared daemon's bridge. A restart is what an operator's
``systemctl restart docker`` does: SIGTERM, then start again
on the same data root, with or without ``--live-restore``.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from kf_docker import DOCKER, IMAGE

DOCKERD = os.environ.get("KF_DOCKERD", shutil.which("dockerd") or "/usr/sbin/dockerd")


class DockerdMissing(RuntimeError):
    """dockerd or the docker CLI is not installed, or the kernel image is not in the shared daemon."""


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.unix_path)
        self.sock = sock


def ping(socket_path: str, timeout: float = 2.0) -> bool:
    """True when the daemon at ``socket_path`` answers ``GET /_ping`` with OK."""
    conn = _UnixHTTPConnection(socket_path, timeout)
    try:
        conn.request("GET", "/_ping")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


@dataclass
class PrivateDockerd:
    """One dockerd of our own; ``start``/``stop`` keep its data root, ``destroy`` removes everything."""

    root: Path
    name: str = field(default_factory=lambda: f"kf-faults-{os.getpid()}")
    process: subprocess.Popen[bytes] | None = None
    live_restore: bool = False

    @property
    def exec_root(self) -> Path:
        return Path("/run") / self.name  # short: containerd's sockets live below it

    @property
    def bridge(self) -> str:
        """This daemon's own bridge (Linux allows 15 characters)."""
        return f"kfbr{os.getpid() % 100000}"

    @property
    def socket_path(self) -> str:
        return f"/run/{self.name}.sock"

    @property
    def host(self) -> str:
        """The DOCKER_HOST value that reaches this daemon."""
        return f"unix://{self.socket_path}"

    @property
    def log_path(self) -> Path:
        return self.root / "dockerd.log"

    def argv(self) -> list[str]:
        argv = [
            DOCKERD, "--data-root", str(self.root / "data"), "--exec-root", str(self.exec_root),
            "--pidfile", str(self.exec_root / "dockerd.pid"), "-H", self.host,
            f"--bridge={self.bridge}", "--iptables=false", "--ip6tables=false", "--ip-forward=false", "--ip-masq=false",
            "--userland-proxy=false", "--storage-driver=overlay2",
        ]
        if self.live_restore:
            argv.append("--live-restore")
        return argv

    def start(self, live_restore: bool | None = None, within: float = 60.0) -> float:
        """Start the daemon and wait until it answers; returns the seconds that took."""
        if self.process is not None and self.process.poll() is None:
            raise RuntimeError(f"private dockerd {self.name} is already running")
        if live_restore is not None:
            self.live_restore = live_restore
        self.exec_root.mkdir(mode=0o700, exist_ok=True)
        if not Path("/sys/class/net", self.bridge).exists():
            subprocess.run(["ip", "link", "add", self.bridge, "type", "bridge"], capture_output=True, check=True)
        started = time.monotonic()
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                            start_new_session=True)
        while not ping(self.socket_path):
            if self.process.poll() is not None:
                raise RuntimeError(f"private dockerd exited with {self.process.returncode}:\n{self.log_tail()}")
            if time.monotonic() - started > within:
                raise RuntimeError(f"private dockerd did not answer within {within}s:\n{self.log_tail()}")
            time.sleep(0.05)  # a daemon coming up has no event to wait on; its socket is probed
        return time.monotonic() - started

    def stop(self, within: float = 60.0) -> None:
        """SIGTERM and wait: without live-restore dockerd stops its containers first, with it they keep running."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(within)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def restart(self, live_restore: bool | None = None) -> float:
        """Stop then start on the same data root; returns the seconds the API was down."""
        down = time.monotonic()
        self.stop()
        self.start(live_restore)
        return time.monotonic() - down

    def cli(self, *args: str, check: bool = True) -> str:
        done = subprocess.run([DOCKER, "-H", self.host, *args], capture_output=True, text=True, check=False)
        if check and done.returncode != 0:
            raise AssertionError(f"docker -H {self.host} {' '.join(args)} failed: {done.stderr.strip()}")
        return done.stdout

    def load_image(self, image: str = IMAGE) -> None:
        """Copy ``image`` from the shared daemon into this one (``docker save | docker load``)."""
        save = subprocess.Popen([DOCKER, "save", image], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert save.stdout is not None
        load = subprocess.run([DOCKER, "-H", self.host, "load", "-q"], stdin=save.stdout, capture_output=True,
                              check=False)
        save.stdout.close()
        save_err = save.stderr.read().decode(errors="replace") if save.stderr else ""
        if save.wait() != 0 or load.returncode != 0:
            raise DockerdMissing(f"could not copy {image} into the private dockerd: {save_err.strip()} "
                                 f"{load.stderr.decode(errors='replace').strip()} (build it with tools/build-images)")

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def destroy(self) -> None:
        """Remove every container, stop the daemon, unmount what it left mounted, delete its directories."""
        if self.process is not None and self.process.poll() is None:
            ids = self.cli("ps", "-aq", check=False).split()
            if ids:
                self.cli("rm", "-f", *ids, check=False)
        self.stop()
        for mount in reversed(_mounts_below((str(self.root), str(self.exec_root)))):
            subprocess.run(["umount", "-l", mount], capture_output=True, check=False)
        shutil.rmtree(self.exec_root, ignore_errors=True)
        shutil.rmtree(self.root, ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket_path)
        subprocess.run(["ip", "link", "delete", self.bridge], capture_output=True, check=False)


def _mounts_below(prefixes: tuple[str, ...]) -> list[str]:
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if any(point == p or point.startswith(p.rstrip("/") + "/") for p in prefixes):
            found.append(point)
    return found


def check_tools() -> None:
    if not Path(DOCKERD).exists():
        raise DockerdMissing(f"dockerd ({DOCKERD}) is not installed: install Debian's docker.io (tools/setup-machine)")
    if shutil.which(DOCKER) is None:
        raise DockerdMissing(f"the docker CLI ({DOCKER}) is not installed: run tools/setup-machine")
    if subprocess.run([DOCKER, "image", "inspect", IMAGE], capture_output=True, check=False).returncode != 0:
        raise DockerdMissing(f"the kernel image {IMAGE} is not in the shared dockerd: build it with tools/build-images")
