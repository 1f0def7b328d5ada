"""The argv a distributed-provisioner launch runs: the kernelspec's launcher, under spark-submit and/or as the
requesting user when the kernelspec asks for it. Pure: called by ``DistributedProvisioner.start_launcher`` with
the operator's environment (kernelspec env over the server's) and the request's checked values."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from kernelfleet.provisioners.spark_submit import EXTRA_NAME, SparkSubmit, spark_submit_argv
from kernelfleet.provisioners.ssh.impersonation import ImpersonationError, impersonation_prefix


@dataclass(frozen=True)
class ArgvPolicy:
    """The kernelspec's choices: run the launcher through spark-submit; run it as KERNEL_USERNAME (and with it
    ``impersonation_command``, whose ``{user}`` is that name; empty: only spark-submit's ``--proxy-user``)."""

    spark_submit: bool = False
    impersonation: bool = False
    impersonation_command: tuple[str, ...] = ()
    authorized_users: frozenset[str] = frozenset()
    unauthorized_users: frozenset[str] = frozenset()


def kernel_argv(
    kernel_id: str, argv: list[str], policy: ArgvPolicy, *, operator_env: Mapping[str, str],
    request_env: Mapping[str, str],
) -> list[str]:
    """``argv`` as the host runs it. ``operator_env`` supplies SPARK_HOME, SPARK_OPTS and LAUNCH_OPTS; only
    ``KERNEL_USERNAME`` and ``KERNEL_EXTRA_SPARK_OPTS`` are read from ``request_env``."""
    username = request_env.get("KERNEL_USERNAME", "")
    if policy.spark_submit:
        settings = SparkSubmit(operator_env.get("SPARK_HOME", ""), operator_env.get("SPARK_OPTS", ""),
                               operator_env.get("LAUNCH_OPTS", ""))
        argv = spark_submit_argv(kernel_id, argv, settings, username=username,
                                 extra=request_env.get(EXTRA_NAME, ""), proxy_user=policy.impersonation)
    if policy.impersonation:
        if not policy.impersonation_command and not policy.spark_submit:
            raise ImpersonationError(f"Kernel {kernel_id}: impersonation_enabled needs impersonation_command (for "
                                     "example sudo -n -H -E -u {user} --), or spark_submit for --proxy-user")
        argv = [*impersonation_prefix(kernel_id, policy.impersonation_command, username,
                                      authorized=policy.authorized_users, unauthorized=policy.unauthorized_users),
                *argv]
    return argv

