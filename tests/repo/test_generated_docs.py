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


def test_no_configurable_is_left_out() -> None:
    """Every class of kernelfleet.provisioners with settings of its own has a section, wherever its module moves;
    the ``jupyter *-spec`` command-line applications are documented by their ``--help`` instead."""
    import importlib
    import inspect
    import pkgutil

    from traitlets.config import Application, Configurable

    import kernelfleet.provisioners

    text = (ROOT / "docs" / "configuration.md").read_text()
    missing = []
    for info in pkgutil.walk_packages(kernelfleet.provisioners.__path__, "kernelfleet.provisioners."):
        module = importlib.import_module(info.name)
        for cls in vars(module).values():
            if (inspect.isclass(cls) and cls.__module__ == info.name and issubclass(cls, Configurable)
                    and not issubclass(cls, Application) and cls.class_own_traits(config=True)
                    and f"\n## {cls.__name__}\n" not in text):
                missing.append(f"{info.name}.{cls.__name__}")
    assert not missing, f"not in docs/configuration.md (add them to tools/config_docs.py): {missing}"
