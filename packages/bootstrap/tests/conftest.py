"""Fixtures for the bootstrap tests: a real install, and argv recorders standing in for launchers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from bootstrap_helpers import run_cli


@pytest.fixture
def installed(tmp_path: Path) -> Path:
    """An install dir holding the real bootstrap-kernel.sh and the real Python launcher shim."""
    target = tmp_path / "usr local bin"  # a space, to prove the substituted path is quoted
    result = run_cli("install", "--languages", "python", "--install-dir", str(target))
    assert result.returncode == 0, result.stderr
    return target


@pytest.fixture
def recorder(tmp_path: Path) -> Callable[[Path], Path]:
    """Makes an executable stand-in at a path that records its argv as JSON and exits 0.

    It stands in for an interpreter or for another helper's launcher, so the bootstrap's own
    command line can be checked exactly.
    """

    def make(path: Path) -> Path:
        out = tmp_path / "argv.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            "#!/usr/bin/env python3\n"
            "import json, os, sys\n"
            f"with open({str(out)!r}, 'w') as f:\n"
            "    json.dump({'argv': sys.argv[1:], 'token': os.environ.get('LAUNCH_TOKEN')}, f)\n"
        )
        path.chmod(0o755)
        return out

    return make
