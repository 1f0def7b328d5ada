"""docs/configuration.md is what tools/config-docs generates from the code's traitlets today (issue 10, item 5):
a setting added, renamed or documented differently without regenerating the file fails here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_configuration_docs_are_current() -> None:
    run = subprocess.run([sys.executable, str(ROOT / "tools" / "config_docs.py"), "--check"],
                         capture_output=True, text=True, check=False, timeout=120)
    assert run.returncode == 0, f"{run.stderr}\n{run.stdout[-6000:]}"


def test_every_documented_class_and_setting_is_in_the_file() -> None:
    """The generator covers every provisioner entry point and every configurable setting of each."""
    from importlib.metadata import entry_points

    text = (ROOT / "docs" / "configuration.md").read_text()
    for ep in entry_points(group="jupyter_client.kernel_provisioners"):
        if not ep.value.startswith("kernelfleet."):
            continue
        cls = ep.load()
        assert f"Entry point (`provisioner_name`): `{ep.name}`" in text
        assert cls.__dict__.get("__doc__"), f"{cls.__name__} has no class docstring"
        for name in cls.class_trait_names(config=True):
            assert f"| `{name}` |" in text, f"{cls.__name__}.{name} is not documented"
