"""Fixtures for the bootstrap tests: the real CLI, a clean environment, a real install, and argv
recorders standing in for launchers. (Helpers are fixtures: the repository runs pytest with
--import-mode=importlib, so test modules cannot import each other.)"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

VENV_BIN = Path(sys.executable).parent
CliRunner = Callable[..., "subprocess.CompletedProcess[str]"]
EnvMaker = Callable[..., dict[str, str]]


def _clean_env(**extra: str) -> dict[str, str]:
    """No KERNEL_* / EG_* of the developer's shell leaks into a test."""
    env = {
        "PATH": f"{VENV_BIN}{os.pathsep}/usr/local/bin{os.pathsep}/usr/bin{os.pathsep}/bin",
        "HOME": os.environ.get("HOME", "/root"),
        "LANG": "C.UTF-8",
    }
    if "PYTHONPATH" in os.environ:  # the runner's import path, e.g. packages not installed in the venv
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    env.update(extra)
    return env


def _run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The console script exactly as a Dockerfile runs it (through `jupyter`'s subcommand lookup)."""
    jupyter = VENV_BIN / "jupyter"
    if not jupyter.exists():
        pytest.fail(f"{jupyter} is missing: install jupyter_core into {VENV_BIN.parent}")
    return subprocess.run(
        [str(jupyter), "image-bootstrap", *args], env=env or _clean_env(), capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def clean_env() -> EnvMaker:
    return _clean_env


@pytest.fixture
def run_cli() -> CliRunner:
    return _run_cli


@pytest.fixture
def installed(tmp_path: Path) -> Path:
    """An install dir holding the real bootstrap-kernel.sh and the real Python launcher shim."""
    target = tmp_path / "usr local bin"  # a space, to prove the substituted path is quoted
    result = _run_cli("install", "--languages", "python", "--install-dir", str(target))
    assert result.returncode == 0, result.stderr
    return target


@pytest.fixture
def recorder(tmp_path: Path) -> Callable[[Path], Path]:
    """Makes an executable stand-in at a path that records its argv, LAUNCH_TOKEN and LAUNCH_TOKEN_FILE as JSON.

    It stands in for an interpreter or for another helper's launcher, so the bootstrap's own
    command line can be checked exactly; returns the path of the JSON record.
    """

    def make(path: Path) -> Path:
        out = tmp_path / "argv.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            "#!/usr/bin/env python3\n"
            "import json, os, sys\n"
            f"with open({str(out)!r}, 'w') as f:\n"
            "    json.dump({'argv': sys.argv[1:], 'token': os.environ.get('LAUNCH_TOKEN'),\n"
            "               'token_file': os.environ.get('LAUNCH_TOKEN_FILE')}, f)\n"
        )
        path.chmod(0o755)
        return out

    return make
