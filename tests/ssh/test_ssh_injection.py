"""Values from a request or a kernelspec can never become shell code on the host.

Gateway Provisioners ran ``touch`` on the host for KERNEL_USERNAME='bob";touch X;echo "'. Each value
below either is refused before anything is sent, or reaches the kernel byte for byte as data.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from jupyter_client import AsyncKernelManager
from ssh_testing import process_env

from kernelfleet.provisioners.kernel_env import KernelEnvError
from kernelfleet.provisioners.request_env import OperatorOnlyError
from kernelfleet.provisioners.ssh.command import RemoteEnvError

REFUSED = [
    ("KERNEL_USERNAME", 'bob";touch {marker};echo "'),  # GP's verified exploit
    ("KERNEL_USERNAME", "bob'; touch {marker}; echo '"),
    ("KERNEL_USERNAME", "bob touch {marker}"),
    ("KERNEL_FOO", "$(touch {marker})"),
    ("KERNEL_FOO", "`touch {marker}`"),
    ("KERNEL_FOO", "x\ntouch {marker}"),
    ("KERNEL_FOO", "x\rtouch {marker}"),
    ("KERNEL_FOO", "x\x00touch {marker}"),
]

# Refused or not, these are sent only as data: quotes, semicolons, pipes, globs, braces, backslashes.
NEUTRALISED = {
    "KERNEL_QUOTES": 'bob";touch {marker};echo "',
    "KERNEL_SINGLE": "x'; touch {marker}; echo '",
    "KERNEL_MIXED": "a|b&c;d>e<f *? [x] {{y}} \\ ~root #no-comment",
}


@pytest.mark.parametrize(("name", "template"), REFUSED, ids=[f"{n}-{i}" for i, (n, _) in enumerate(REFUSED)])
async def test_injection_values_are_refused_and_nothing_runs(
    name: str, template: str, ssh_spec: Callable[..., str], kernel_manager: Callable[..., AsyncKernelManager],
    tmp_path: Path,
) -> None:
    marker = tmp_path / "pwned"
    km = kernel_manager(ssh_spec(remote_hosts=["127.0.0.2"]))
    with pytest.raises((RemoteEnvError, KernelEnvError)) as err:
        await km.start_kernel(env={**os.environ, name: template.format(marker=marker)})
    assert name in str(err.value) and str(marker) not in str(err.value)  # names the variable, not its value
    assert not marker.exists()


async def test_shell_metacharacters_reach_the_kernel_as_plain_data(
    ssh_spec: Callable[..., str], kernel_manager: Callable[..., AsyncKernelManager], tmp_path: Path,
) -> None:
    marker = tmp_path / "pwned"
    request = {name: value.format(marker=marker) for name, value in NEUTRALISED.items()}
    spec_env = {"SPEC_TRICKY": f"a\"b'c;touch {marker};$(touch {marker})`touch {marker}`"}
    km = kernel_manager(ssh_spec(remote_hosts=["127.0.0.2"], env=spec_env))
    await km.start_kernel(env={**os.environ, **request})
    try:
        seen = process_env(km.provisioner.launcher_pid)
        for name, value in {**request, **spec_env}.items():
            assert seen[name] == value, (name, json.dumps(seen.get(name)))
    finally:
        await km.shutdown_kernel(now=True)
    assert not marker.exists()


@pytest.mark.parametrize(("name", "value"), [("KERNEL_CLASS_NAME", "ipykernel.kernelbase.Kernel"),
                                             ("KERNEL_CLUSTER_TYPE", "dask"),
                                             ("KERNEL_SPARK_CONTEXT_INIT_MODE", "eager")])
async def test_request_cannot_choose_what_the_remote_launcher_imports(
    name: str, value: str, ssh_spec: Callable[..., str], kernel_manager: Callable[..., AsyncKernelManager],
) -> None:
    """Over SSH the launcher reads these from the environment it is sent; a request may not choose them."""
    km = kernel_manager(ssh_spec(remote_hosts=["127.0.0.2"]))
    with pytest.raises(OperatorOnlyError) as err:
        await km.start_kernel(env={**os.environ, name: value})
    message = str(err.value)
    assert km.kernel_id in message and name in message and "kernelspec" in message and value not in message
    assert km.provisioner is None or km.provisioner.launcher_pid is None  # nothing was started on the host
