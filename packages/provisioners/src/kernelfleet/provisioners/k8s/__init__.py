"""The Kubernetes engine: ``kubernetes-provisioner`` (a pod per kernel) and ``spark-operator-provisioner``.

``provisioner`` holds the pod provisioner and ``workloads`` the strategy it runs (a pod, or a custom resource);
``custom_resource`` and ``spark_operator`` are the custom-resource provisioners; ``settings`` (a launch as a frozen
value), ``pod``, ``secret``, ``template``, ``spark_application``, ``names`` and ``status`` are pure builders and
readers of API objects; ``client``, ``watch`` and ``owned`` talk to the API server.
``kernelfleet.provisioners.k8s.KubernetesProvisioner`` keeps working as before the engines became subpackages; the
provisioners are imported only when read, so the pure builders load no ``kubernetes_asyncio`` (shared code needs
none of this package: its checks of request values are ``kernelfleet.provisioners.spec_values``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kernelfleet.provisioners.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from kernelfleet.provisioners.k8s.custom_resource import CustomResourceProvisioner
    from kernelfleet.provisioners.k8s.provisioner import KubernetesProvisioner
    from kernelfleet.provisioners.k8s.spark_operator import SparkOperatorProvisioner

__all__ = ["CustomResourceProvisioner", "KubernetesProvisioner", "SparkOperatorProvisioner"]
__getattr__ = lazy_exports(
    __name__,
    {
        "CustomResourceProvisioner": "custom_resource",
        "KubernetesProvisioner": "provisioner",
        "SparkOperatorProvisioner": "spark_operator",
    },
)
