"""Keep import cost off the launcher's path to spawning the kernel (``kernelfleet.protocol`` itself
loads its cryptography only when first used)."""

from __future__ import annotations

import sys


def prefer_ctypes_crypto() -> None:
    """Make pycryptodome use its ctypes backend in this process.

    With cffi installed, pycryptodome parses C declarations with pycparser at import, which costs
    several times more than the whole ctypes backend; the supervisor does a handful of AES/RSA/HMAC
    operations, where the backend makes no difference. Only this process is affected, not the kernel.
    """
    if "Crypto" not in sys.modules:
        sys.modules.setdefault("cffi", None)  # type: ignore[arg-type]  # None in sys.modules = ImportError
