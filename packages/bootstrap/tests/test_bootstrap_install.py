"""`jupyter image-bootstrap install`: output, files and modes, language handling, missing files."""

from __future__ import annotations

import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from kernelfleet.bootstrap.errors import BootstrapError
from kernelfleet.bootstrap.install import SCRIPT_NAME, install, normalize_languages

EnvMaker = Callable[..., dict[str, str]]
CliRunner = Callable[..., subprocess.CompletedProcess[str]]


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_no_subcommand_prints_help_and_fails(run_cli: CliRunner) -> None:
    result = run_cli()
    assert result.returncode == 1
    assert "install" in result.stdout
    assert "Subcommands" in result.stdout


def test_install_python_prints_the_three_lines(tmp_path: Path, run_cli: CliRunner) -> None:
    result = run_cli("install", "--languages", "python", "--install-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"[ImageBootstrapInstaller] Kernel-launcher files have been copied to {tmp_path}/kernel-launchers "
        "for the following languages: ['python'].",
        f"[ImageBootstrapInstaller] bootstrap-kernel.sh has been copied to {tmp_path}.",
        "[ImageBootstrapInstaller] The CMD entry in the Dockerfile should be updated to: "
        f"CMD {tmp_path}/bootstrap-kernel.sh",
    ]
    assert mode_of(tmp_path / SCRIPT_NAME) == 0o755
    shim = tmp_path / "kernel-launchers" / "python" / "launch_ipykernel.py"
    assert shim.is_file()


