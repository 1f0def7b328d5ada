"""Property-based fuzzing of the ``jupyter *-spec install`` inputs: kernel names, port ranges, and whole
option sets given to the real installers.

Properties: each validator accepts exactly its documented grammar (README: kernel names, port ranges);
an install either exits 1 having written nothing, or writes exactly one kernel.json (with the language's logos), at
PREFIX/share/jupyter/kernels/<name>/, that jupyter_client loads and whose argv holds only the placeholders
the provisioners fill in.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from fuzz_properties import budget, check_kernel_name, check_port_range
from hypothesis import given
from hypothesis import strategies as st
from jupyter_client.kernelspec import KernelSpecManager

from kernelfleet.protocol import PortRange
from kernelfleet.provisioners.cli.docker import DockerSpecApp
from kernelfleet.provisioners.cli.k8s import K8sSpecApp
from kernelfleet.provisioners.cli.resources import RESOURCE_NAMES
from kernelfleet.provisioners.cli.ssh import SshSpecApp
from kernelfleet.provisioners.cli.yarn import YarnSpecApp
from kernelfleet.provisioners.container_argv import PLACEHOLDERS

GRAMMAR = budget(500)
INSTALLS = budget(100)
BIN = Path(sys.executable).parent
ARGV_FIELD = re.compile(r"\{([^{}]*)\}")

name_text = st.text(alphabet=st.sampled_from("abcXYZ019._- \t\n/\\\u212a\u0130"), max_size=12) | st.text(max_size=12)


@GRAMMAR
@given(name_text)
def test_kernel_names_accept_exactly_one_directory_name(name: str) -> None:
    check_kernel_name(name)


port_text = st.from_regex(r"\A\s?[+-]?[0-9_]{1,6}\s?\.\.\s?[+-]?[0-9_]{1,6}\s?\Z") | st.builds(
    lambda a, b: f"{a}..{b}", st.integers(0, 70000), st.integers(0, 70000)) | st.text(max_size=16)


@GRAMMAR
@given(port_text, st.sampled_from([0, 1, 1000, 2000]))
def test_port_ranges_follow_the_grammar(text: str, min_size: int) -> None:
    check_port_range(text, min_size)


APPS = {"ssh": SshSpecApp, "docker": DockerSpecApp, "k8s": K8sSpecApp, "yarn": YarnSpecApp}
option_values = st.text(max_size=12) | st.sampled_from(["python", "R", "scala", "0..0", "40000..41000", "1", "-1",
                                                         "lazy", "/opt/x", "a.b.C", "{kernel_id}", "${HOME}",
                                                         "http://rm1:8088", "--queue q"])
options = st.dictionaries(
    st.sampled_from(["--kernel-name", "--display-name", "--language", "--port-range", "--launch-timeout",
                     "--authorized-users", "--unauthorized-users", "--ipykernel-subclass-name", "--spark-init-mode",
                     "--image-name", "--network", "--remote-hosts", "--launchers-dir", "--extra-spark-opts",
                     "--yarn-endpoint", "--alt-yarn-endpoint", "--python-root", "--spark-home"]),
    option_values, max_size=5)
flags = st.lists(st.sampled_from(["--spark", "--swarm", "--crd", "--replace", "--dask", "--impersonation-enabled"]),
                max_size=2, unique=True)


@INSTALLS
@given(st.sampled_from(sorted(APPS)), options, flags)
def test_install_writes_one_loadable_kernelspec_or_nothing(tool: str, chosen: dict[str, str], flag: list[str]) -> None:
    prefix = Path(tempfile.mkdtemp(prefix="kf-fuzz-cli-"))
    try:
        argv = ["install", "--prefix", str(prefix), *flag]
        for option, value in chosen.items():
            argv.append(f"{option}={value}")
        app = APPS[tool]()
        try:
            app.initialize(argv)
            app.start()
            status = 0
        except SystemExit as leaving:
            status = leaving.code if isinstance(leaving.code, int) else 1
        finally:  # both are traitlets singletons: the next example makes its own
            if app.subapp is not None:
                type(app.subapp).clear_instance()
            type(app).clear_instance()
        written = sorted(p.relative_to(prefix) for p in prefix.rglob("*") if p.is_file())
        if status != 0:
            # 1: a refused value (one error line); 2: traitlets' own usage error (an option this tool lacks).
            assert status in (1, 2) and written == [], f"exit {status}, left {written}"
            return
        # one kernelspec directory: its kernel.json and nothing but the language's logos / kernel.js beside it
        assert {p.parts[:4] for p in written} == {written[0].parts[:4]}, written
        assert written[0].parts[:3] == ("share", "jupyter", "kernels") and all(len(p.parts) == 5 for p in written)
        names = [p.name for p in written]
        assert names.count("kernel.json") == 1 and set(names) <= {"kernel.json", *RESOURCE_NAMES}, written
        spec_name = written[0].parts[3]
        spec = KernelSpecManager(kernel_dirs=[str(prefix / "share/jupyter/kernels")]).get_kernel_spec(spec_name)
        for arg in spec.argv:
            unfilled = set(ARGV_FIELD.findall(arg)) - PLACEHOLDERS
            assert not unfilled, f"argv entry {arg!r} holds {unfilled}, which nobody fills in"
        config = json.loads((prefix / written[0]).read_text())["metadata"]["kernel_provisioner"]["config"]
        if "port_range" in config:
            assert str(PortRange.parse(config["port_range"], min_size=1000)) == config["port_range"]
        assert config["launch_timeout"] > 0
    finally:
        shutil.rmtree(prefix, ignore_errors=True)


# ------------------------------------------------------------------------------------------------ findings
def install_named(prefix: Path, name: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "jupyter-ssh-spec"), "install", "--prefix", str(prefix), "--kernel-name", name,
                           "--replace"], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("name", [".", "..", " . ", "..\n"])
def test_finding_kernel_name_dot_deletes_kernelspecs(tmp_path: Path, name: str) -> None:
    """'.' and '..' match [a-z0-9._-]+, so `--kernel-name . --replace` made jupyter_client rmtree the whole
    kernels directory (every other kernelspec), and '..' the whole share/jupyter directory, before failing."""
    other = tmp_path / "share" / "jupyter" / "kernels" / "other" / "kernel.json"
    other.parent.mkdir(parents=True)
    other.write_text(json.dumps({"argv": ["python"], "display_name": "other", "language": "python"}))
    beside = tmp_path / "share" / "jupyter" / "beside.txt"
    beside.write_text("kept")
    result = install_named(tmp_path, name)
    assert other.exists() and beside.exists(), f"--kernel-name {name} --replace deleted other files"
    assert result.returncode == 1 and "kernel name" in result.stderr


@pytest.mark.parametrize("text", ["+1024..2024", "1_024..2_024", "\u0661\u0660\u0662\u0664..\u0662\u0660\u0662\u0664",
                                  "1024 .. 2024"])
def test_finding_port_range_wider_than_its_grammar(text: str) -> None:
    """Signs, digit-group underscores, non-ASCII digits and blanks around '..' were accepted (int()'s grammar,
    not the README's). Harmless today because the canonical form is what is written and sent on, but the
    R and Scala launchers parse PORT_RANGE themselves, so nothing but the documented form should pass."""
    from kernelfleet.protocol import PortRangeError

    with pytest.raises(PortRangeError):
        PortRange.parse(text, min_size=1000)
