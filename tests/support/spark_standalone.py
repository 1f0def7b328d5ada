"""A real Spark standalone cluster (one master, one worker) on loopback, from the pyspark distribution in the venv.

Started by ``spark-class org.apache.spark.deploy.master.Master`` / ``...worker.Worker`` with small memory and ports
the daemons choose themselves; readiness is read from their own log lines (the master's URL and web UI port, the
worker's registration), never polled. ``status()`` is the master's JSON (``http://127.0.0.1:<webui>/json/``): its
``activeapps``/``completedapps`` say which application ran where. Both daemons are killed (their process groups) by
``stop()``; a missing JDK or pyspark fails with what to install.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MASTER_URL = re.compile(r"Starting Spark master at (spark://\S+)")
WEBUI = re.compile(r"(?:MasterWebUI|Master:).*started at http://[^:]+:(\d+)|Bound MasterWebUI to \S+, and started at "
                   r"http://[^:]+:(\d+)")
ELECTED = "I have been elected leader"
REGISTERED = "Successfully registered with master"
START_WITHIN = 120.0  # JVM start on a loaded 2-core host; bounds the wait, not an expectation


class SparkMissing(RuntimeError):
    """pyspark or a JDK is not installed; the message says what to install."""


def spark_home() -> str:
    spec = importlib.util.find_spec("pyspark")
    home = next(iter(spec.submodule_search_locations)) if spec and spec.submodule_search_locations else None
    if home is None or not Path(home, "bin", "spark-class").exists():
        raise SparkMissing("the 'pyspark' Python package is missing: pip install 'pyspark==3.5.*' (it ships Spark)")
    return home


def java_home() -> str:
    java = shutil.which("java", path=os.path.join(os.environ["JAVA_HOME"], "bin")) if os.environ.get(
        "JAVA_HOME") else shutil.which("java")
    if java is None:
        raise SparkMissing("java is not installed: Spark needs a JDK 17 (Debian: apt-get install openjdk-17-jdk)")
    return os.environ.get("JAVA_HOME") or str(Path(os.path.realpath(java)).parents[1])


@dataclass
class SparkStandalone:
    """The running cluster: ``master`` (spark://...), ``webui_port``, and the daemons' processes."""

    workdir: Path
    env: dict[str, str]
    master: str = ""
    webui_port: int = 0
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)

    def status(self) -> dict[str, Any]:
        """The master's JSON status (workers, active and completed applications)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.webui_port}/json/", timeout=60) as response:
            return json.loads(response.read())

    async def status_async(self) -> dict[str, Any]:
        return await asyncio.to_thread(self.status)

    def _daemon(self, cls: str, args: list[str], until: str) -> list[str]:
        """Start one daemon; return its log lines up to the one that says it is ready (read by a thread that
        keeps draining the output afterwards, so the daemon never blocks on a full pipe)."""
        process = subprocess.Popen(
            [str(Path(self.env["SPARK_HOME"], "bin", "spark-class")), cls, *args], env=self.env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            cwd=self.workdir,
        )
        self.processes.append(process)
        ready = threading.Event()
        lines: list[str] = []

        def read() -> None:
            assert process.stdout is not None
            for raw in process.stdout:
                line = raw.decode(errors="replace").rstrip()
                if not ready.is_set():
                    lines.append(line)
                    if until in line:
                        ready.set()
            ready.set()  # EOF: the daemon exited

        threading.Thread(target=read, name=f"spark-{cls.rsplit('.', 1)[1]}", daemon=True).start()
        if not ready.wait(START_WITHIN) or not lines or until not in lines[-1]:
            raise RuntimeError(f"{cls} was not ready within {START_WITHIN:g}s or exited:\n" + "\n".join(lines[-30:]))
        self.logs += lines
        return lines

    def start(self) -> None:
        text = "\n".join(self._daemon("org.apache.spark.deploy.master.Master",
                                      ["--host", "127.0.0.1", "--port", "0", "--webui-port", "0"], ELECTED))
        master, webui = MASTER_URL.search(text), WEBUI.search(text)
        if master is None or webui is None:
            raise RuntimeError("the Spark master did not print its URL and web UI port:\n" + text[-3000:])
        self.master, self.webui_port = master.group(1), int(webui.group(1) or webui.group(2))
        self._daemon("org.apache.spark.deploy.worker.Worker",
                     ["--host", "127.0.0.1", "--port", "0", "--webui-port", "0", "--cores", "2", "--memory", "1g",
                      "--work-dir", str(self.workdir / "work"), self.master], REGISTERED)

    def stop(self) -> None:
        for process in reversed(self.processes):
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait()


def start_standalone(workdir: Path) -> SparkStandalone:
    """Master and worker up, the worker registered; raises SparkMissing when Spark or Java is not installed."""
    env = dict(os.environ, SPARK_HOME=spark_home(), JAVA_HOME=java_home(), SPARK_LOCAL_IP="127.0.0.1",
               SPARK_DAEMON_MEMORY="256m", SPARK_LOG_DIR=str(workdir / "logs"), SPARK_WORKER_DIR=str(workdir / "work"),
               SPARK_NO_DAEMONIZE="1")
    (workdir / "work").mkdir(parents=True, exist_ok=True)
    cluster = SparkStandalone(workdir, env)
    try:
        cluster.start()
    except BaseException:
        cluster.stop()
        raise
    return cluster


def driver_api(ui_url: str, path: str) -> Any:
    """The driver's monitoring REST API (``<sc.uiWebUrl>/api/v1/...``): its jobs and executors."""
    with urllib.request.urlopen(f"{ui_url}/api/v1/{path}", timeout=60) as response:
        return json.loads(response.read())
