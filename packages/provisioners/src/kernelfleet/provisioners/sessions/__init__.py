"""Kernel sessions that survive a server restart: a jupyter_server extension.

Enable it with ``jupyter server extension enable kernelfleet.provisioners.sessions`` or
``c.ServerApp.jpserver_extensions = {"kernelfleet.provisioners.sessions": True}``.
"""

from __future__ import annotations

from typing import Any


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    """How jupyter_server finds the extension's load and start hooks."""
    return [{"module": "kernelfleet.provisioners.sessions.extension"}]
