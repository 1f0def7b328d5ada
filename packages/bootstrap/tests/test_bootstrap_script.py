"""The installed bootstrap-kernel.sh: validation, the command line it execs, and what it never prints."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kernelfleet.bootstrap.install import SCRIPT_NAME

EnvMaker = Callable[..., dict[str, str]]

# Shaped like the real values (base64 DER, base64url) but unique, so any leak is easy to spot.
FAKE_PUBLIC_KEY = "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAtestPUBLICkeyVALUE0123456789+/abcdefQIDAQAB"
FAKE_TOKEN = "launch-token-SECRET-VALUE-3f9a1c7e5b"

REQUIRED = {
    "KERNEL_ID": "k-1234abcd",
    "KERNEL_LANGUAGE": "python",
    "RESPONSE_ADDRESS": "127.0.0.1:8877",
    "PUBLIC_KEY": FAKE_PUBLIC_KEY,
    "LAUNCH_TOKEN": FAKE_TOKEN,
}


def read_record(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def run_script(script: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(script)], env=env, capture_output=True, text=True, timeout=60)
    for secret in (FAKE_PUBLIC_KEY, FAKE_TOKEN):
        assert secret not in result.stdout + result.stderr, "bootstrap output leaked a secret"
    return result


def test_installed_script_is_executable_and_knows_its_install_dir(installed: Path) -> None:
    script = installed / SCRIPT_NAME
    mode = stat.S_IMODE(script.stat().st_mode)
    assert mode == 0o755
    text = script.read_text()
    assert "@KERNELFLEET_INSTALL_DIR@" not in text
    assert f"install_dir='{installed}'" in text
    code = [line.split("#", 1)[0] for line in text.splitlines()]
    assert not [line for line in code if "set -x" in line or "xtrace" in line or "printenv" in line]


@pytest.mark.parametrize("missing", sorted(REQUIRED))
def test_each_missing_variable_is_named(installed: Path, missing: str, clean_env: EnvMaker) -> None:
    env = clean_env(**{k: v for k, v in REQUIRED.items() if k != missing})
    result = run_script(installed / SCRIPT_NAME, env)
    assert result.returncode == 1
    assert f"required environment variable {missing} " in result.stderr
    assert result.stderr.count("required environment variable") == 1


def test_all_missing_variables_are_named_at_once(installed: Path, clean_env: EnvMaker) -> None:
    result = run_script(installed / SCRIPT_NAME, clean_env())
    assert result.returncode == 1
    for name in REQUIRED:
        assert f"required environment variable {name} " in result.stderr
    assert "(or EG_RESPONSE_ADDRESS)" in result.stderr
    assert "(or EG_PUBLIC_KEY)" in result.stderr


def test_empty_variable_counts_as_missing(installed: Path, clean_env: EnvMaker) -> None:
    result = run_script(installed / SCRIPT_NAME, clean_env(**{**REQUIRED, "LAUNCH_TOKEN": ""}))
    assert result.returncode == 1
    assert "required environment variable LAUNCH_TOKEN (or LAUNCH_TOKEN_FILE) is not set" in result.stderr


def test_token_file_is_handed_to_the_launcher_unread(
    installed: Path, recorder: Callable[[Path], Path], tmp_path: Path, clean_env: EnvMaker
) -> None:
    """Container provisioners name a token file: the script passes its name on and never puts the token in an
    environment (the launcher reads and removes the file)."""
    out = recorder(tmp_path / "fake-python")
    token_file = tmp_path / "launch-token"
    token_file.write_text(FAKE_TOKEN)
    token_file.chmod(0o400)
    env = clean_env(**{k: v for k, v in REQUIRED.items() if k != "LAUNCH_TOKEN"},
                    LAUNCH_TOKEN_FILE=str(token_file), KERNEL_PYTHON=str(tmp_path / "fake-python"))
    result = run_script(installed / SCRIPT_NAME, env)
    assert result.returncode == 0, result.stderr
    record = read_record(out)
    assert record["token"] is None and record["token_file"] == str(token_file)
    assert FAKE_TOKEN not in json.dumps(record)


def test_unreadable_token_file_is_named(installed: Path, tmp_path: Path, clean_env: EnvMaker) -> None:
    env = clean_env(**{k: v for k, v in REQUIRED.items() if k != "LAUNCH_TOKEN"},
                    LAUNCH_TOKEN_FILE=str(tmp_path / "no-such-file"))
    result = run_script(installed / SCRIPT_NAME, env)
    assert result.returncode == 1
    assert "LAUNCH_TOKEN_FILE names no file this user" in result.stderr


@pytest.mark.parametrize("language", ["cobol", "PYTHON3", "java;rm -rf /"])
def test_unknown_language_lists_supported(installed: Path, language: str, clean_env: EnvMaker) -> None:
    result = run_script(installed / SCRIPT_NAME, clean_env(**{**REQUIRED, "KERNEL_LANGUAGE": language}))
    assert result.returncode == 1
    assert "supported languages: python, r, scala" in result.stderr
    assert ";" not in result.stderr.split("'")[1]  # the echoed value is sanitised


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("KERNEL_ID", "--kernel-class-name", "KERNEL_ID must be"),
        ("KERNEL_ID", "a b", "KERNEL_ID must be"),
        ("PORT_RANGE", "40000-41000", "PORT_RANGE must look like"),
        ("RESPONSE_ADDRESS", "--public-key", "RESPONSE_ADDRESS must be"),
        ("PUBLIC_KEY", "-----BEGIN PUBLIC KEY-----", "PUBLIC_KEY must be base64"),
        ("KERNEL_SPARK_CONTEXT_INIT_MODE", "sometimes", "KERNEL_SPARK_CONTEXT_INIT_MODE must be one of"),
        ("KERNEL_CLASS_NAME", "x; import os", "KERNEL_CLASS_NAME must be"),
        ("KERNEL_CLUSTER_TYPE", "mesos", "KERNEL_CLUSTER_TYPE must be one of"),
    ],
)
def test_malformed_values_are_refused(
    installed: Path, name: str, value: str, message: str, clean_env: EnvMaker
) -> None:
    result = run_script(installed / SCRIPT_NAME, clean_env(**{**REQUIRED, name: value}))
    assert result.returncode == 1
    assert message in result.stderr


def test_python_command_line(
    installed: Path, recorder: Callable[[Path], Path], tmp_path: Path, clean_env: EnvMaker
) -> None:
    out = recorder(tmp_path / "fake-python")
    env = clean_env(**{**REQUIRED, "KERNEL_LANGUAGE": "Python"}, KERNEL_PYTHON=str(tmp_path / "fake-python"))
    result = run_script(installed / SCRIPT_NAME, env)
    assert result.returncode == 0, result.stderr
    record = read_record(out)
    assert record["argv"] == [
        "-m", "kernelfleet.launcher",
        "--kernel-id", "k-1234abcd",
        "--port-range", "0..0",
        "--response-address", "127.0.0.1:8877",
        "--public-key", FAKE_PUBLIC_KEY,
        "--spark-context-initialization-mode", "none",
    ]  # fmt: skip
    assert record["token"] == FAKE_TOKEN  # in the environment, never on argv
    assert FAKE_TOKEN not in record["argv"]


def test_python_optional_values_and_eg_fallbacks(
    installed: Path, recorder: Callable[[Path], Path], tmp_path: Path, clean_env: EnvMaker
) -> None:
    out = recorder(tmp_path / "fake-python")
    env = clean_env(
        KERNEL_ID="k2",
        KERNEL_LANGUAGE="PYTHON",
        EG_RESPONSE_ADDRESS="[::1]:9000",
        EG_PUBLIC_KEY=FAKE_PUBLIC_KEY,
        EG_PORT_RANGE="40000..41000",
        LAUNCH_TOKEN=FAKE_TOKEN,
        KERNEL_CLASS_NAME="my_kernels.FancyKernel",
        KERNEL_CLUSTER_TYPE="Dask",
        KERNEL_SPARK_CONTEXT_INIT_MODE="Lazy",
        KERNEL_PYTHON=str(tmp_path / "fake-python"),
    )
    result = run_script(installed / SCRIPT_NAME, env)
    assert result.returncode == 0, result.stderr
    assert read_record(out)["argv"] == [
        "-m", "kernelfleet.launcher",
        "--kernel-id", "k2",
        "--port-range", "40000..41000",
        "--response-address", "[::1]:9000",
        "--public-key", FAKE_PUBLIC_KEY,
        "--kernel-class-name", "my_kernels.FancyKernel",
        "--cluster-type", "dask",
        "--spark-context-initialization-mode", "lazy",
    ]  # fmt: skip


def test_primary_names_win_over_eg_names(
    installed: Path, recorder: Callable[[Path], Path], tmp_path: Path, clean_env: EnvMaker
) -> None:
    out = recorder(tmp_path / "fake-python")
    env = clean_env(
        **REQUIRED,
        EG_RESPONSE_ADDRESS="10.0.0.1:1",
        EG_PORT_RANGE="1..2",
        PORT_RANGE="50000..51000",
        KERNEL_PYTHON=str(tmp_path / "fake-python"),
    )
    assert run_script(installed / SCRIPT_NAME, env).returncode == 0
    argv = read_record(out)["argv"]
    assert isinstance(argv, list)
    assert argv[argv.index("--response-address") + 1] == "127.0.0.1:8877"
    assert argv[argv.index("--port-range") + 1] == "50000..51000"


def test_r_command_line(installed: Path, recorder: Callable[[Path], Path], tmp_path: Path, clean_env: EnvMaker) -> None:
    # Rscript is replaced on PATH by a recorder; the launcher file only has to exist.
    out = recorder(tmp_path / "fakebin" / "Rscript")
    launchers = tmp_path / "launchers"
    (launchers / "r").mkdir(parents=True)
    (launchers / "r" / "launch_IRkernel.R").write_text("# stand-in\n")
    env = clean_env(**{**REQUIRED, "KERNEL_LANGUAGE": "R"}, KERNEL_LAUNCHERS_DIR=str(launchers))
    env["PATH"] = f"{tmp_path / 'fakebin'}{os.pathsep}{env['PATH']}"
    result = run_script(installed / SCRIPT_NAME, env)
    assert result.returncode == 0, result.stderr
    assert read_record(out)["argv"] == [
        str(launchers / "r" / "launch_IRkernel.R"),
        "--kernel-id", "k-1234abcd",
        "--port-range", "0..0",
        "--response-address", "127.0.0.1:8877",
        "--public-key", FAKE_PUBLIC_KEY,
        "--spark-context-initialization-mode", "none",
    ]  # fmt: skip


def test_scala_command_line(
    installed: Path, recorder: Callable[[Path], Path], tmp_path: Path, clean_env: EnvMaker
) -> None:
    launchers = tmp_path / "launchers"
    out = recorder(launchers / "scala" / "bin" / "run.sh")
    env = clean_env(
        **{**REQUIRED, "KERNEL_LANGUAGE": "Scala"},
        KERNEL_LAUNCHERS_DIR=str(launchers),
        KERNEL_SPARK_CONTEXT_INIT_MODE="eager",
    )
    result = run_script(installed / SCRIPT_NAME, env)
    assert result.returncode == 0, result.stderr
    record = read_record(out)
    assert record["argv"] == [
        "--kernel-id", "k-1234abcd",
        "--port-range", "0..0",
        "--response-address", "127.0.0.1:8877",
        "--public-key", FAKE_PUBLIC_KEY,
        "--spark-context-initialization-mode", "eager",
    ]  # fmt: skip
    assert record["token"] == FAKE_TOKEN


@pytest.mark.parametrize(("language", "path"), [("r", "r/launch_IRkernel.R"), ("scala", "scala/bin/run.sh")])
def test_missing_launcher_names_the_default_path(
    installed: Path, language: str, path: str, clean_env: EnvMaker
) -> None:
    result = run_script(installed / SCRIPT_NAME, clean_env(**{**REQUIRED, "KERNEL_LANGUAGE": language}))
    assert result.returncode == 1
    assert str(installed / "kernel-launchers" / path) in result.stderr
    assert f"jupyter image-bootstrap install --languages {language}" in result.stderr


def test_uninstalled_script_uses_its_own_directory(tmp_path: Path, clean_env: EnvMaker) -> None:
    """The packaged template (never substituted) still finds launchers beside itself."""
    from kernelfleet.bootstrap import sources

    script = tmp_path / SCRIPT_NAME
    script.write_text((sources.PACKAGE_DIR / SCRIPT_NAME).read_text())
    script.chmod(0o755)
    result = run_script(script, clean_env(**{**REQUIRED, "KERNEL_LANGUAGE": "r"}))
    assert result.returncode == 1
    assert str(tmp_path / "kernel-launchers" / "r" / "launch_IRkernel.R") in result.stderr


# A relative KERNEL_PYTHON / KERNEL_LAUNCHERS_DIR would be resolved in the working directory, which a request may
# choose (KERNEL_WORKING_DIR with mirror_working_dirs): the bootstrap refuses both.
@pytest.mark.parametrize(
    ("language", "name", "value", "stand_in"),
    [
        ("python", "KERNEL_PYTHON", "bin/python", "bin/python"),
        ("python", "KERNEL_PYTHON", "./python", "python"),
        ("scala", "KERNEL_LAUNCHERS_DIR", "launchers", "launchers/scala/bin/run.sh"),
        ("scala", "KERNEL_LAUNCHERS_DIR", "./launchers", "launchers/scala/bin/run.sh"),
    ],
)
def test_relative_code_paths_are_refused(
    installed: Path, recorder: Callable[[Path], Path], tmp_path: Path, clean_env: EnvMaker,
    language: str, name: str, value: str, stand_in: str,
) -> None:
    workdir = tmp_path / "work"
    out = recorder(workdir / stand_in)
    env = clean_env(**{**REQUIRED, "KERNEL_LANGUAGE": language, name: value})
    result = subprocess.run([str(installed / SCRIPT_NAME)], env=env, cwd=workdir, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 1, result.stderr
    assert f"{name} must be an absolute path" in result.stderr
    assert FAKE_TOKEN not in result.stdout + result.stderr
    assert not out.exists(), "the bootstrap ran a program from the working directory"


def test_python_command_name_is_looked_up_on_path(
    installed: Path, recorder: Callable[[Path], Path], tmp_path: Path, clean_env: EnvMaker
) -> None:
    out = recorder(tmp_path / "path-bin" / "kf-fake-python")
    env = clean_env(**REQUIRED, KERNEL_PYTHON="kf-fake-python")
    env["PATH"] = f"{tmp_path / 'path-bin'}{os.pathsep}{env['PATH']}"
    result = run_script(installed / SCRIPT_NAME, env)
    assert result.returncode == 0, result.stderr
    assert read_record(out)["argv"][:2] == ["-m", "kernelfleet.launcher"]
