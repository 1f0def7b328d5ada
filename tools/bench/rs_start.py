"""Start-to-first-execute of R and Scala kernels: through our launchers on the embedded default vs the bare kernels.

Every run goes through jupyter_client's AsyncKernelManager, from ``start_kernel()`` to the reply of a first
``1+1``, so the four rows differ only in what the kernelspec starts:

  kf R       ``jupyter ssh-spec install --language R`` (distributed-provisioner, broker, pure-R launcher)
  bare R     IRkernel's own kernel.json (``R --slave -e IRkernel::main()``, jupyter_client's local provisioner)
  kf Scala   ``jupyter ssh-spec install --language scala --spark`` (our run.sh and launcher jar, lazy Spark)
  bare Scala ``jupyter toree install`` (Toree's own run.sh and kernel.json, lazy Spark)

Launchers come from ``jupyter image-bootstrap install`` into a temporary directory, as in an image. Runs are
interleaved (kf, bare, kf, bare, ...) so load on a shared host hits both sides alike.

Usage: python tools/bench/rs_start.py [--runs N] [--scala-runs N] [--only r|scala] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import median, table
from jupyter_client import AsyncKernelManager
from jupyter_client.kernelspec import KernelSpecManager

JUPYTER = Path(sys.executable).with_name("jupyter")
READY_TIMEOUT = {"r": 120.0, "scala": 300.0}


class BenchError(RuntimeError):
    """A missing tool or a kernel that did not start: printed as one line."""


def package_dir(name: str) -> str:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise BenchError(f"the Python package {name!r} is missing from {sys.prefix} (pip install it)")
    return next(iter(spec.submodule_search_locations))


def jupyter(*args: str, env: dict[str, str] | None = None) -> None:
    if not JUPYTER.exists():
        raise BenchError(f"{JUPYTER} is missing: run tools/setup-venv")
    run = subprocess.run([str(JUPYTER), *args], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PATH": f"{JUPYTER.parent}{os.pathsep}{os.environ['PATH']}", **(env or {})})
    if run.returncode != 0:
        raise BenchError(f"jupyter {' '.join(args)} failed: {run.stderr.strip()[-2000:]}")


def edit_env(spec_dir: Path, **env: str) -> None:
    path = spec_dir / "kernel.json"
    spec = json.loads(path.read_text())
    spec["env"] = {**spec.get("env", {}), **env}
    path.write_text(json.dumps(spec, indent=2))


def java_home() -> str:
    if os.environ.get("JAVA_HOME"):
        return os.environ["JAVA_HOME"]
    java = shutil.which("java")
    if java is None:
        raise BenchError("java is not installed: Scala kernels need Java 17 (apt-get install openjdk-17-jre-headless)")
    return str(Path(os.path.realpath(java)).parents[1])


def install(root: Path, languages: list[str]) -> Path:
    """Both kinds of kernelspec for each language into ``root``; returns the kernels directory."""
    kernels = root / "share" / "jupyter" / "kernels"
    bin_dir = root / "bin"
    args = [a for lang in languages for a in ("--languages", lang)]
    jupyter("image-bootstrap", "install", *args, "--install-dir", str(bin_dir))
    launchers = str(bin_dir / "kernel-launchers")
    if "r" in languages:
        if shutil.which("R") is None:
            raise BenchError("R is not installed (apt-get install r-base-core r-cran-irkernel)")
        found = subprocess.run(["Rscript", "-e", 'cat(system.file("kernelspec", package = "IRkernel"))'],
                               capture_output=True, text=True, timeout=60).stdout.strip()
        if not found:
            raise BenchError("IRkernel is not installed (apt-get install r-cran-irkernel)")
        jupyter("ssh-spec", "install", "--language", "R", "--launchers-dir", launchers, "--prefix", str(root),
                "--kernel-name", "kf_r", "--launch-timeout", "120")
        edit_env(kernels / "kf_r", KERNEL_IP="127.0.0.1")
        shutil.copytree(found, kernels / "bare_r")  # IRkernel's own kernelspec, unchanged
    if "scala" in languages:
        spark_home, jhome = package_dir("pyspark"), java_home()
        package_dir("toree")
        common = {"JAVA_HOME": jhome, "SPARK_LOCAL_IP": "127.0.0.1"}
        jupyter("ssh-spec", "install", "--language", "scala", "--launchers-dir", launchers, "--prefix", str(root),
                "--kernel-name", "kf_scala", "--spark", "--spark-home", spark_home, "--spark-init-mode", "lazy",
                "--launch-timeout", "300")
        edit_env(kernels / "kf_scala", KERNEL_IP="127.0.0.1", **common)
        # Toree's installer has no --prefix: its --user dir is redirected. The add-opens is what Toree needs on
        # Java 17 (our run.sh passes the same).
        jupyter("toree", "install", "--user", "--kernel_name=bare", "--interpreters=Scala",
                f"--spark_home={spark_home}",
                "--spark_opts=--driver-java-options=--add-opens=java.base/java.util.jar=ALL-UNNAMED",
                "--toree_opts=--spark-context-initialization-mode lazy",
                env={"JUPYTER_DATA_DIR": str(root / "share" / "jupyter")})
        edit_env(kernels / "bare_scala", **common)
    return kernels


async def one_run(kernels: Path, name: str, language: str) -> float:
    """Seconds from start_kernel() to the reply of a first ``1+1``; the kernel is shut down afterwards."""
    km = AsyncKernelManager(kernel_name=name, kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernels)]))
    # Our launchers' output goes to the server's log already; the bare kernels' would flood the terminal.
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL} if name.startswith("bare") else {}
    started = time.perf_counter()
    await km.start_kernel(**quiet)
    client = km.client()
    try:
        client.start_channels(hb=False)  # both kernels answer heartbeats late while busy; liveness is km's poll
        await client.wait_for_ready(timeout=READY_TIMEOUT[language])
        msg_id = client.execute("1+1")
        while (reply := await client.get_shell_msg(timeout=READY_TIMEOUT[language]))["parent_header"].get(
                "msg_id") != msg_id:
            pass
        took = time.perf_counter() - started
        if reply["content"]["status"] != "ok":
            raise BenchError(f"{name}: 1+1 failed: {reply['content']}")
        return took
    finally:
        client.stop_channels()
        await km.shutdown_kernel()


async def bench(languages: list[str], runs: dict[str, int]) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="kf-rs-bench-") as tmp:
        kernels = install(Path(tmp), languages)
        # The broker binds loopback, as everything here does.
        os.environ.setdefault("KF_RESPONSE_IP", "127.0.0.1")
        for language in languages:
            for i in range(runs[language]):
                for side in ("kf", "bare"):
                    name = f"{side}_{language}"
                    took = await one_run(kernels, name, language)
                    results.setdefault(name, []).append(took)
                    print(f"  {name} run {i + 1}: {took:.2f}s", file=sys.stderr)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per R kernelspec (default 5)")
    parser.add_argument("--scala-runs", type=int, default=3, help="runs per Scala kernelspec (default 3)")
    parser.add_argument("--only", choices=["r", "scala"], help="one language only")
    parser.add_argument("--json", action="store_true", help="print the raw numbers as JSON")
    args = parser.parse_args()
    languages = [args.only] if args.only else ["r", "scala"]
    try:
        results = asyncio.run(bench(languages, {"r": args.runs, "scala": args.scala_runs}))
    except BenchError as err:
        print(f"rs_start: {err}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(results))
        return 0
    print(f"start to first execute, seconds (1-min load average at the end: {os.getloadavg()[0]:.1f})")
    rows = [("kernelspec", "median", "min", "max", "runs")]
    for name, values in results.items():
        rows.append((name, f"{median(values):.2f}", f"{min(values):.2f}", f"{max(values):.2f}", str(len(values))))
    table(rows)
    for language in languages:
        ours, bare = median(results[f"kf_{language}"]), median(results[f"bare_{language}"])
        print(f"{language}: launcher overhead {ours - bare:+.2f}s ({ours / bare:.2f}x the bare kernel)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
