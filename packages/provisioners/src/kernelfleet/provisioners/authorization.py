"""Who may start a kernel: the kernelspec's and server's user lists, checked before anything is launched."""

from __future__ import annotations

from collections.abc import Collection


def check_user(kernel_id: str, username: str, *, authorized: Collection[str], unauthorized: Collection[str]) -> None:
    """Raise PermissionError unless ``username`` may launch. Refusals are checked first, as in GP."""
    if username in unauthorized:
        raise PermissionError(f"Kernel {kernel_id}: user {username!r} is not allowed to start kernels of this kind")
    if authorized and username not in authorized:
        raise PermissionError(
            f"Kernel {kernel_id}: user {username!r} is not in this kernelspec's authorized users"
        )
