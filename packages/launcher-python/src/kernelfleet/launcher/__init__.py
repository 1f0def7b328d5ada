"""Kernel Fleet's Python kernel launcher.

Kept empty on purpose: both the supervisor and the kernel child import this package first, and every
millisecond spent here delays the kernel's start.
"""

from kernelfleet.launcher._version import __version__

__all__ = ["__version__"]
