"""Spawning the kernel child; kept free of asyncio so the kernel starts before the supervisor's heavier imports."""

from __future__ import annotations

import os
import subprocess
import sys

KERNEL_MODULE = "kernelfleet.launcher.kernel"
# Never handed to the kernel: user code must not be able to read the launch secret.
_WITHHELD_ENV = ("LAUNCH_TOKEN",)


def spawn_kernel(
    connection_file: str,
    *,
    kernel_id: str,
    kernel_class_name: str,
    spark_init_mode: str,
    cluster_type: str,
) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k not in _WITHHELD_ENV}
    # What jupyter_client sets for local kernels: ipykernel then watches its parent and skips the
    # "Ctrl-C will not work" banner meant for a kernel started by hand.
    env["JPY_PARENT_PID"] = str(os.getpid())
    # "--opt=value" so no value (say, a kernel id starting with "-") can be read as an option.
    argv = [
        sys.executable,
        "-m",
        KERNEL_MODULE,
        f"--connection-file={connection_file}",
        f"--kernel-id={kernel_id}",
        f"--kernel-class-name={kernel_class_name}",
        f"--spark-context-initialization-mode={spark_init_mode}",
        f"--cluster-type={cluster_type}",
        f"--parent-pid={os.getpid()}",
    ]
    return subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, start_new_session=True)


def exit_status(returncode: int) -> int:
    """A shell-style status: 128+N for a kernel killed by signal N."""
    return 128 - returncode if returncode < 0 else returncode
