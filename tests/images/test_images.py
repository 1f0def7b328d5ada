"""Kernel images, for real: built from local wheels only, run by dockerd, reporting to a real broker.

The images are built once per session with tools/build-images (fast when nothing changed: wheels
are cached and docker reuses its build cache), plus the two seed images of tests/images/extend
("extend our image") and tests/images/byo ("bring your own image"). Each kernel container gets only
what a container provisioner passes (environment variables, host networking); the test talks to
the kernel over jupyter_client and stops it over the comm port, as the server does. Nothing is
skipped: without dockerd every test fails saying so.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import time
import uuid
import zipfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.asynchronous.client import AsyncKernelClient
from kf_testing import execute

from kernelfleet.protocol import Report
from kernelfleet.protocol.comm_client import send_request
from kernelfleet.provisioners.broker import ResponseBroker

ROOT = Path(__file__).resolve().parents[2]
DOCKER = os.environ.get("DOCKER", "/usr/bin/docker" if Path("/usr/bin/docker").exists() else "docker")
BASE_IMAGE = os.environ.get("KF_BASE_IMAGE", "kernelfleet/base:bookworm")
KERNEL_IMAGE = "kernelfleet/kernel-py:dev"
EXTEND_IMAGE = "kernelfleet-test/kernel-py-extended:dev"
BYO_IMAGE = "kernelfleet-test/byo-python:dev"
TEST_LABEL = "org.kernelfleet.test=images"
PROBE_MODULE = "kf_extend_probe"


@dataclass(frozen=True)
class Images:
    kernel: str
    extended: str
    byo: str


def docker(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the docker CLI; a failure raises with docker's own message."""
    done = subprocess.run([DOCKER, *args], capture_output=True, text=True, timeout=timeout, check=False)
    if check and done.returncode != 0:
        raise AssertionError(f"docker {' '.join(args[:3])} failed ({done.returncode}): {done.stderr.strip()}")
    return done


def _build(tag: str, context: Path, dockerfile: Path, **build_args: str) -> None:
    args = ["build", "-q", "-t", tag, "-f", str(dockerfile)]
    for name, value in build_args.items():
        args += ["--build-arg", f"{name}={value}"]
    env = {**os.environ, "DOCKER_BUILDKIT": "1"}
    done = subprocess.run([DOCKER, *args, str(context)], capture_output=True, text=True, env=env, timeout=900,
                          check=False)
    if done.returncode != 0:
        raise AssertionError(f"building {tag} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")


def make_probe_wheel(directory: Path) -> Path:
    """A tiny pure-Python wheel, so the extension test installs something that no image has yet."""
    dist = "kf_extend_probe-1.0"
    path = directory / "kf_extend_probe-1.0-py3-none-any.whl"
    files = {
        f"{PROBE_MODULE}.py": "VALUE = 'extended-ok'\n",
        f"{dist}.dist-info/METADATA": "Metadata-Version: 2.1\nName: kf-extend-probe\nVersion: 1.0\n",
        f"{dist}.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: kernelfleet-tests\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
    }
    record = "".join(f"{name},,\n" for name in files) + f"{dist}.dist-info/RECORD,,\n"
    with zipfile.ZipFile(path, "w") as wheel:
        for name, text in files.items():
            wheel.writestr(name, text)
        wheel.writestr(f"{dist}.dist-info/RECORD", record)
    return path


