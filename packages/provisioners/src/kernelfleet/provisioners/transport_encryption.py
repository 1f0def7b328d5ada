"""The server's ``KernelManager.transport_encryption`` policy (jupyter_client >= 8.9) for remote kernels.

jupyter_client's own LocalProvisioner makes the CurveZMQ key pair in the server and writes it into
the kernel's connection file. A remote kernel has no such file on the server's disk, so here the
launcher makes the pair where the kernel runs and returns it inside the sealed report
(docs/protocol.md, section 3). Both halves must come back: jupyter_client 8.10's client sockets use
``curve_publickey``/``curve_secretkey`` as their own key pair *and* ``curve_publickey`` as the
server key, and load them from the connection info only as a pair, so a client cannot talk to a
CurveZMQ kernel without that kernel's secret key.

``RemoteProvisionerBase.pre_launch`` asks ``CurvePlan.for_launch`` whether to ask the launcher;
``_accept_report`` asks ``CurvePlan.accept`` what the report's keys mean for the connection info.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

CURVE_FIELDS = ("curve_publickey", "curve_secretkey")
POLICIES = ("disabled", "auto", "required")
Z85_KEY = re.compile(r"[0-9a-zA-Z.\-:+=^!/*?&<>()\[\]{}@%$#]{40}")
# Launchers whose kernel cannot serve CurveZMQ, by kernelspec language: why, for the refusal.
NO_CURVE_KERNELS = {
    "r": "IRkernel (R) binds its sockets without any CurveZMQ option",
    "scala": "Apache Toree (Scala) binds its sockets without any CurveZMQ option",
}


class TransportEncryptionError(RuntimeError):
    """``required`` cannot be met for this kernel; the message names the kernel and the reason."""


def spec_declares_curve(metadata: dict[str, Any] | None) -> bool:
    """Whether a kernelspec's ``metadata.supported_encryption`` names curve (a string or a list, any case)."""
    declared = (metadata or {}).get("supported_encryption")
    if isinstance(declared, str):
        return declared.strip().lower() == "curve"
    if isinstance(declared, (list, tuple, set)):
        return "curve" in {str(item).strip().lower() for item in declared}
    return False


def normalise_policy(kernel_id: str, value: object) -> str:
    policy = str(value or "disabled").strip().lower()
    if policy not in POLICIES:
        raise ValueError(
            f"Kernel {kernel_id}: transport_encryption must be one of {', '.join(POLICIES)}, not {value!r}"
        )
    return policy


@dataclass(frozen=True)
class CurvePlan:
    """What this launch asked the launcher for, decided once in ``pre_launch``."""

    kernel_id: str
    policy: str
    requested: bool

    @property
    def launcher_value(self) -> str:
        """TRANSPORT_ENCRYPTION and the ``{transport_encryption}`` placeholder: the policy, or empty (GP's "off")."""
        return self.policy if self.requested else ""

    @classmethod
    def for_launch(
        cls, kernel_id: str, policy: str, *, metadata: dict[str, Any] | None, language: str, log: logging.Logger
    ) -> CurvePlan:
        """Decide before anything starts; ``required`` that cannot be met raises now, not at the timeout."""
        if policy == "disabled":
            return cls(kernel_id, policy, False)
        if not spec_declares_curve(metadata):
            if policy == "required":
                raise TransportEncryptionError(
                    f"Kernel {kernel_id}: transport_encryption='required', but the kernelspec does not declare "
                    "'curve' in metadata.supported_encryption"
                )
            return cls(kernel_id, policy, False)  # auto: jupyter_client's rule, the spec did not opt in
        unable = NO_CURVE_KERNELS.get(language.strip().lower())
        if unable is not None:
            if policy == "required":
                raise TransportEncryptionError(
                    f"Kernel {kernel_id}: transport_encryption='required', but {unable}; "
                    "start it with transport_encryption 'auto' or 'disabled'"
                )
            log.warning("Kernel %s: transport encryption unavailable (%s); the kernel runs unencrypted", kernel_id,
                        unable)
            return cls(kernel_id, policy, False)
        return cls(kernel_id, policy, True)

    def accept(self, extra: dict[str, Any], launcher: str, log: logging.Logger) -> dict[str, str]:
        """The curve fields for the connection info, from a verified report's extra fields ({} = plaintext).

        Keys the kernel serves with are always used, asked for or not: a client without them cannot talk
        to it. Missing or malformed keys fail a ``required`` launch and are one warning under ``auto``.
        """
        keys = {name: extra.get(name) for name in CURVE_FIELDS}
        problem = _key_problem(keys)
        if problem is None:
            return {name: str(value) for name, value in keys.items()}
        if not self.requested:
            if any(keys.values()):
                log.warning("Kernel %s: ignoring unrequested CurveZMQ keys in the report: %s", self.kernel_id,
                            problem)
            return {}
        reason = f"the launcher ({launcher or 'unknown'}) {problem}"
        if self.policy == "required":
            raise TransportEncryptionError(
                f"Kernel {self.kernel_id}: transport_encryption='required', but {reason}"
            )
        log.warning("Kernel %s: transport encryption unavailable (%s); the kernel runs unencrypted", self.kernel_id,
                    reason)
        return {}


def _key_problem(keys: dict[str, Any]) -> str | None:
    """Why the report's curve fields are not a usable key pair (never quoting a key), or None."""
    public, secret = keys["curve_publickey"], keys["curve_secretkey"]
    if public is None and secret is None:
        return "reported no CurveZMQ keys"
    if not (isinstance(public, str) and isinstance(secret, str)):
        return "reported an incomplete CurveZMQ key pair"
    if not (Z85_KEY.fullmatch(public) and Z85_KEY.fullmatch(secret)):
        return "reported CurveZMQ keys that are not 40-character Z85 text"
    import zmq

    if zmq.curve_public(secret.encode("ascii")) != public.encode("ascii"):
        return "reported a CurveZMQ public key that does not belong to its secret key"
    return None
