"""A kernel started by an operator: the provisioner creates one custom resource and follows its state.

The resource is built from the same settled launch as a kernel pod (image, ids, environment, service account,
namespace), created through ``CustomObjectsApi`` and followed by the namespace's shared watch of that resource
type; the operator's driver pod is followed by the pod watch, as a kernel pod is. A failure state of the resource
fails the launch at once with the operator's own message (Gateway Provisioners only logged it at debug level and
waited for the timeout). Stopping deletes the resource and waits until it and its driver pod are gone. The launch
token reaches the driver as a kernel pod gets it, from the per-launch Secret (``k8s.secret``), which is made before
the resource. The resource is deleted by the uid its create answered and the driver pod only if it names that
resource as its owner (``k8s.owned``): a request whose name collides with someone else's application fails and
leaves it alone. Name and uid are persisted, so a restarted server can still poll and delete it.

The lifecycle is ``k8s.workloads.CustomResourceWorkload``, the strategy this class chooses instead of the pod one;
a subclass only names its ``resource_kind`` and builds its resource.
"""

from __future__ import annotations

from typing import Any, ClassVar

from kernelfleet.provisioners.k8s.provisioner import KubernetesProvisioner
from kernelfleet.provisioners.k8s.settings import PodLaunch
from kernelfleet.provisioners.k8s.workloads import CustomResourceWorkload, ResourceKind, Workload


class CustomResourceProvisioner(KubernetesProvisioner):
    """Subclasses name the resource type (``resource_kind``) and build the resource (``build_resource``); the
    lifecycle is ``CustomResourceWorkload``'s."""

    resource_kind: ClassVar[ResourceKind]

    def make_workload(self) -> Workload:
        return CustomResourceWorkload(self, self.resource_kind, self.build_resource)

    def build_resource(self, launch: PodLaunch, name: str) -> dict[str, Any]:
        """The custom resource ``name`` for this launch, from its settled (validated) values."""
        raise NotImplementedError

    @property
    def resource_name(self) -> str | None:
        """The resource's name (persisted as ``resource_name``)."""
        workload = self.workload
        return workload.resource_name if isinstance(workload, CustomResourceWorkload) else None
