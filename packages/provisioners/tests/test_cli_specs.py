"""The ``jupyter *-spec install`` tools, run as real console scripts into temporary prefixes."""

from __future__ import annotations

import asyncio
import json
import os
import re
import stat
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.kernelspec import KernelSpec, KernelSpecManager, NoSuchKernel

BIN = Path(sys.executable).parent
PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
LAUNCH_ARGS = [
    "--kernel-id",
    "{kernel_id}",
    "--port-range",
    "{port_range}",
    "--response-address",
    "{response_address}",
    "--public-key",
    "{public_key}",
]
CONTAINER_PREFIX = ["python", "-m", "kernelfleet.provisioners.container_argv"]
DEFAULT_CLASS = "ipykernel.ipkernel.IPythonKernel"
SEED_ARGS = [
    "--image-name",
    "acme/data-sci-py:2.0",
    "--kernel-name",
    "data_sci_py",
    "--display-name",
    "Data Science 2.0",
]

# Gateway Provisioners' output for SEED_ARGS (predecessor.md 4.4, without jupyter_client's empty
# kernel_protocol_version), kept here so CI needs nothing outside the repository.
GP_K8S_KERNEL_JSON: dict[str, Any] = {
    "argv": [
        "python",
        "/usr/local/share/jupyter/kernels/data_sci_py/scripts/launch_kubernetes.py",
        *LAUNCH_ARGS,
        "--kernel-class-name",
        DEFAULT_CLASS,
    ],
    "env": {},
    "display_name": "Data Science 2.0",
    "language": "python",
    "interrupt_mode": "signal",
    "metadata": {
        "debugger": True,
        "kernel_provisioner": {
            "provisioner_name": "kubernetes-provisioner",
            "config": {"image_name": "acme/data-sci-py:2.0", "launch_timeout": 30},
        },
    },
}

_SCRUBBED_ENV = (
    "KF_IMAGE_NAME",
    "GP_IMAGE_NAME",
    "KF_EXECUTOR_IMAGE_NAME",
    "GP_EXECUTOR_IMAGE_NAME",
    "SPARK_HOME",
    "JUPYTER_PATH",
    "JUPYTER_CONFIG_DIR",
)


