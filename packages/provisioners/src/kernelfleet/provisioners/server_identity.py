"""Which Jupyter server a kernel's objects belong to, so that a server can find what it left behind.

Every provisioner marks what it creates with the server's identity: Docker containers, Swarm services and
secrets, Kubernetes pods, launch Secrets, namespaces and SparkApplications carry the label ``LABEL_SERVER``;
launcher processes (local and over SSH) and containers carry the variable ``SERVER_ID_ENV`` in their
environment. The orphan sweep (``kernelfleet.provisioners.sweep``) lists exactly the objects with this server's
identity that no saved session claims; objects of other servers are never its business.

The identity must survive a restart of the server (a restarted server has to recognise its own leftovers), so
the default is derived from what stays the same for one installation: the host name and the Jupyter runtime
directory. Operators running several servers on one host with one runtime directory (or one server on several
hosts behind a load balancer sharing a session store) set ``c.ServerIdentity.server_id`` or ``KF_SERVER_ID``.
The value is a Kubernetes label value (at most 63 of ``[A-Za-z0-9_.-]``, starting and ending alphanumeric), so
it is safe as a label, in an environment variable and in a shell word.
"""

from __future__ import annotations

import hashlib
import socket
from typing import Any

from jupyter_core.paths import jupyter_runtime_dir
from traitlets import TraitError, Unicode, default, validate
from traitlets.config import LoggingConfigurable

from kernelfleet.provisioners.envconfig import env_value
from kernelfleet.provisioners.spec_values import LABEL_VALUE, dns_label

LABEL_SERVER = "kernelfleet.io/server"
SERVER_ID_ENV = "KF_SERVER_ID"  # in a launcher's environment: which server started it (also the setting's name)
LOCAL_LAUNCH_ENV = "KF_LOCAL_LAUNCH"  # "1" in a launcher the server ran as its own child (not over SSH)
STANDBY_PARENT_ENV = "KF_STANDBY_PARENT"  # in a local warm-pool standby: the pid of the server that started it
HOST_PART = 40
DIGEST_CHARS = 10


class ServerIdentityError(ValueError):
    """A configured server id that cannot be a label value."""


def check_server_id(value: str, source: str = "server_id") -> str:
    """``value`` if it is a non-empty Kubernetes label value; otherwise an error naming where it came from."""
    if not value or not LABEL_VALUE.fullmatch(value):
        raise ServerIdentityError(
            f"{source}={value[:80]!r} is not a valid server id: use 1-63 letters, digits, '-', '_' and '.', "
            "starting and ending with a letter or digit"
        )
    return value


def derived_server_id(hostname: str, runtime_dir: str) -> str:
    """``<host>-<digest of host and runtime dir>``: readable, and the same for every start of this installation."""
    digest = hashlib.sha256(f"{hostname}\0{runtime_dir}".encode()).hexdigest()[:DIGEST_CHARS]
    return f"{dns_label(hostname, max_length=HOST_PART, fallback='server')}-{digest}"


class ServerIdentity(LoggingConfigurable):
    """The server's identity; the provisioners read it at each launch, the sweep when it looks for leftovers."""

    server_id = Unicode(
        help="Identity of this Jupyter server on the engines (env KF_SERVER_ID; default: derived from the host name "
        "and the Jupyter runtime directory, stable across restarts). Everything a provisioner creates carries it, "
        "and `jupyter kernelfleet sweep` removes only unclaimed objects that carry it.",
    ).tag(config=True)

    @default("server_id")
    def _server_id_default(self) -> str:
        configured = env_value((SERVER_ID_ENV,))
        if configured is not None:
            return check_server_id(configured.strip(), SERVER_ID_ENV)
        return derived_server_id(socket.gethostname(), jupyter_runtime_dir())

    @validate("server_id")
    def _check_server_id(self, proposal: dict[str, Any]) -> str:
        try:
            return check_server_id(str(proposal["value"]))
        except ServerIdentityError as err:
            raise TraitError(str(err)) from None


def server_id_of(parent: Any = None) -> str:
    """The identity as configured for ``parent`` (a provisioner, an app; None: environment and defaults only)."""
    return str(ServerIdentity(parent=parent).server_id)
