"""The environment a remote kernel receives: its own variables only, never the server's whole environment.

Gateway Provisioners copied the server's entire environment into every pod and container (cloud
credentials included). A remote kernel here gets the kernelspec's ``env``, the protocol variables,
the request's ``KERNEL_*`` values (checked to be plain single-line strings; which names a request
may set at all, and with what type, is ``request_env``'s policy, applied in ``pre_launch``) and the
server variables an operator lists in ``inherited_envs``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

FORBIDDEN_CHARACTERS = ("\x00", "\n", "\r")
MAX_VALUE_LENGTH = 4096


class KernelEnvError(ValueError):
    """A request variable that must not reach a kernel."""


def check_value(kernel_id: str, name: str, value: object) -> str:
    if not isinstance(value, str):
        raise KernelEnvError(f"Kernel {kernel_id}: {name} must be a string, not {type(value).__name__}")
    if len(value) > MAX_VALUE_LENGTH:
        raise KernelEnvError(f"Kernel {kernel_id}: {name} is longer than {MAX_VALUE_LENGTH} characters")
    if any(ch in value for ch in FORBIDDEN_CHARACTERS):
        raise KernelEnvError(f"Kernel {kernel_id}: {name} contains a newline or NUL character")
    return value


def remote_kernel_env(
    kernel_id: str,
    env: Mapping[str, str],
    *,
    spec_env_names: Iterable[str],
    protocol_env: Mapping[str, str],
    inherited_envs: Iterable[str] = (),
) -> dict[str, str]:
    """Select what goes to a kernel on another host or in a container."""
    selected: dict[str, str] = {}
    for name in inherited_envs:
        if name in env:
            selected[name] = env[name]
    for name in spec_env_names:
        if name in env:
            selected[name] = env[name]
    for name, value in env.items():
        if name.startswith("KERNEL_"):
            selected[name] = check_value(kernel_id, name, value)
    selected.update(protocol_env)
    return selected