@pytest.fixture(scope="session")
def docker_ready() -> None:
    """dockerd answers; fail with what is missing otherwise."""
    if shutil.which(DOCKER) is None:
        pytest.fail(f"the docker CLI ({DOCKER}) is not installed (apt-get install docker.io)")
    info = subprocess.run([DOCKER, "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True,
                          timeout=30, check=False)
    if info.returncode != 0:
        pytest.fail(f"dockerd is not reachable through {DOCKER} ({info.stderr.strip()}); start dockerd")


@pytest.fixture(scope="session")
def images(docker_ready: None, tmp_path_factory: pytest.TempPathFactory) -> Images:
    """Our kernel image (tools/build-images) and the two seed images built on it and on the base."""
    wheels = tmp_path_factory.mktemp("wheelhouse")
    done = subprocess.run([str(ROOT / "tools" / "build-images"), "--export-wheels", str(wheels)],
                          capture_output=True, text=True, timeout=1800, check=False)
    if done.returncode != 0:
        pytest.fail(f"tools/build-images failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")

    extend_context = tmp_path_factory.mktemp("extend")
    (extend_context / "wheels").mkdir()
    make_probe_wheel(extend_context / "wheels")
    _build(EXTEND_IMAGE, extend_context, ROOT / "tests" / "images" / "extend" / "Dockerfile",
           KERNEL_IMAGE=KERNEL_IMAGE)

    byo_context = tmp_path_factory.mktemp("byo")
    shutil.copytree(wheels, byo_context / "wheels")
    _build(BYO_IMAGE, byo_context, ROOT / "tests" / "images" / "byo" / "Dockerfile", BASE_IMAGE=BASE_IMAGE)
    return Images(kernel=KERNEL_IMAGE, extended=EXTEND_IMAGE, byo=BYO_IMAGE)


@pytest.fixture
async def broker() -> AsyncIterator[ResponseBroker]:
    """A real response broker on loopback, as a provisioner would run it."""
    server = ResponseBroker(bind_ip="127.0.0.1", advertised_ip="127.0.0.1", port=0)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
def container_name() -> Iterator[str]:
    """A unique container name, removed after the test whatever happened."""
    name = f"kf-image-test-{uuid.uuid4().hex[:12]}"
    yield name
    docker("rm", "-f", name, check=False, timeout=60)


@pytest.fixture(scope="session", autouse=True)
def no_leftover_containers() -> Iterator[None]:
    """Containers this suite labelled are gone at the end, even after an interrupted test."""
    yield
    if shutil.which(DOCKER) is None:
        return
    left = docker("ps", "-aq", "--filter", f"label={TEST_LABEL}", check=False).stdout.split()
    if left:
        docker("rm", "-f", *left, check=False, timeout=60)


# The limit. Measured (docker image inspect .Size): ~127 MB. The final stage is built on
# kernelfleet/base-runtime (Debian minbase + python3 without apt, perl or stdlib bytecode, ~78 MB);
# the kernel venv is ~45 MB with its shared libraries stripped (pycryptodome, debugpy, pip, jedi,
# pygments, IPython) and the stdlib bytecode a kernel loads adds ~3.5 MB.
MAX_IMAGE_BYTES = 150_000_000
STOP_SECONDS = 2.0
KERNEL_UID, KERNEL_GID = 1000, 100


def _inspect(image: str) -> dict[str, Any]:
    return json.loads(docker("image", "inspect", image).stdout)[0]


async def _docker(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> tuple[int, str, str]:
    """The docker CLI off the event loop, so the broker keeps serving while docker works."""
    proc = await asyncio.create_subprocess_exec(
        DOCKER, *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        async with asyncio.timeout(timeout):
            out, err = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    return proc.returncode or 0, out.decode(), err.decode()


async def _logs(name: str) -> str:
    _code, out, err = await _docker("logs", "--tail", "40", name, timeout=20)
    return (out + err).strip()


async def start_kernel(image: str, name: str, broker: ResponseBroker) -> Report:
    """Run `image` the way a container provisioner does and return its verified report."""
    kernel_id = f"img-{uuid.uuid4()}"
    pending = broker.expect(kernel_id)
    variables = {
        "KERNEL_ID": kernel_id,
        "KERNEL_LANGUAGE": "python",
        "RESPONSE_ADDRESS": broker.response_address,
        "PUBLIC_KEY": broker.public_key,
        "LAUNCH_TOKEN": pending.token,
        "KERNEL_IP": "127.0.0.1",
    }
    # `-e NAME` takes the value from docker's own environment: the token never reaches a command line.
    flags = [arg for var in variables for arg in ("-e", var)]
    code, _out, err = await _docker(
        "run", "-d", "--name", name, "--label", TEST_LABEL, "--network", "host", *flags, image,
        env={**os.environ, **variables},
    )
    assert code == 0, f"docker run {image} failed: {err.strip()}"
    try:
        return await pending.wait(timeout=60)
    except TimeoutError:
        pytest.fail(f"no report from {image} within 60 s; container log:\n{await _logs(name)}")


async def wait_exit(name: str, timeout: float) -> int:
    """The container's exit status once it has stopped by itself."""
    try:
        code, out, err = await _docker("wait", name, timeout=timeout)
    except TimeoutError:
        pytest.fail(f"container {name} still running {timeout} s after the stop request; log:\n{await _logs(name)}")
    assert code == 0, f"docker wait failed: {err.strip()}"
    return int(out.strip())


def kernel_client(report: Report) -> AsyncKernelClient:
    info = dict(report.connection_info)
    info["ip"] = "127.0.0.1"
    client = AsyncKernelClient()
    client.load_connection_info(info)
    # No heartbeat channel: without a kernel manager, wait_for_ready would take one missed
    # 1-second heartbeat (a kernel still importing on a busy machine) for a dead kernel.
    client.start_channels(hb=False)
    return client


# ------------------------------------------------------------------------------- image contents
@pytest.mark.parametrize("which", ["kernel", "extended"])
def test_image_runs_as_jovyan_with_bootstrap(images: Images, which: str) -> None:
    image = getattr(images, which)
    config = _inspect(image)["Config"]
    assert config["User"] == str(KERNEL_UID)
    assert "KERNEL_LANGUAGE=python" in config["Env"]
    assert f"NB_UID={KERNEL_UID}" in config["Env"]
    assert config["Entrypoint"][0] == "tini", config["Entrypoint"]
    assert config["Cmd"] == ["/usr/local/bin/bootstrap-kernel.sh"]
    probe = (
        "id -u; id -g; id -un; "
        "test -x /usr/local/bin/bootstrap-kernel.sh && echo bootstrap; "
        "test -d /usr/local/bin/kernel-launchers/python && echo launchers; "
        "python -c 'import kernelfleet.launcher, ipykernel; print(\"imports\")'; "
        "touch /opt/kernel/x 2>/dev/null || echo venv-read-only"
    )
    out = docker("run", "--rm", "--label", TEST_LABEL, "--network", "none", "--entrypoint", "/bin/sh", image,
                 "-c", probe).stdout.split()
    assert out == [str(KERNEL_UID), str(KERNEL_GID), "jovyan", "bootstrap", "launchers", "imports",
                   "venv-read-only"]


def test_kernel_image_size(images: Images) -> None:
    size = _inspect(images.kernel)["Size"]
    print(f"{images.kernel}: {size / 1e6:.1f} MB")
    assert size <= MAX_IMAGE_BYTES, f"{images.kernel} is {size / 1e6:.1f} MB, over {MAX_IMAGE_BYTES / 1e6:.0f} MB"


def test_bytecode_is_precompiled(images: Images) -> None:
    """Kernel start-up must not compile anything: the kernel's modules ship their .pyc."""
    script = (
        "import importlib.util, sys\n"
        "import kernelfleet.launcher.supervisor, ipykernel.kernelapp, ipykernel.ipkernel, IPython, zmq\n"
        "site = [p for p in sys.path if p.endswith('site-packages')][0]\n"
        "missing = [m.__name__ for m in list(sys.modules.values())\n"
        "           if getattr(m, '__file__', None) and m.__file__.startswith(site) and m.__file__.endswith('.py')\n"
        "           and not __import__('os').path.exists(importlib.util.cache_from_source(m.__file__))]\n"
        "print(len(missing), missing[:10])\n"
    )
    out = docker("run", "--rm", "--label", TEST_LABEL, "--network", "none", "--entrypoint", "python", images.kernel,
                 "-c", script).stdout.strip()
    assert out.startswith("0 "), f"modules without bytecode: {out}"


# ------------------------------------------------------------------------------- real kernels
async def test_docker_stop_is_prompt(images: Images, broker: ResponseBroker, container_name: str) -> None:
    await start_kernel(images.kernel, container_name, broker)
    started = time.monotonic()
    code, _out, err = await _docker("stop", "--time", "10", container_name, timeout=30)
    elapsed = time.monotonic() - started
    assert code == 0, err
    assert elapsed < STOP_SECONDS, f"docker stop took {elapsed:.2f} s; log:\n{await _logs(container_name)}"
    state = json.loads(docker("inspect", container_name).stdout)[0]["State"]
    assert not state["Running"]


@pytest.mark.parametrize(
    ("which", "op"),
    [("kernel", "shutdown"), ("extended", "kill"), ("byo", "shutdown")],
)
async def test_kernel_from_image(
    images: Images, broker: ResponseBroker, container_name: str, which: str, op: str
) -> None:
    image = getattr(images, which)
    report = await start_kernel(image, container_name, broker)
    assert report.version == 2 and report.comm_key

    client = kernel_client(report)
    try:
        await client.wait_for_ready(timeout=60)
        reply = await execute(client, "1+1")
        assert reply["status"] == "ok" and reply["result"] == "2", reply
        if which == "extended":
            probe = await execute(client, f"import {PROBE_MODULE}; {PROBE_MODULE}.VALUE")
            assert probe["result"] == "'extended-ok'", probe
        alive = await send_request("127.0.0.1", report.comm_port, report.comm_key, "ping", timeout=5.0)
        assert alive == {"ok": True, "alive": True}
        if op == "shutdown":
            # The server's order: ask the kernel to shut down, then tell the launcher to see it through.
            client.shutdown()
            answer = await send_request("127.0.0.1", report.comm_port, report.comm_key, "shutdown", grace=5,
                                        timeout=5.0)
        else:
            answer = await send_request("127.0.0.1", report.comm_port, report.comm_key, "kill", timeout=5.0)
        assert answer.get("ok") is True, answer
    finally:
        client.stop_channels()
    status = await wait_exit(container_name, timeout=20)
    if op == "shutdown":
        assert status == 0, f"{image} exited {status} after a clean shutdown; log:\n{await _logs(container_name)}"


async def test_debugger_in_kernel_image(images: Images, broker: ResponseBroker, container_name: str) -> None:
    """The JupyterLab debugger's first request succeeds: debugpy is in the image and loads after strip."""
    report = await start_kernel(images.kernel, container_name, broker)
    client = kernel_client(report)
    try:
        await client.wait_for_ready(timeout=60)
        info = await client.kernel_info(reply=True, timeout=30)
        assert "debugger" in info["content"].get("supported_features", []), info["content"]
        request = client.session.msg("debug_request", {
            "type": "request", "seq": 1, "command": "initialize",
            "arguments": {"clientID": "kf-test", "adapterID": "python", "pathFormat": "path",
                          "linesStartAt1": True, "columnsStartAt1": True, "supportsVariableType": True},
        })
        client.control_channel.send(request)
        reply = await client.control_channel.get_msg(timeout=30)
        assert reply["msg_type"] == "debug_reply", reply
        assert reply["content"].get("success") is True, reply["content"]
    finally:
        client.stop_channels()
        await send_request("127.0.0.1", report.comm_port, report.comm_key, "kill", timeout=5.0)


def test_kernel_image_has_no_apt_but_pip(images: Images) -> None:
    """kernel-py ships on the runtime base: no apt or perl, but pip (the extension path) runs."""
    probe = "command -v apt-get || echo no-apt; command -v perl || echo no-perl; pip --version >/dev/null && echo pip"
    out = docker("run", "--rm", "--label", TEST_LABEL, "--network", "none", "--entrypoint", "/bin/sh",
                 images.kernel, "-c", probe).stdout.split()
    assert out == ["no-apt", "no-perl", "pip"], out
