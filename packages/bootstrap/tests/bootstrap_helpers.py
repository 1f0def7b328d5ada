"""Helpers for the bootstrap tests (a unique module name: every package has its own tests/)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

VENV_BIN = Path(sys.executable).parent
# A value shaped like the real thing (base64 DER) but unique, so any leak is easy to spot.
FAKE_PUBLIC_KEY = "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAtestPUBLICkeyVALUE0123456789+/abcdefQIDAQAB"
FAKE_TOKEN = "launch-token-SECRET-VALUE-3f9a1c7e5b"


def base_env(**extra: str) -> dict[str, str]:
    """A clean environment: no KERNEL_* / EG_* of the developer's shell leaks into a test."""
    env = {
        "PATH": f"{VENV_BIN}{os.pathsep}/usr/local/bin{os.pathsep}/usr/bin{os.pathsep}/bin",
        "HOME": os.environ.get("HOME", "/root"),
        "LANG": "C.UTF-8",
    }
    if "PYTHONPATH" in os.environ:  # the runner's import path, e.g. packages not installed in the venv
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    env.update(extra)
    return env


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The console script exactly as a Dockerfile runs it (through `jupyter`'s subcommand lookup)."""
    jupyter = VENV_BIN / "jupyter"
    if not jupyter.exists():
        pytest.fail(f"{jupyter} is missing: install jupyter_core into {VENV_BIN.parent}")
    return subprocess.run(
        [str(jupyter), "image-bootstrap", *args],
        env=env or base_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def read_record(path: Path) -> dict[str, object]:
    """The argv and LAUNCH_TOKEN a recorder saw."""
    return json.loads(path.read_text())
