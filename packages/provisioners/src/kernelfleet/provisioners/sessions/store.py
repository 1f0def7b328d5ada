"""Where kernel sessions are kept between server runs: an interface, and the default, a file per kernel.

A session holds the kernel's HMAC key, its comm key and (with CurveZMQ) its secret key: whoever reads
it can drive the kernel. The file store therefore writes 0600 files into a 0700 directory it owns,
replaces them atomically (a crash mid-write leaves the previous version, never half a file), and
names files only by kernel ids that passed the kernel id check. Errors and log lines carry the kernel
id and the field's name, never a value from the file.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import stat
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from jupyter_core.paths import jupyter_runtime_dir
from traitlets import Unicode, default
from traitlets.config import LoggingConfigurable

from kernelfleet.protocol.constants import KERNEL_ID_PATTERN

SUFFIX = ".json"
FORMAT_VERSION = 1


class SessionError(ValueError):
    """A saved session that cannot be used; the message names the kernel (or file) and the field."""


@dataclass(frozen=True)
class KernelSession:
    """What a new server needs to take a running kernel over."""

    kernel_id: str
    kernel_name: str
    provisioner_name: str
    connection_info: dict[str, Any]
    provisioner_info: dict[str, Any]
    launch: dict[str, Any] = field(default_factory=dict)  # cwd and request KERNEL_* values, for restarts

    def to_json(self) -> str:
        return json.dumps({"version": FORMAT_VERSION, **asdict(self)}, indent=1, sort_keys=True)

    def claimed_ids(self) -> list[str]:
        """The ids under which the orphan sweep may find this kernel's objects: its own, and the warm-pool standby id
        of a kernel an R standby became in place (``standby_id`` in its provisioner info, ``pool.spec``)."""
        standby_id = self.provisioner_info.get("standby_id")
        valid = isinstance(standby_id, str) and KERNEL_ID_PATTERN.match(standby_id)
        return [self.kernel_id, standby_id] if valid else [self.kernel_id]

    @classmethod
    def from_json(cls, text: str, origin: str) -> KernelSession:
        """Parse and check a saved session; ``origin`` (a file name) names it in errors until its id is known."""
        try:
            raw = json.loads(text)
        except ValueError as err:
            raise SessionError(f"session {origin}: not JSON ({err.msg} at line {err.lineno})") from None
        if not isinstance(raw, dict):
            raise SessionError(f"session {origin}: not a JSON object")
        kernel_id = raw.get("kernel_id")
        if not isinstance(kernel_id, str) or not KERNEL_ID_PATTERN.match(kernel_id):
            raise SessionError(f"session {origin}: kernel_id is missing or not a valid kernel id")
        for name in ("kernel_name", "provisioner_name"):
            if not isinstance(raw.get(name), str) or not raw[name]:
                raise SessionError(f"Kernel {kernel_id}: saved session has no {name}")
        for name in ("connection_info", "provisioner_info"):
            if not isinstance(raw.get(name), dict):
                raise SessionError(f"Kernel {kernel_id}: saved session's {name} is not an object")
        launch = raw.get("launch") or {}
        if not isinstance(launch, dict):
            raise SessionError(f"Kernel {kernel_id}: saved session's launch is not an object")
        return cls(kernel_id, raw["kernel_name"], raw["provisioner_name"], raw["connection_info"],
                   raw["provisioner_info"], launch)


class SessionStore(LoggingConfigurable):
    """The interface the sessions extension uses; another store (a database, a Kubernetes Secret) plugs in through
    ``c.KernelSessions.store_class``. Every method may be called concurrently for different kernels."""

    async def save(self, session: KernelSession) -> None:
        """Create or replace the kernel's session."""
        raise NotImplementedError

    async def remove(self, kernel_id: str) -> None:
        """Forget the kernel's session; no error if there is none."""
        raise NotImplementedError

    async def load_all(self) -> list[KernelSession]:
        """Every saved session that can be read; unreadable ones are logged (by name) and left alone."""
        raise NotImplementedError

    def describe(self) -> str:
        """Where the sessions are, for the log."""
        return type(self).__name__


class FileSessionStore(SessionStore):
    """One ``<kernel id>.json`` per kernel, mode 0600, in a 0700 directory."""

    directory = Unicode(
        help="Directory for the session files (default: kernelfleet-sessions in the Jupyter runtime dir). Created "
        "0700; a directory other users can enter is made 0700, one owned by another user is refused.",
    ).tag(config=True)

    @default("directory")
    def _directory_default(self) -> str:
        return str(Path(jupyter_runtime_dir()) / "kernelfleet-sessions")

    def describe(self) -> str:
        return f"files in {self.directory}"

    def _path(self, kernel_id: str) -> Path:
        if not KERNEL_ID_PATTERN.match(kernel_id):
            raise SessionError(f"Kernel {kernel_id[:140]!r}: not a valid kernel id for a session file name")
        return Path(self.directory) / f"{kernel_id}{SUFFIX}"

    def _ensure_directory(self) -> Path:
        path = Path(self.directory)
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = path.lstat()
        if not stat.S_ISDIR(info.st_mode):
            raise SessionError(f"session directory {path} is not a directory")
        if info.st_uid != os.geteuid():
            raise SessionError(f"session directory {path} belongs to uid {info.st_uid}, not to this server's user")
        if stat.S_IMODE(info.st_mode) != 0o700:
            os.chmod(path, 0o700)
        return path

    def _write(self, session: KernelSession) -> None:
        directory = self._ensure_directory()
        target = self._path(session.kernel_id)
        temporary = directory / f".{session.kernel_id}.{secrets.token_hex(4)}.tmp"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(session.to_json())
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, target)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)  # the rename itself survives a crash of the machine
        finally:
            os.close(dir_fd)

    def _read_all(self) -> list[KernelSession]:
        directory = Path(self.directory)
        if not directory.is_dir():
            return []
        self._ensure_directory()
        sessions = []
        for path in sorted(directory.iterdir()):
            if path.name.startswith("."):
                if path.name.endswith(".tmp"):
                    path.unlink(missing_ok=True)  # a write the previous server did not finish
                continue
            if path.suffix != SUFFIX:
                continue
            try:
                session = KernelSession.from_json(path.read_text(encoding="utf-8"), path.name)
            except (OSError, UnicodeDecodeError, SessionError) as err:
                self.log.warning("Kernel sessions: %s is left alone: %s", path,
                                 err if isinstance(err, SessionError) else type(err).__name__)
                continue
            if path.name != f"{session.kernel_id}{SUFFIX}":
                self.log.warning("Kernel sessions: %s is left alone: it holds kernel %s", path, session.kernel_id)
                continue
            sessions.append(session)
        return sessions

    async def save(self, session: KernelSession) -> None:
        await asyncio.to_thread(self._write, session)

    async def remove(self, kernel_id: str) -> None:
        await asyncio.to_thread(self._path(kernel_id).unlink, missing_ok=True)

    async def load_all(self) -> list[KernelSession]:
        return await asyncio.to_thread(self._read_all)
