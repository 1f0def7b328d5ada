"""yarnlite: a small Hadoop YARN ResourceManager for tests (REST web services; AMs run as local processes).

See ``packages/yarnlite/README.md`` for what is served and what is not emulated.
"""

from __future__ import annotations

from .cluster import FINAL, Application, Cluster, Queue
from .errors import RemoteError
from .server import ResourceManager, ResourceManagerPair

__all__ = ["FINAL", "Application", "Cluster", "Queue", "RemoteError", "ResourceManager", "ResourceManagerPair"]
