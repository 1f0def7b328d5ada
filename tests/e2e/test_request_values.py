"""Hostile start-request values against the embedded default (distributed-provisioner on localhost): the real
provisioner, broker and Python launcher, started through jupyter_client as a notebook server does.

Each attack here worked before request variables had a policy (request_env): a request chose the module the
launcher imports, held a launch (and its host slot) for ever, or used a kernel id with a trailing newline.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from kf_testing import connect, execute, manager

from kernelfleet.provisioners.kernel_env import KernelEnvError
from kernelfleet.provisioners.request_env import OPERATOR_ONLY, OperatorOnlyError

pytestmark = pytest.mark.hostile

NEVER_REPORTS = [sys.executable, "-c", "import time; time.sleep(120)"]
# Stands for any module installed on the host whose import does something (every site-packages has some): the
# request picks which one the launcher imports.
PROBE_MODULE = """\
import pathlib
pathlib.Path(__file__).with_name("imported-by-the-launcher").write_text("the request chose this code")
from ipykernel.ipkernel import IPythonKernel


class ProbeKernel(IPythonKernel):
    pass
"""


@pytest.fixture
def module_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory on the server's (so the launcher's) Python path holding the probe module."""
    path = tmp_path / "site"
    path.mkdir()
    (path / "kfprobe.py").write_text(PROBE_MODULE)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(path), os.environ.get("PYTHONPATH")])))
    return path


async def test_request_cannot_choose_the_kernel_class(
    kernels_dir: Path, make_kernelspec: Callable[..., str], module_dir: Path
) -> None:
    km = manager(kernels_dir, make_kernelspec())
    with pytest.raises(OperatorOnlyError) as err:
        async with asyncio.timeout(60):
            await km.start_kernel(env={**os.environ, "KERNEL_CLASS_NAME": "kfprobe.ProbeKernel"})
    message = str(err.value)
    assert km.kernel_id in message and "KERNEL_CLASS_NAME" in message and "kernelspec" in message, message
    assert "kfprobe" not in message  # the name and where to set it, not the value
    assert not (module_dir / "imported-by-the-launcher").exists()
    assert not km.has_kernel


async def test_kernelspec_env_still_chooses_the_kernel_class(
    kernels_dir: Path, make_kernelspec: Callable[..., str], module_dir: Path
) -> None:
    km = manager(kernels_dir, make_kernelspec(env={"KERNEL_CLASS_NAME": "kfprobe.ProbeKernel"}))
    await km.start_kernel()
    try:
        client = await connect(km)
        try:
            assert (await execute(client, "type(get_ipython().kernel).__name__"))["result"] == "'ProbeKernel'"
        finally:
            client.stop_channels()
    finally:
        await km.shutdown_kernel(now=True)
    assert (module_dir / "imported-by-the-launcher").exists()


@pytest.mark.parametrize("name", sorted(OPERATOR_ONLY))
async def test_every_operator_only_name_is_refused(
    kernels_dir: Path, make_kernelspec: Callable[..., str], name: str
) -> None:
    km = manager(kernels_dir, make_kernelspec())
    with pytest.raises(OperatorOnlyError, match=rf"Kernel {km.kernel_id}: the start request sets {name}, "):
        await km.start_kernel(env={**os.environ, name: "/tmp/chosen-by-the-request"})
    assert not km.has_kernel


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "infinity", "0", "-5", "soon", "0x10", "1e400"])
async def test_malformed_launch_timeout_is_refused_at_once(
    kernels_dir: Path, make_kernelspec: Callable[..., str], value: str
) -> None:
    km = manager(kernels_dir, make_kernelspec("silent", argv=NEVER_REPORTS))
    with pytest.raises(KernelEnvError) as err:
        async with asyncio.timeout(60):  # the old code waited for ever on inf / 1e400
            await km.start_kernel(env={**os.environ, "KERNEL_LAUNCH_TIMEOUT": value})
    message = str(err.value)
    assert km.kernel_id in message and "KERNEL_LAUNCH_TIMEOUT" in message, message
    assert not km.has_kernel


async def test_huge_launch_timeout_is_lowered_to_the_operators_maximum(
    kernels_dir: Path, make_kernelspec: Callable[..., str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    km = manager(kernels_dir, make_kernelspec("silent", argv=NEVER_REPORTS, config={"max_launch_timeout": 1}))
    with pytest.raises(TimeoutError, match=r"no launch report within 1s"):
        async with asyncio.timeout(60):  # the old code waited 1e308 s
            await km.start_kernel(env={**os.environ, "KERNEL_LAUNCH_TIMEOUT": "1e308"})
    lowered = [r.getMessage() for r in caplog.records if "lowered to max_launch_timeout" in r.getMessage()]
    assert lowered == [f"Kernel {km.kernel_id}: KERNEL_LAUNCH_TIMEOUT=1e308 lowered to max_launch_timeout 1s"]


async def test_max_launch_timeout_from_the_environment(
    kernels_dir: Path, make_kernelspec: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KF_MAX_LAUNCH_TIMEOUT", "1")
    km = manager(kernels_dir, make_kernelspec("silent", argv=NEVER_REPORTS))
    with pytest.raises(TimeoutError, match=r"no launch report within 1s"):
        async with asyncio.timeout(60):
            await km.start_kernel(env={**os.environ, "KERNEL_LAUNCH_TIMEOUT": "3600"})


async def test_kernel_id_with_a_trailing_newline_is_refused(
    kernels_dir: Path, make_kernelspec: Callable[..., str]
) -> None:
    km = manager(kernels_dir, make_kernelspec(config={"launch_timeout": 5}), kernel_id="0f1e2d3c-kernel\n")
    with pytest.raises(ValueError, match=r"kernel id must be 1-128 characters") as err:
        async with asyncio.timeout(60):
            await km.start_kernel()
    assert "'0f1e2d3c-kernel\\n'" in str(err.value)
    assert not km.has_kernel
