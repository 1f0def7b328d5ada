"""Shared fixtures for cross-package tests: kernelspecs written into a private Jupyter data dir."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

LAUNCHER_ARGV = [
    sys.executable, "-m", "kernelfleet.launcher",
    "--kernel-id", "{kernel_id}", "--port-range", "{port_range}",
    "--response-address", "{response_address}", "--public-key", "{public_key}",
]


@pytest.fixture
def kernels_dir(tmp_path: Path) -> Path:
    path = tmp_path / "share" / "jupyter" / "kernels"
    path.mkdir(parents=True)
    return path


@pytest.fixture
def make_kernelspec(kernels_dir: Path) -> Callable[..., str]:
    """Write a kernelspec for a Kernel Fleet provisioner and return its name."""

    def make(
        name: str = "kf_python",
        *,
        argv: list[str] | None = None,
        provisioner: str = "distributed-provisioner",
        config: dict[str, Any] | None = None,
        language: str = "python",
        env: dict[str, str] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> str:
        spec_dir = kernels_dir / name
        spec_dir.mkdir()
        spec = {
            "argv": argv or LAUNCHER_ARGV,
            "env": env or {},
            "display_name": f"Kernel Fleet test {name}",
            "language": language,
            "interrupt_mode": "signal",
            "metadata": {
                **(metadata or {}),
                "kernel_provisioner": {"provisioner_name": provisioner, "config": config or {}},
            },
        }
        (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=2) + "\n")
        return name

    return make