def run_cli(
    tool: str, *args: str, tmp_path: Path, env: dict[str, str] | None = None, prefix: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run ``jupyter-<tool>-spec``; --user installs land in tmp_path/data, never in a real home."""
    script = BIN / f"jupyter-{tool}-spec"
    assert script.exists(), f"{script} is missing: run pip install --no-deps -e packages/provisioners"
    full_env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED_ENV}
    full_env["JUPYTER_DATA_DIR"] = str(tmp_path / "data")
    full_env.update(env or {})
    argv = [str(script), *args]
    if prefix:
        argv += ["--prefix", str(tmp_path / "prefix")]
    return subprocess.run(argv, capture_output=True, text=True, env=full_env, timeout=60, check=False)


def kernels_dir(tmp_path: Path) -> Path:
    return tmp_path / "prefix" / "share" / "jupyter" / "kernels"


def installed(tmp_path: Path, name: str) -> dict[str, Any]:
    return json.loads((kernels_dir(tmp_path) / name / "kernel.json").read_text(encoding="utf-8"))


def install_ok(tool: str, *args: str, tmp_path: Path, env: dict[str, str] | None = None) -> None:
    result = run_cli(tool, "install", *args, tmp_path=tmp_path, env=env)
    assert result.returncode == 0, result.stderr


def test_seed_command_matches_gp_output_except_argv(tmp_path: Path) -> None:
    install_ok("k8s", *SEED_ARGS, tmp_path=tmp_path)
    path = kernels_dir(tmp_path) / "data_sci_py" / "kernel.json"
    text = path.read_text(encoding="utf-8")
    spec = json.loads(text)

    assert text == json.dumps(spec, indent=2) + "\n"  # 2-space indent, trailing newline
    assert list(spec) == list(GP_K8S_KERNEL_JSON)  # same keys, same order, no kernel_protocol_version
    # Our Python launcher serves CurveZMQ, so the kernelspec says so (jupyter_client's transport_encryption).
    assert spec["metadata"].pop("supported_encryption") == ["curve"]
    assert {k: v for k, v in spec.items() if k != "argv"} == {
        k: v for k, v in GP_K8S_KERNEL_JSON.items() if k != "argv"
    }
    assert list(spec["metadata"]["kernel_provisioner"]["config"]) == ["image_name", "launch_timeout"]
    assert spec["argv"] == [*CONTAINER_PREFIX, *LAUNCH_ARGS, "--kernel-class-name", DEFAULT_CLASS]
    # kernel.json and ipykernel's logos (the launcher icon), nothing else.
    assert sorted(os.listdir(path.parent)) == ["kernel.json", "logo-32x32.png", "logo-64x64.png", "logo-svg.svg"]
    # A system-wide kernelspec must be readable by every user (the staging dir is 0700).
    assert stat.S_IMODE(path.parent.stat().st_mode) & 0o055 == 0o055


@pytest.mark.parametrize(
    ("tool", "args"),
    [
        ("k8s", ()),
        ("k8s", ("--spark", "--image-name", "acme/spark:3")),
        ("k8s", ("--spark", "--crd", "--image-name", "acme/spark:3")),
        ("k8s", ("--language", "r")),
        ("docker", ("--language", "scala")),
        ("docker", ("--swarm",)),
        ("ssh", ()),
        ("ssh", ("--language", "R", "--spark")),
        ("ssh", ("--language", "scala")),
    ],
)
def test_argv_placeholders_are_exactly_the_protocol_ones(tool: str, args: tuple[str, ...], tmp_path: Path) -> None:
    install_ok(tool, *args, tmp_path=tmp_path)
    (spec_dir,) = kernels_dir(tmp_path).iterdir()
    spec = json.loads((spec_dir / "kernel.json").read_text(encoding="utf-8"))
    fields = [field for arg in spec["argv"] for field in PLACEHOLDER.findall(arg)]
    assert sorted(fields) == ["kernel_id", "port_range", "public_key", "response_address"]
    assert "${" not in json.dumps(spec)


def test_existing_kernelspec_needs_replace(tmp_path: Path) -> None:
    install_ok("k8s", *SEED_ARGS, tmp_path=tmp_path)
    path = kernels_dir(tmp_path) / "data_sci_py" / "kernel.json"
    before = path.read_bytes()

    other = [*SEED_ARGS[:-1], "Other"]
    again = run_cli("k8s", "install", *other, tmp_path=tmp_path)
    assert again.returncode == 1
    assert "already exists" in again.stderr and "--replace" in again.stderr
    assert path.read_bytes() == before

    install_ok("k8s", *other, "--replace", tmp_path=tmp_path)
    assert installed(tmp_path, "data_sci_py")["display_name"] == "Other"


@pytest.mark.parametrize(
    ("tool", "args", "message"),
    [
        ("k8s", ("--language", "cobol"), "--language 'cobol' is not supported"),
        ("docker", ("--language", "julia"), "choose python, r or scala"),
        ("ssh", ("--language", ""), "is not supported"),
        ("k8s", ("--port-range", "100..2000"), "1024 <= lower"),
        ("docker", ("--port-range", "40000..40100"), "at least 1000"),
        ("ssh", ("--port-range", "40000-41000"), "lower..upper"),
        ("k8s", ("--port-range", "60000..70000"), "65535"),
        ("k8s", ("--crd",), "--crd needs --spark"),
        ("k8s", ("--crd", "--spark", "--language", "r"), "Python kernels only"),
        ("k8s", ("--launch-timeout", "0"), "positive"),
        ("ssh", ("--launch-timeout", "soon"), "expected an int"),
        ("docker", ("--language", "r", "--ipykernel-subclass-name", "x.Y"), "Python kernels only"),
        ("ssh", ("--ipykernel-subclass-name", "NotDotted"), "dotted"),
        ("ssh", ("--ipykernel-subclass-name", "ipykernel.kernelbase.Kernel"), "not a subclass"),
        ("ssh", ("--spark", "--spark-init-mode", "sometimes"), "lazy, eager or none"),
        ("ssh", ("--launchers-dir", "relative/dir", "--language", "r"), "absolute"),
        ("docker", ("--authorized-users", "alice", "bob"), "unexpected argument"),
        ("docker", ("--user",), "choose one install location"),
        ("k8s", ("--kernel-name", "bad/name"), "not valid"),
        ("k8s", ("--display-name", "Spark ${VERSION}"), "unreplaced template variable"),
        ("yarn", ("--yarn-endpoint", "rm1:8088"), "must be an http:// or https:// URL"),
        ("yarn", ("--alt-yarn-endpoint", "http://rm2:8088"), "--alt-yarn-endpoint needs --yarn-endpoint"),
        ("yarn", ("--dask", "--language", "r"), "--dask kernels are Python kernels"),
        ("yarn", ("--dask", "--extra-spark-opts", "--queue q"), "do not apply to --dask"),
        ("yarn", ("--dask", "--extra-dask-opts", "--client-env LAUNCH_TOKEN"), "expected NAME=VALUE"),
        ("yarn", ("--dask", "--extra-dask-opts", "--worker-count many"), "--worker-count 'many' is not a whole"),
        ("yarn", ("--dask", "--extra-dask-opts", "--deploy-mode anywhere"), "is not remote or local"),
        ("yarn", ("--dask", "--extra-dask-opts", "--spark-home /x"), "--spark-home is not an option of dask-yarn"),
        ("yarn", ("--extra-dask-opts", "--worker-count 2"), "applies to --dask kernelspecs only"),
        ("yarn", ("--python-root", "opt/conda"), "must be an absolute path"),
        ("yarn", ("--extra-spark-opts", "--conf 'unclosed"), "cannot be split"),
        ("yarn", ("--spark-init-mode", "sometimes"), "lazy, eager or none"),
    ],
)
def test_bad_options_fail_clearly_and_write_nothing(
    tool: str, args: tuple[str, ...], message: str, tmp_path: Path
) -> None:
    result = run_cli(tool, "install", *args, tmp_path=tmp_path)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not kernels_dir(tmp_path).exists()
    assert not (tmp_path / "data").exists()


def test_no_subcommand_prints_help_and_exits_1(tmp_path: Path) -> None:
    for tool in ("ssh", "docker", "k8s"):
        result = run_cli(tool, tmp_path=tmp_path, prefix=False)
        assert result.returncode == 1
        assert "install" in result.stdout
        unknown = run_cli(tool, "instal", tmp_path=tmp_path, prefix=False)
        assert unknown.returncode == 1
        assert "Unknown subcommand 'instal'" in unknown.stderr


def test_jupyter_command_dispatches_to_the_tool(tmp_path: Path) -> None:
    jupyter = BIN / "jupyter"
    assert jupyter.exists(), f"{jupyter} is missing: jupyter_core must be installed in the venv"
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED_ENV}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    result = subprocess.run(
        [str(jupyter), "k8s-spec", "install", *SEED_ARGS, "--prefix", str(tmp_path / "prefix")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert installed(tmp_path, "data_sci_py")["display_name"] == "Data Science 2.0"


def _container_argv(lang: str, spark_mode: str | None = None) -> list[str]:
    if lang == "python":
        tail = ["--kernel-class-name", DEFAULT_CLASS]
        if spark_mode:
            tail += ["--spark-context-initialization-mode", spark_mode]
        return [*CONTAINER_PREFIX, *LAUNCH_ARGS, *tail]
    return [*CONTAINER_PREFIX, *LAUNCH_ARGS, "--spark-context-initialization-mode", spark_mode or "none"]


def _script_python() -> str:
    """The interpreter the console scripts run with (their shebang), i.e. --python's default."""
    first = (BIN / "jupyter-ssh-spec").read_text(encoding="utf-8").splitlines()[0]
    return first.removeprefix("#!").strip()


def _ssh_argv(lang: str, spark_mode: str | None = None) -> list[str]:
    if lang == "python":
        tail = ["--kernel-class-name", DEFAULT_CLASS]
        if spark_mode:
            tail += ["--spark-context-initialization-mode", spark_mode]
        return [_script_python(), "-m", "kernelfleet.launcher", *LAUNCH_ARGS, *tail]
    mode = ["--spark-context-initialization-mode", spark_mode or "none"]
    if lang == "r":
        return ["Rscript", "/usr/local/bin/kernel-launchers/r/launch_IRkernel.R", *LAUNCH_ARGS, *mode]
    return ["/usr/local/bin/kernel-launchers/scala/bin/run.sh", *LAUNCH_ARGS, *mode]


LANGUAGE_CASES = [
    # tool, --language as typed, kernel name, display name, kernel.json language, provisioner, argv, image
    ("k8s", "Python", "k8s_python", "Kubernetes Python", "python", "kubernetes-provisioner",
     _container_argv("python"), "kernelfleet/kernel-py:"),
    ("k8s", "r", "k8s_r", "Kubernetes R", "R", "kubernetes-provisioner",
     _container_argv("r"), "kernelfleet/kernel-r:"),
    ("k8s", "SCALA", "k8s_scala", "Kubernetes Scala", "scala", "kubernetes-provisioner",
     _container_argv("scala"), "kernelfleet/kernel-scala:"),
    ("docker", "python", "docker_python", "Docker Python", "python", "docker-provisioner",
     _container_argv("python"), "kernelfleet/kernel-py:"),
    ("docker", "R", "docker_r", "Docker R", "R", "docker-provisioner",
     _container_argv("r"), "kernelfleet/kernel-r:"),
    ("docker", "Scala", "docker_scala", "Docker Scala", "scala", "docker-provisioner",
     _container_argv("scala"), "kernelfleet/kernel-scala:"),
    ("ssh", "python", "ssh_python", "Python on SSH hosts", "python", "distributed-provisioner",
     _ssh_argv("python"), None),
    ("ssh", "R", "ssh_r", "R on SSH hosts", "R", "distributed-provisioner", _ssh_argv("r"), None),
    ("ssh", "scala", "ssh_scala", "Scala on SSH hosts", "scala", "distributed-provisioner",
     _ssh_argv("scala"), None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("tool", "language", "name", "display", "json_language", "provisioner", "argv", "image"), LANGUAGE_CASES
)
def test_each_language_of_each_tool(
    tool: str,
    language: str,
    name: str,
    display: str,
    json_language: str,
    provisioner: str,
    argv: list[str],
    image: str | None,
    tmp_path: Path,
) -> None:
    install_ok(tool, "--language", language, tmp_path=tmp_path)
    spec = installed(tmp_path, name)
    assert spec["argv"] == argv
    assert spec["display_name"] == display
    assert spec["language"] == json_language
    assert spec["env"] == {}
    assert spec["interrupt_mode"] == "signal"
    assert ("debugger" in spec["metadata"]) == (json_language == "python")
    # Only the Python launcher can serve CurveZMQ; IRkernel and Toree bind plaintext sockets.
    assert spec["metadata"].get("supported_encryption") == (["curve"] if json_language == "python" else None)
    kp = spec["metadata"]["kernel_provisioner"]
    assert kp["provisioner_name"] == provisioner
    expected_config: dict[str, Any] = {"launch_timeout": 30}
    if image:
        assert kp["config"]["image_name"].startswith(image)
        expected_config = {"image_name": kp["config"]["image_name"], "launch_timeout": 30}
    assert kp["config"] == expected_config


def test_common_options_are_written_to_config(tmp_path: Path) -> None:
    install_ok(
        "docker",
        "--kernel-name",
        "Team Kernel",
        "--authorized-users",
        "alice",
        "--authorized-users",
        "bob",
        "--authorized-users",
        "alice",
        "--unauthorized-users",
        "root",
        "--port-range",
        "40000..40999",
        "--launch-timeout",
        "90",
        "--image-name",
        "acme/team:1",
        tmp_path=tmp_path,
    )
    spec = installed(tmp_path, "team_kernel")  # spaces become '_', jupyter_client lowercases
    assert spec["display_name"] == "Docker Python"
    assert spec["metadata"]["kernel_provisioner"]["config"] == {
        "image_name": "acme/team:1",
        "authorized_users": ["alice", "bob"],
        "unauthorized_users": ["root"],
        "port_range": "40000..40999",
        "launch_timeout": 90,
    }


def test_unrestricted_port_range_and_default_timeout_are_not_config_noise(tmp_path: Path) -> None:
    install_ok("ssh", "--port-range", "0..0", tmp_path=tmp_path)
    assert installed(tmp_path, "ssh_python")["metadata"]["kernel_provisioner"]["config"] == {"launch_timeout": 30}


def test_kernel_class_is_python_only_and_passed_through(tmp_path: Path) -> None:
    install_ok("k8s", "--ipykernel-subclass-name", "acme.kernels.FancyKernel", tmp_path=tmp_path)
    argv = installed(tmp_path, "k8s_python")["argv"]
    assert argv[-2:] == ["--kernel-class-name", "acme.kernels.FancyKernel"]


def test_k8s_spark_and_operator(tmp_path: Path) -> None:
    install_ok(
        "k8s", "--spark", "--spark-init-mode", "EAGER", "--extra-spark-opts", "--conf spark.x=${HOME}",
        "--image-name", "acme/spark:3", "--spark-home", "/srv/spark", tmp_path=tmp_path,
    )  # fmt: skip
    spec = installed(tmp_path, "k8s_python_spark")
    assert spec["display_name"] == "Kubernetes Python (with Spark)"
    # cluster mode: the server runs spark-submit; the kernel is its driver pod (k8s.spark_submit)
    assert spec["argv"] == [
        "/srv/spark/bin/spark-submit", "--deploy-mode", "cluster",
        "local:///usr/local/bin/kernel-launchers/python/launch_ipykernel.py", *LAUNCH_ARGS,
        "--kernel-class-name", DEFAULT_CLASS, "--spark-context-initialization-mode", "eager",
    ]  # fmt: skip
    # ${...} inside env is jupyter_client's own substitution, so it is kept.
    assert spec["env"] == {"SPARK_HOME": "/srv/spark", "SPARK_OPTS": "--conf spark.x=${HOME}"}
    assert spec["metadata"]["kernel_provisioner"]["config"] == {
        "image_name": "acme/spark:3",
        "executor_image_name": "acme/spark:3",
        "launch_timeout": 30,
    }

    install_ok("k8s", "--spark", "--crd", "--image-name", "acme/spark:3", "--executor-image-name", "acme/exec:3",
               tmp_path=tmp_path)
    crd = installed(tmp_path, "k8s_python_spark_operator")
    assert crd["display_name"] == "Kubernetes Spark Operator"
    assert crd["argv"] == _container_argv("python", "lazy")
    kp = crd["metadata"]["kernel_provisioner"]
    assert kp["provisioner_name"] == "spark-operator-provisioner"
    assert kp["config"]["image_name"] == "acme/spark:3"
    assert kp["config"]["executor_image_name"] == "acme/exec:3"


@pytest.mark.parametrize("lang", ["python", "r"])
def test_k8s_spark_defaults_to_our_spark_images(lang: str, tmp_path: Path) -> None:
    """Python and R Spark kernelspecs name kernel-spark-py/-r (tools/build-images-rs --only spark) and run
    spark-submit in cluster mode with the language's launcher file; Scala's image carries Spark itself."""
    install_ok("k8s", "--spark", "--language", lang, tmp_path=tmp_path)
    spec = installed(tmp_path, f"k8s_{lang}_spark")
    short = {"python": "py", "r": "r"}[lang]
    image = spec["metadata"]["kernel_provisioner"]["config"]["image_name"]
    assert image.startswith(f"kernelfleet/kernel-spark-{short}:")
    assert spec["argv"][0].endswith("/bin/spark-submit") and spec["argv"][1:3] == ["--deploy-mode", "cluster"]
    launcher = {"python": "python/launch_ipykernel.py", "r": "r/launch_IRkernel.R"}[lang]
    assert spec["argv"][3] == f"local:///usr/local/bin/kernel-launchers/{launcher}"
    install_ok("k8s", "--spark", "--language", "scala", tmp_path=tmp_path)
    assert installed(tmp_path, "k8s_scala_spark")["metadata"]["kernel_provisioner"]["config"]["image_name"].startswith(
        "kernelfleet/kernel-scala:")


def test_k8s_image_defaults_come_from_env(tmp_path: Path) -> None:
    install_ok("k8s", "--kernel-name", "gp", tmp_path=tmp_path, env={"GP_IMAGE_NAME": "gp/img:1"})
    both = {"GP_IMAGE_NAME": "gp/img:1", "KF_IMAGE_NAME": "kf/img:1"}
    install_ok("k8s", "--kernel-name", "kf", tmp_path=tmp_path, env=both)
    install_ok("k8s", "--kernel-name", "flag", "--image-name", "flag/img:1", tmp_path=tmp_path, env=both)
    assert installed(tmp_path, "gp")["metadata"]["kernel_provisioner"]["config"]["image_name"] == "gp/img:1"
    assert installed(tmp_path, "kf")["metadata"]["kernel_provisioner"]["config"]["image_name"] == "kf/img:1"
    assert installed(tmp_path, "flag")["metadata"]["kernel_provisioner"]["config"]["image_name"] == "flag/img:1"


def test_docker_network_is_written_only_when_given(tmp_path: Path) -> None:
    install_ok("docker", "--kernel-name", "plain", tmp_path=tmp_path)
    install_ok("docker", "--kernel-name", "hostnet", "--network", "host", tmp_path=tmp_path)
    assert "network" not in installed(tmp_path, "plain")["metadata"]["kernel_provisioner"]["config"]
    assert installed(tmp_path, "hostnet")["metadata"]["kernel_provisioner"]["config"]["network"] == "host"


def test_docker_scala_spark_init_mode(tmp_path: Path) -> None:
    install_ok("docker", "--language", "scala", "--spark-init-mode", "lazy", tmp_path=tmp_path)
    assert installed(tmp_path, "docker_scala")["argv"][-2:] == ["--spark-context-initialization-mode", "lazy"]
    result = run_cli("docker", "install", "--kernel-name", "bad", "--spark-init-mode", "sometimes", tmp_path=tmp_path)
    assert result.returncode != 0 and "--spark-init-mode 'sometimes'" in result.stderr


def test_docker_swarm(tmp_path: Path) -> None:
    install_ok("docker", "--swarm", "--language", "r", tmp_path=tmp_path)
    spec = installed(tmp_path, "docker_swarm_r")
    assert spec["display_name"] == "Docker Swarm R"
    assert spec["metadata"]["kernel_provisioner"]["provisioner_name"] == "docker-swarm-provisioner"


def test_ssh_hosts_python_launchers_dir_and_spark(tmp_path: Path) -> None:
    install_ok(
        "ssh", "--remote-hosts", "node1", "--remote-hosts", "node2", "--python", "/opt/py/bin/python3",
        "--spark", "--spark-home", "/opt/spark-3.5", "--spark-master", "yarn", tmp_path=tmp_path,
    )  # fmt: skip
    spec = installed(tmp_path, "ssh_python_spark")
    assert spec["display_name"] == "Python on SSH hosts (with Spark)"
    # spark-submit runs a file: the launcher's script where jupyter image-bootstrap installs it
    assert spec["argv"][:2] == ["/opt/py/bin/python3", "/usr/local/bin/kernel-launchers/python/launch_ipykernel.py"]
    assert spec["argv"][-2:] == ["--spark-context-initialization-mode", "lazy"]
    assert spec["env"] == {"SPARK_HOME": "/opt/spark-3.5", "SPARK_OPTS": "--master yarn"}
    assert spec["metadata"]["kernel_provisioner"]["config"] == {
        "remote_hosts": ["node1", "node2"],
        "spark_submit": True,
        "launch_timeout": 30,
    }

    install_ok("ssh", "--language", "r", "--launchers-dir", "/srv/launchers", tmp_path=tmp_path)
    assert installed(tmp_path, "ssh_r")["argv"][:2] == ["Rscript", "/srv/launchers/r/launch_IRkernel.R"]
    assert "spark_submit" not in installed(tmp_path, "ssh_r")["metadata"]["kernel_provisioner"]["config"]
    install_ok("ssh", "--language", "python", "--kernel-name", "plain", tmp_path=tmp_path)
    assert installed(tmp_path, "plain")["argv"][1:3] == ["-m", "kernelfleet.launcher"]  # no Spark: the module


def test_user_install_goes_to_the_jupyter_data_dir(tmp_path: Path) -> None:
    result = run_cli("ssh", "install", "--user", "--language", "scala", tmp_path=tmp_path, prefix=False)
    assert result.returncode == 0, result.stderr
    spec = json.loads((tmp_path / "data" / "kernels" / "ssh_scala" / "kernel.json").read_text(encoding="utf-8"))
    assert spec["language"] == "scala"


def test_sys_prefix_install_goes_into_the_running_environment(tmp_path: Path) -> None:
    """A throwaway venv, so sys.prefix is not the shared development environment."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout.strip()  # fmt: skip
    # Make this environment's packages (and their editable-install .pth files) visible there.
    Path(purelib, "parent_env.pth").write_text(
        f"import site; site.addsitedir({sysconfig.get_paths()['purelib']!r})\n", encoding="utf-8"
    )
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED_ENV}
    result = subprocess.run(
        [str(python), "-m", "kernelfleet.provisioners.cli.ssh", "install", "--sys-prefix"],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    spec = json.loads((venv / "share" / "jupyter" / "kernels" / "ssh_python" / "kernel.json").read_text("utf-8"))
    assert spec["argv"][0] == str(python)  # --python defaults to the interpreter running the tool


def test_kernelspec_manager_reads_every_written_spec(tmp_path: Path) -> None:
    runs = [
        ("k8s", ()), ("k8s", ("--language", "r")), ("k8s", ("--language", "scala")),
        ("k8s", ("--spark", "--image-name", "acme/spark:3")), ("k8s", ("--spark", "--crd", "--image-name", "a/s:3")),
        ("docker", ()), ("docker", ("--language", "r")),
        ("docker", ("--language", "scala")), ("docker", ("--swarm",)), ("ssh", ()), ("ssh", ("--language", "r")),
        ("ssh", ("--language", "scala")), ("ssh", ("--spark",)),
    ]  # fmt: skip
    for tool, args in runs:
        install_ok(tool, *args, tmp_path=tmp_path)
    manager = KernelSpecManager(kernel_dirs=[str(kernels_dir(tmp_path))], ensure_native_kernel=False)
    found = manager.find_kernel_specs()
    assert len(found) == len(runs)
    for name, resource_dir in found.items():
        spec = KernelSpec.from_resource_dir(resource_dir)
        written = json.loads(Path(resource_dir, "kernel.json").read_text(encoding="utf-8"))
        assert spec.argv == written["argv"], name
        assert spec.metadata == written["metadata"], name
        assert spec.interrupt_mode == "signal", name


@pytest.mark.parametrize(
    ("tool", "args", "name", "provisioner"),
    [
        ("k8s", (), "k8s_python", "kubernetes-provisioner"),
        ("k8s", ("--spark", "--crd", "--image-name", "acme/spark:3"), "k8s_python_spark_operator",
         "spark-operator-provisioner"),
        ("docker", (), "docker_python", "docker-provisioner"),
        ("docker", ("--swarm",), "docker_swarm_python", "docker-swarm-provisioner"),
        ("ssh", (), "ssh_python", "distributed-provisioner"),
    ],
)
def test_jupyter_client_finds_the_provisioner_of_each_spec(
    tool: str, args: tuple[str, ...], name: str, provisioner: str, tmp_path: Path
) -> None:
    """get_kernel_spec hides specs whose provisioner is not a registered entry point."""
    install_ok(tool, *args, tmp_path=tmp_path)
    manager = KernelSpecManager(kernel_dirs=[str(kernels_dir(tmp_path))], ensure_native_kernel=False)
    try:
        spec = manager.get_kernel_spec(name)
    except NoSuchKernel:
        pytest.fail(
            f"jupyter_client hides {name}: {provisioner!r} is not registered under "
            '[project.entry-points."jupyter_client.kernel_provisioners"] of packages/provisioners/pyproject.toml'
        )
    assert spec.metadata["kernel_provisioner"]["provisioner_name"] == provisioner


REPO = Path(__file__).resolve().parents[3]


async def _run_code(kernel_dirs: list[str], name: str, code: str) -> tuple[str, str]:
    """Start the kernelspec through jupyter_client, run ``code``; (status, stdout)."""
    from jupyter_client.manager import AsyncKernelManager

    ksm = KernelSpecManager(kernel_dirs=kernel_dirs, ensure_native_kernel=False)
    km = AsyncKernelManager(kernel_name=name, kernel_spec_manager=ksm)
    await km.start_kernel()
    try:
        kc = km.client()
        kc.start_channels()
        try:
            await kc.wait_for_ready(timeout=90)
            out: list[str] = []

            def hook(msg: dict[str, Any]) -> None:
                if msg["msg_type"] == "stream":
                    out.append(msg["content"]["text"])
                elif msg["msg_type"] in ("execute_result", "display_data"):
                    out.append(msg["content"]["data"].get("text/plain", ""))

            reply = await kc.execute_interactive(code, output_hook=hook, timeout=60)
            return reply["content"]["status"], "".join(out)
        finally:
            kc.stop_channels()
    finally:
        await km.shutdown_kernel(now=True)


@pytest.mark.timeout(240)
@pytest.mark.parametrize(
    ("args", "name", "code"),
    [
        ((), "ssh_python", "print(6 * 7)"),
        (("--language", "r", "--launchers-dir", str(REPO / "launchers")), "ssh_r", "cat(6 * 7)"),
    ],
)
def test_ssh_spec_without_hosts_runs_a_real_local_kernel(
    args: tuple[str, ...], name: str, code: str, tmp_path: Path
) -> None:
    """The embedded default: no --remote-hosts, so distributed-provisioner runs argv as a local process."""
    if name == "ssh_r":
        assert (REPO / "launchers" / "r" / "launch_IRkernel.R").exists(), "the R launcher is missing from the repo"
    install_ok("ssh", *args, tmp_path=tmp_path)
    status, stdout = asyncio.run(asyncio.wait_for(_run_code([str(kernels_dir(tmp_path))], name, code), 200))
    assert status == "ok"
    assert "42" in stdout


@pytest.mark.parametrize(
    ("lang", "logo_source"),
    [
        ("python", lambda: Path(__import__("ipykernel").__file__).parent / "resources" / "logo-64x64.png"),
        ("scala", lambda: Path(__import__("toree").__file__).parent / "logo-64x64.png"),
    ],
)
def test_kernelspec_carries_the_languages_own_logo(lang: str, logo_source: Any, tmp_path: Path) -> None:
    """The logo comes from the language's kernel package installed here (ipykernel, Toree), byte for byte,
    so JupyterLab's launcher shows the familiar icon (jupyter_server serves it from the spec's resource dir)."""
    install_ok("docker", "--language", lang, tmp_path=tmp_path)
    name = f"docker_{lang}"
    assert (kernels_dir(tmp_path) / name / "logo-64x64.png").read_bytes() == logo_source().read_bytes()
    manager = KernelSpecManager(kernel_dirs=[str(kernels_dir(tmp_path))])
    assert Path(manager.get_all_specs()[name]["resource_dir"], "logo-64x64.png").is_file()


def test_r_kernelspec_carries_irkernels_logo_and_kernel_js(tmp_path: Path) -> None:
    """IRkernel (installed from Debian here) ships kernel.js next to its logo; both come along."""
    rscript = subprocess.run(["Rscript", "--vanilla", "-e", 'cat(system.file("kernelspec", package="IRkernel"))'],
                             capture_output=True, text=True, timeout=60, check=False)
    source = Path(rscript.stdout.strip())
    assert rscript.returncode == 0 and (source / "kernel.js").is_file(), f"IRkernel is not installed: {rscript}"
    install_ok("ssh", "--language", "r", tmp_path=tmp_path)
    spec_dir = kernels_dir(tmp_path) / "ssh_r"
    for file_name in ("kernel.js", "logo-64x64.png"):
        assert (spec_dir / file_name).read_bytes() == (source / file_name).read_bytes(), file_name


def test_ssh_spec_warns_about_what_this_host_lacks_and_still_installs(tmp_path: Path) -> None:
    """As Gateway Provisioners warned about a missing Rscript or Toree: R without Rscript on PATH, a launcher
    that is not where argv says, and a --spark-home without spark-submit are each named, and the spec is written
    (the kernel may run on other hosts)."""
    empty_bin = tmp_path / "empty-bin"
    empty_bin.mkdir()
    env = {"PATH": str(empty_bin)}
    result = run_cli("ssh", "install", "--language", "r", "--launchers-dir", str(tmp_path / "nowhere"),
                     "--spark", "--spark-home", str(tmp_path / "no-spark"), tmp_path=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert "Rscript is not on this host's PATH" in result.stderr
    assert f"{tmp_path / 'nowhere'}/r/launch_IRkernel.R does not exist here" in result.stderr
    assert f"--spark-home {tmp_path / 'no-spark'}: no bin/spark-submit here" in result.stderr
    assert (kernels_dir(tmp_path) / "ssh_r_spark" / "kernel.json").is_file()

    quiet = run_cli("ssh", "install", "--language", "python", "--replace", tmp_path=tmp_path)
    assert quiet.returncode == 0, quiet.stderr
    assert "does not exist here" not in quiet.stderr and "not on this host's PATH" not in quiet.stderr


def test_yarn_spec_writes_what_gp_meant(tmp_path: Path) -> None:
    """GP 0.5.0 writes "${language}", "${display_name}", "${spark_home}" and drops --yarn-endpoint; we do not."""
    install_ok(
        "yarn", "--kernel-name", "yarn_py", "--yarn-endpoint", "http://rm1:8088", "--alt-yarn-endpoint",
        "http://rm2:8088/ws/v1/cluster/", "--spark-home", "/opt/spark", "--impersonation-enabled",
        "--yarn-endpoint-security-enabled", "--extra-spark-opts", "--queue analytics --conf spark.x='a b'",
        tmp_path=tmp_path,
    )  # fmt: skip
    spec = installed(tmp_path, "yarn_py")
    assert "${" not in json.dumps(spec)
    assert (spec["language"], spec["display_name"]) == ("python", "Spark Python (YARN Cluster Mode)")
    assert spec["env"] == {"SPARK_HOME": "/opt/spark", "PYSPARK_PYTHON": "/opt/conda/bin/python"}
    assert spec["metadata"]["kernel_provisioner"] == {"provisioner_name": "yarn-provisioner", "config": {
        "yarn_endpoint": "http://rm1:8088/ws/v1/cluster", "alt_yarn_endpoint": "http://rm2:8088/ws/v1/cluster",
        "yarn_endpoint_security_enabled": True, "impersonation_enabled": True, "launch_timeout": 30}}
    argv = spec["argv"]
    assert argv[:7] == ["/opt/spark/bin/spark-submit", "--master", "yarn", "--deploy-mode", "cluster", "--name",
                        "{kernel_id}"]
    launcher = argv.index("/usr/local/bin/kernel-launchers/python/launch_ipykernel.py")
    assert argv[launcher - 4:launcher] == ["--queue", "analytics", "--conf", "spark.x=a b"]
    assert argv[launcher + 1:] == [*LAUNCH_ARGS, "--kernel-class-name", DEFAULT_CLASS,
                                   "--spark-context-initialization-mode", "lazy"]

    install_ok("yarn", "--language", "r", "--launchers-dir", "/srv/launchers", tmp_path=tmp_path)
    r_spec = installed(tmp_path, "yarn_spark_r")
    assert r_spec["language"] == "R" and "/srv/launchers/r/launch_IRkernel.R" in r_spec["argv"]
    assert r_spec["metadata"]["kernel_provisioner"]["config"] == {"launch_timeout": 30}


def test_yarn_spec_dask_writes_a_rest_submitted_dask_client_kernelspec(tmp_path: Path) -> None:
    """``--dask``: GP's yarn_dask_python, but the kernel is a REST-submitted AM (no dask-yarn submit, no run.sh):
    the launcher itself with --cluster-type dask, and GP's DASK_OPTS (plus --extra-dask-opts) in env."""
    install_ok(
        "yarn", "--dask", "--yarn-endpoint", "http://rm1:8088", "--python-root", "/opt/py", "--launchers-dir",
        "/srv/launchers", "--extra-dask-opts", "--worker-count 3 --worker-memory '4 GiB' --queue analytics",
        tmp_path=tmp_path,
    )  # fmt: skip
    spec = installed(tmp_path, "yarn_dask_python")
    assert (spec["language"], spec["display_name"]) == ("python", "Dask Python (YARN Cluster Mode)")
    assert spec["argv"] == ["/opt/py/bin/python", "/srv/launchers/python/launch_ipykernel.py", *LAUNCH_ARGS,
                            "--kernel-class-name", DEFAULT_CLASS, "--cluster-type", "dask"]
    assert spec["env"] == {"DASK_OPTS": "--name ${KERNEL_ID:-ERROR__NO__KERNEL_ID} --environment "
                           "python:///opt/py/bin/python --temporary-security-credentials --deploy-mode remote "
                           "--worker-count 3 --worker-memory '4 GiB' --queue analytics"}
    assert spec["metadata"]["kernel_provisioner"] == {"provisioner_name": "yarn-provisioner", "config": {
        "submission": "rest", "yarn_endpoint": "http://rm1:8088/ws/v1/cluster", "launch_timeout": 30}}


@pytest.mark.parametrize("tool", ["k8s", "docker"])
def test_tensorflow_flag_is_accepted_and_says_it_changes_nothing(tool: str, tmp_path: Path) -> None:
    """Gateway Provisioners 0.5.0's k8s-spec and docker-spec take --tensorflow and never read it: GP install scripts
    that pass it still work here, the kernelspec is the one written without it, and the tool says what to do
    instead. Other tools never had it and refuse it."""
    plain = run_cli(tool, "install", "--kernel-name", "plain", tmp_path=tmp_path)
    assert plain.returncode == 0, plain.stderr
    flagged = run_cli(tool, "install", "--kernel-name", "tf", "--tensorflow", tmp_path=tmp_path)
    assert flagged.returncode == 0, flagged.stderr
    assert "--tensorflow changes nothing" in flagged.stderr and "--image-name" in flagged.stderr
    assert "--tensorflow" not in plain.stderr
    tf, base = installed(tmp_path, "tf"), installed(tmp_path, "plain")
    assert tf == base
    refused = run_cli("ssh", "install", "--tensorflow", tmp_path=tmp_path)
    assert refused.returncode != 0 and "tensorflow" in refused.stderr


def test_yarn_spec_scala_submits_the_launcher_jar_with_toree(tmp_path: Path) -> None:
    """Scala: spark-submit in cluster mode of our launcher jar, Toree in --jars, as GP's yarn_spark_scala meant;
    the assembly's versioned name is read from the launchers dir of this host (where spark-submit runs)."""
    lib = tmp_path / "launchers" / "scala" / "lib"
    missing = run_cli("yarn", "install", "--language", "scala", "--launchers-dir", str(tmp_path / "launchers"),
                      tmp_path=tmp_path)
    assert missing.returncode == 1 and "toree-assembly-*.jar" in missing.stderr and str(lib) in missing.stderr
    assert not kernels_dir(tmp_path).exists() or not any(kernels_dir(tmp_path).iterdir())
    lib.mkdir(parents=True)
    for jar in ("kernelfleet-toree-launcher.jar", "toree-assembly-0.5.0-incubating.jar"):
        (lib / jar).write_bytes(b"PK")
    install_ok("yarn", "--language", "scala", "--launchers-dir", str(tmp_path / "launchers"), "--yarn-endpoint",
               "http://rm1:8088", "--extra-spark-opts", "--queue q", tmp_path=tmp_path)
    spec = installed(tmp_path, "yarn_spark_scala")
    assert (spec["language"], spec["display_name"]) == ("scala", "Spark Scala (YARN Cluster Mode)")
    assert spec["env"] == {"SPARK_HOME": "/opt/spark"} and "supported_encryption" not in spec["metadata"]
    argv = spec["argv"]
    assert argv[:7] == ["/opt/spark/bin/spark-submit", "--master", "yarn", "--deploy-mode", "cluster", "--name",
                        "{kernel_id}"]
    jar = argv.index(str(lib / "kernelfleet-toree-launcher.jar"))
    assert argv[jar - 8:jar] == ["--driver-java-options", "--add-opens=java.base/java.util.jar=ALL-UNNAMED", "--jars",
                                 str(lib / "toree-assembly-0.5.0-incubating.jar"), "--class",
                                 "kernelfleet.toree.ToreeLauncher", "--queue", "q"]
    assert argv[jar + 1:] == [*LAUNCH_ARGS, "--spark-context-initialization-mode", "lazy"]
