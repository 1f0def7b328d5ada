"""Real users for impersonation tests: made with useradd, allowed to run this venv's interpreter, removed after.

The venv's interpreter may live under a directory other users cannot enter (``/root`` is 0700): each user gets an
ACL entry granting traverse (``x``) on exactly those directories, removed with the user.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path


def processes_of(uid: int) -> list[int]:
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                status = Path(entry.path, "status").read_text()
            except OSError:
                continue
            fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
            if fields.get("Uid", "").split()[:1] == [str(uid)] and fields.get("State", "").split()[:1] != ["Z"]:
                found.append(int(entry.name))
    return found


def _traversed_dirs() -> list[Path]:
    """Directories above the interpreter and the sources that other users cannot enter (e.g. /root, 0700)."""
    dirs = set()
    for target in (Path(os.path.realpath(sys.executable)), Path(__file__).resolve()):
        for parent in target.parents:
            if not parent.stat().st_mode & 0o001:
                dirs.add(parent)
    return sorted(dirs)


class UsersMissing(RuntimeError):
    """A tool to make users or to switch to them is not installed; the message says what to install."""


@contextlib.contextmanager
def real_users(count: int) -> Iterator[list[pwd.struct_passwd]]:
    """``count`` new users (home directories made), able to run this venv's interpreter; removed on exit."""
    for tool in ("useradd", "userdel", "sudo", "setfacl"):
        if shutil.which(tool) is None:
            raise UsersMissing(f"{tool} is missing: impersonation tests need real users and sudo (Debian: "
                               "apt-get install passwd sudo acl; tools/setup-machine installs them)")
    names = [f"kfimp{secrets.token_hex(3)}" for _ in range(count)]
    dirs = _traversed_dirs()
    made = []
    try:
        for name in names:
            subprocess.run(["useradd", "-m", "-s", "/bin/sh", name], check=True, capture_output=True)
            made.append(name)
            for directory in dirs:
                subprocess.run(["setfacl", "-m", f"u:{name}:x", str(directory)], check=True, capture_output=True)
        yield [pwd.getpwnam(name) for name in names]
    finally:
        for name in made:
            for directory in dirs:
                subprocess.run(["setfacl", "-x", f"u:{name}", str(directory)], capture_output=True)
            subprocess.run(["userdel", "-r", name], capture_output=True)
