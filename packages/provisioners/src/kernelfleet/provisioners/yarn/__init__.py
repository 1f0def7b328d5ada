"""The YARN engine: ``yarn-provisioner`` (``provisioner``), the RM REST client (``client``) and the pure
submission builders (``submission``). ``kernelfleet.provisioners.yarn.YarnProvisioner`` is imported only when
read, so importing ``yarn.client`` does not load the provisioner."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kernelfleet.provisioners.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from kernelfleet.provisioners.yarn.provisioner import YarnProvisioner

__all__ = ["YarnProvisioner"]
__getattr__ = lazy_exports(__name__, {"YarnProvisioner": "provisioner"})
