"""Impersonation (``impersonation_enabled``, GP_IMPERSONATION_ENABLED): the kernel runs as the requesting user.

Gateway Provisioners only added ``--proxy-user`` to spark-submit. Here the operator also names a fixed argv prefix
(``impersonation_command``, default ``sudo -n -H -E -u {user} --``) that runs the launcher as ``KERNEL_USERNAME``
on the host, locally or over SSH. The prefix is operator configuration, and the one value put into it is the user
name after ``request_env``'s strict pattern and the kernelspec's authorized/unauthorized users accepted it (so
``root`` is refused unless an operator allows it). No shell ever sees the name: it is one argv word.

``-E`` keeps the launch environment (the launcher needs its LAUNCH_TOKEN, which never goes on a command line), so
the operator's sudoers rule needs ``SETENV`` for the launcher's interpreter (or spark-submit): for example
``jupyter ALL=(%notebook-users,!root) NOPASSWD:SETENV: /opt/conda/bin/python, /opt/spark/bin/spark-submit``.
Called by ``DistributedProvisioner`` when building a kernel's argv (``kernel_argv``).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from kernelfleet.provisioners.authorization import ImpersonationError, impersonated_user

USER_FIELD = "{user}"
DEFAULT_COMMAND = ("sudo", "-n", "-H", "-E", "-u", USER_FIELD, "--")


__all__ = ["DEFAULT_COMMAND", "ImpersonationError", "impersonation_prefix"]


def impersonation_prefix(
    kernel_id: str, command: Sequence[str], username: str, *, authorized: Collection[str],
    unauthorized: Collection[str],
) -> list[str]:
    """The operator's prefix with ``{user}`` replaced by the checked ``username``."""
    if not command:
        return []
    if not any(USER_FIELD in word for word in command):
        raise ImpersonationError(f"Kernel {kernel_id}: impersonation_command {list(command)} has no {USER_FIELD} "
                                 "field, so it cannot run the kernel as the requesting user")
    user = impersonated_user(kernel_id, username, authorized=authorized, unauthorized=unauthorized)
    return [word.replace(USER_FIELD, user) for word in command]
