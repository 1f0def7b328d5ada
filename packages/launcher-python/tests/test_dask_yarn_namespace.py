"""What a Dask-on-YARN kernel's ``client`` needs (``namespace.dask_yarn_missing``), with the machine's real look-ups
and with stated sets of installed modules and commands; the kernel-level behaviour (a clear error on use, the
kernel going on) is tested for real in tests/yarn/test_yarn_dask.py."""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Callable

from kernelfleet.launcher.namespace import dask_yarn_missing


def installed(*names: str) -> Callable[[str], bool]:
    """A look-up of the kind the launcher passes (module or command name -> present)."""
    return lambda name: name in names


def test_everything_present_means_nothing_missing() -> None:
    assert dask_yarn_missing(installed("distributed", "dask_yarn"), installed("yarn", "java"), {}) == []
    with_java_home = installed("yarn", "/jdk/bin/java")
    assert dask_yarn_missing(installed("distributed", "dask_yarn"), with_java_home, {"JAVA_HOME": "/jdk"}) == []


def test_each_missing_piece_is_named_with_how_to_get_it() -> None:
    missing = dask_yarn_missing(installed(), installed(), {"JAVA_HOME": "/nowhere"})
    assert [m.split(" (")[0] for m in missing] == [
        "dask.distributed is not installed", "dask_yarn is not installed", "Hadoop's `yarn` command is not on PATH",
        "no Java runtime"]
    assert "pip install dask-yarn" in missing[1] and "HADOOP_CONF_DIR" in missing[2] and "JAVA_HOME" in missing[3]


def test_this_machine_lacks_dask_and_hadoop() -> None:
    """The test environment's own state, which tests/yarn/test_yarn_dask.py relies on: no dask, no Hadoop client."""
    def has(name: str) -> bool:
        return importlib.util.find_spec(name) is not None

    missing = dask_yarn_missing(has, shutil.which, {})
    assert missing[:3] == dask_yarn_missing(installed(), installed("java"), {})[:3]