def test_python_shim_runs_the_real_launcher(tmp_path: Path, clean_env: EnvMaker, run_cli: CliRunner) -> None:
    assert run_cli("install", "--languages", "python", "--install-dir", str(tmp_path)).returncode == 0
    for shim in (tmp_path / "kernel-launchers" / "python" / "launch_ipykernel.py",
                 tmp_path / "kernel-launchers" / "python" / "scripts" / "launch_ipykernel.py"):  # GP's path too
        result = subprocess.run(
            [sys.executable, str(shim), "--help"], env=clean_env(), capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
        assert "--kernel-id" in result.stdout
        assert "--response-address" in result.stdout


def test_launchers_only_writes_no_script(tmp_path: Path, run_cli: CliRunner) -> None:
    result = run_cli("install", "--languages=PYTHON", "--launchers-only", "--install-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"[ImageBootstrapInstaller] Kernel-launcher files have been copied to {tmp_path}/kernel-launchers "
        "for the following languages: ['python'].",
    ]
    assert not (tmp_path / SCRIPT_NAME).exists()
    assert (tmp_path / "kernel-launchers" / "python" / "launch_ipykernel.py").is_file()


def test_unknown_language_is_rejected_before_writing(tmp_path: Path, run_cli: CliRunner) -> None:
    result = run_cli("install", "--languages", "python", "--languages", "Cobol", "--install-dir", str(tmp_path))
    assert result.returncode == 1
    assert "unsupported language 'Cobol'; supported languages: python, r, scala" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_second_word_after_languages_is_not_dropped_silently(tmp_path: Path, run_cli: CliRunner) -> None:
    result = run_cli("install", "--languages", "python", "r", "--install-dir", str(tmp_path))
    assert result.returncode == 1
    assert "unexpected argument 'r'; repeat the option for each language" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_missing_launcher_files_are_all_named_and_nothing_is_written(tmp_path: Path) -> None:
    empty = tmp_path / "no-launchers"
    empty.mkdir()
    target = tmp_path / "image"
    with pytest.raises(BootstrapError) as caught:
        install(["python", "r", "scala"], target, launcher_roots=[empty], toree_jar=tmp_path / "nope.jar")
    message = str(caught.value)
    assert "launch_IRkernel.R was not found" in message
    assert "run.sh" in message
    assert "kernelfleet-toree-launcher.jar" in message
    assert f"--toree-jar {tmp_path / 'nope.jar'} is not a file" in message
    assert not target.exists()


def test_languages_are_case_insensitive_and_deduplicated() -> None:
    assert normalize_languages(["Python", "R", "python", "SCALA"]) == ["python", "r", "scala"]
    with pytest.raises(BootstrapError, match="no language given"):
        normalize_languages([])


def make_launcher_tree(root: Path) -> Path:
    """A stand-in of the repository's launchers/ layout: only the copy logic is tested with it."""
    launchers = root / "launchers"
    (launchers / "r").mkdir(parents=True)
    (launchers / "r" / "launch_IRkernel.R").write_text("# launcher\n")
    (launchers / "r" / "comm_server.R").write_text("# sibling\n")
    (launchers / "r" / "README.md").write_text("not a launcher file\n")
    (launchers / "scala" / "dist").mkdir(parents=True)
    (launchers / "scala" / "run.sh").write_text("#!/bin/sh\n")
    (launchers / "scala" / "dist" / "kernelfleet-toree-launcher.jar").write_bytes(b"PK launcher")
    return launchers


def test_r_and_scala_copy_layout_and_modes(tmp_path: Path) -> None:
    launchers = make_launcher_tree(tmp_path)
    toree = tmp_path / "toree-assembly-0.5.0-incubating.jar"
    toree.write_bytes(b"PK toree")
    target = tmp_path / "image"
    # a stale jar from an earlier install must not survive on the classpath
    (target / "kernel-launchers" / "scala" / "lib").mkdir(parents=True)
    (target / "kernel-launchers" / "scala" / "lib" / "toree-assembly-0.4.0.jar").write_bytes(b"old")

    result = install(["R", "Scala"], target, launcher_roots=[tmp_path / "missing", launchers], toree_jar=toree)

    assert result.languages == ["r", "scala"]
    kl = target / "kernel-launchers"
    assert sorted(p.name for p in (kl / "r").iterdir()) == ["comm_server.R", "launch_IRkernel.R"]
    # Gateway Provisioners' path leads to the same files.
    assert (kl / "R" / "scripts" / "launch_IRkernel.R").resolve() == (kl / "r" / "launch_IRkernel.R").resolve()
    assert mode_of(kl / "r" / "launch_IRkernel.R") == 0o644
    assert sorted(str(p.relative_to(kl / "scala")) for p in (kl / "scala").rglob("*") if p.is_file()) == [
        "bin/run.sh",
        "lib/kernelfleet-toree-launcher.jar",
        "lib/toree-assembly-0.5.0-incubating.jar",
    ]
    assert mode_of(kl / "scala" / "bin" / "run.sh") == 0o755
    assert (kl / "scala" / "lib" / "kernelfleet-toree-launcher.jar").read_bytes() == b"PK launcher"
    assert mode_of(target / SCRIPT_NAME) == 0o755


def test_toree_jar_found_in_installed_toree_package(tmp_path: Path, clean_env: EnvMaker) -> None:
    """The assembly jar comes from the installed `toree` package when --toree-jar is not given."""
    site = tmp_path / "site"
    (site / "toree" / "lib").mkdir(parents=True)
    (site / "toree" / "__init__.py").write_text("")
    (site / "toree" / "lib" / "toree-assembly-0.5.0-incubating.jar").write_bytes(b"PK toree")
    launchers = make_launcher_tree(tmp_path)
    script = (
        "import sys; from pathlib import Path; from kernelfleet.bootstrap.install import install; "
        f"install(['scala'], Path(sys.argv[1]), launcher_roots=[Path({str(launchers)!r})], launchers_only=True)"
    )
    target = tmp_path / "image"
    env = clean_env(PYTHONPATH=str(site))
    result = subprocess.run(
        [sys.executable, "-c", script, str(target)], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert (target / "kernel-launchers" / "scala" / "lib" / "toree-assembly-0.5.0-incubating.jar").is_file()


def test_scala_without_toree_says_how_to_get_it(tmp_path: Path, run_cli: CliRunner) -> None:
    result = run_cli(
        "install", "--languages", "scala", "--toree-jar", str(tmp_path / "absent.jar"), "--install-dir", str(tmp_path)
    )
    assert result.returncode == 1
    assert "pip install apache-toree" in result.stderr
    assert not (tmp_path / SCRIPT_NAME).exists()


def test_real_r_launcher_is_installed(tmp_path: Path, run_cli: CliRunner) -> None:
    """With the repository's (or the wheel's) R launcher, `--languages r` copies every *.R file and its VERSION."""
    from kernelfleet.bootstrap.sources import R_LAUNCHER, default_launcher_roots

    found = [root / "r" for root in default_launcher_roots() if (root / "r" / R_LAUNCHER).is_file()]
    assert found, f"the R launcher is missing: no {R_LAUNCHER} under {default_launcher_roots()}"
    result = run_cli("install", "--languages", "python", "--languages", "r", "--install-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "for the following languages: ['python', 'r']." in result.stdout
    expected = sorted([*(p.name for p in found[0].glob("*.R")), "VERSION"])
    assert sorted(p.name for p in (tmp_path / "kernel-launchers" / "r").iterdir()) == expected
    assert sorted(p.name for p in (tmp_path / "kernel-launchers" / "R" / "scripts").iterdir()) == expected
