"""Who may start a kernel: the kernelspec's and server's user lists, checked before anything is launched."""

from __future__ import annotations

from collections.abc import Collection

from kernelfleet.provisioners.request_env import USERNAME


class ImpersonationError(PermissionError):
    """The kernel cannot run as the requested user; the message names the kernel and the setting."""


def check_user(kernel_id: str, username: str, *, authorized: Collection[str], unauthorized: Collection[str]) -> None:
    """Raise PermissionError unless ``username`` may launch. Refusals are checked first, as in GP."""
    if username in unauthorized:
        raise PermissionError(f"Kernel {kernel_id}: user {username!r} is not allowed to start kernels of this kind")
    if authorized and username not in authorized:
        raise PermissionError(
            f"Kernel {kernel_id}: user {username!r} is not in this kernelspec's authorized users"
        )


def impersonated_user(kernel_id: str, username: str, *, authorized: Collection[str],
                      unauthorized: Collection[str]) -> str:
    """The identity an impersonating launch runs the kernel as (``impersonation_enabled``: sudo on SSH hosts,
    spark-submit's ``--proxy-user``): ``username`` if it matches the strict user-name pattern and the kernelspec's
    authorized/unauthorized users allow it (``root`` is refused by default), whoever named it."""
    if not USERNAME.match(username):
        raise ImpersonationError(f"Kernel {kernel_id}: KERNEL_USERNAME is not a valid user name (letters, digits, "
                                 "'.', '_', '@', '-')")
    check_user(kernel_id, username, authorized=authorized, unauthorized=unauthorized)
    return username
