"""Provisioner classes named on an engine subpackage, imported only when asked for.

``kernelfleet.provisioners.k8s.KubernetesProvisioner`` (and the Docker ones) were module attributes before the
engines became subpackages; users and entry points may still name them so. The subpackage's ``__init__`` must stay
cheap, though: importing a pure builder (``k8s.pod``, ``k8s.settings``) must not load the engine's client, and
loading ``kubernetes_asyncio`` for a Docker kernel would be a cost for nothing. Each engine's ``__init__``
therefore sets its module ``__getattr__`` (PEP 562) from :func:`lazy_exports`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, modules: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports ``package.<modules[name]>`` the first time ``name`` is read."""

    def attribute(name: str) -> Any:
        module = modules.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{module}"), name)

    return attribute
