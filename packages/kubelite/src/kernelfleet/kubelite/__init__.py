"""kubelite: a small, faithful single-node Kubernetes for tests.

The real ``kubernetes_asyncio`` client talks to it over HTTP through a kubeconfig; each pod runs as a real Docker
container. See ``packages/kubelite/README.md``.
"""

from __future__ import annotations

from .errors import ApiError
from .kubelet import (
    PULL_ERROR_ANNOTATION,
    PULL_FLAKY_ANNOTATION,
    SECRET_CACHE_MISSES_ANNOTATION,
    UNSCHEDULABLE_ANNOTATION,
    remove_containers,
)
from .node_lifecycle import NodeLifecycle
from .resources import SPARK_APPLICATIONS, ResourceType, custom_resource
from .server import DockerUnavailable, KubeLite

__all__ = [
    "PULL_ERROR_ANNOTATION",
    "PULL_FLAKY_ANNOTATION",
    "SECRET_CACHE_MISSES_ANNOTATION",
    "SPARK_APPLICATIONS",
    "UNSCHEDULABLE_ANNOTATION",
    "ApiError",
    "DockerUnavailable",
    "KubeLite",
    "NodeLifecycle",
    "ResourceType",
    "custom_resource",
    "remove_containers",
]
