"""A tiny IPythonKernel subclass for the --kernel-class-name test; the kernel imports it from PYTHONPATH."""

from ipykernel.ipkernel import IPythonKernel


class MarkedKernel(IPythonKernel):
    """Answers kernel_info with its own implementation name, so the test can tell it was the one started."""

    implementation = "kernelfleet-test-kernel"
