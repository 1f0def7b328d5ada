"""Keep the cryptography off the launcher's path to spawning the kernel.

``kernelfleet.protocol``'s ``__init__`` imports the whole protocol, pycryptodome included (150-500 ms),
and Python runs a package's ``__init__`` before any of its submodules. Before the spawn the supervisor
needs only ``PortRange`` and ``ResponseAddress``, whose modules import nothing of the protocol, so they
are loaded here under their real names without the package ``__init__``. When the full package is
imported later it finds them in ``sys.modules`` and reuses them, so there is still one class of each.

Once ``kernelfleet.protocol`` imports its submodules lazily this module can go.
"""

from __future__ import annotations

import importlib.util
import os
import sys

PACKAGE = "kernelfleet.protocol"
# Dependency-free leaves, in dependency order.
LEAVES = ("constants", "ports", "address")


def preload_protocol_leaves() -> None:
    """Load the leaf modules without the package ``__init__``; on any surprise do nothing (slower, still right)."""
    if PACKAGE in sys.modules:
        return
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return
    directory = next(iter(spec.submodule_search_locations))
    for leaf in LEAVES:
        name = f"{PACKAGE}.{leaf}"
        path = os.path.join(directory, f"{leaf}.py")
        if name in sys.modules or not os.path.isfile(path):
            continue
        leaf_spec = importlib.util.spec_from_file_location(name, path)
        if leaf_spec is None or leaf_spec.loader is None:
            return
        module = importlib.util.module_from_spec(leaf_spec)
        sys.modules[name] = module
        try:
            leaf_spec.loader.exec_module(module)
        except Exception:
            del sys.modules[name]
            return


def prefer_ctypes_crypto() -> None:
    """Make pycryptodome use its ctypes backend in this process.

    With cffi installed, pycryptodome parses C declarations with pycparser at import, which costs
    several times more than the whole ctypes backend; the supervisor does a handful of AES/RSA/HMAC
    operations, where the backend makes no difference. Only this process is affected, not the kernel.
    """
    if "Crypto" not in sys.modules:
        sys.modules.setdefault("cffi", None)  # type: ignore[arg-type]  # None in sys.modules = ImportError
