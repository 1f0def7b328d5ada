"""Kernel Fleet's Python kernel launcher.

Kept empty on purpose: both the supervisor and the kernel child import this package first, and every
millisecond spent here delays the kernel's start.
"""

__version__ = "0.1.0"
