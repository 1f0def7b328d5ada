"""The Kubernetes engine: ``kubernetes-provisioner`` (a pod per kernel) and ``spark-operator-provisioner``.

``provisioner`` holds the pod provisioner, ``custom_resource`` and ``spark_operator`` the custom-resource ones;
``pod``, ``secret``, ``template``, ``names`` and ``status`` are pure builders and readers of API objects;
``client``, ``watch`` and ``owned`` talk to the API server. ``kernelfleet.provisioners.k8s.KubernetesProvisioner``
keeps working as before the engines became subpackages; the provisioners are imported only when read, so the
pure helpers that shared code uses (``names``, ``pod``) do not load ``kubernetes_asyncio``.
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
