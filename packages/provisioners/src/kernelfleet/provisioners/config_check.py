"""Refuse a kernelspec's provisioner config that names a setting the provisioner does not have.

jupyter_client's provisioner factory passes ``metadata.kernel_provisioner.config`` as keyword arguments to
the provisioner's constructor, and traitlets drops a keyword that is no trait with at most a deprecation
warning, so a typo such as ``launch_timout`` used to leave the default in force without a word. Every
Kernel Fleet provisioner calls ``check_provisioner_config`` first thing in ``__init__``; the error names the
kernelspec, the unknown key and the closest setting, and reaches the user as the failed start request.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from typing import Any

from traitlets import HasTraits


class ProvisionerConfigError(ValueError):
    """A kernelspec's ``metadata.kernel_provisioner.config`` names a setting its provisioner does not have."""


def kernelspec_name(kernel_spec: Any) -> str:
    """The kernelspec's name: jupyter_client sets ``name`` only on some paths, the resource dir is always there."""
    name = getattr(kernel_spec, "name", "") or ""
    if not name:
        resource_dir = getattr(kernel_spec, "resource_dir", "") or ""
        name = os.path.basename(os.path.normpath(resource_dir)) if resource_dir else ""
    return name or "<unnamed>"


def unknown_key_message(key: str, settings: list[str]) -> str:
    """``'launch_timout' (did you mean 'launch_timeout'?)``: the key and, when one is close, the setting meant."""
    close = difflib.get_close_matches(key, settings, n=1, cutoff=0.6)
    return f"{key!r} (did you mean {close[0]!r}?)" if close else f"{key!r}"


def check_provisioner_config(cls: type[HasTraits], given: Mapping[str, Any]) -> None:
    """Raise ``ProvisionerConfigError`` if ``given`` (the constructor's keyword arguments) names no trait of ``cls``.

    Every trait name is accepted, as traitlets sets it; suggestions come from the configurable ones (the
    settings documented in docs/configuration.md).
    """
    traits = cls.class_traits()
    unknown = sorted(key for key in given if key not in traits)
    if not unknown:
        return
    settings = sorted(cls.class_trait_names(config=True))
    spec = kernelspec_name(given.get("kernel_spec"))
    kernel_id = given.get("kernel_id")
    prefix = f"Kernel {kernel_id}: kernelspec {spec!r}" if kernel_id else f"Kernelspec {spec!r}"
    listed = ", ".join(unknown_key_message(key, settings) for key in unknown)
    noun = "settings" if len(unknown) > 1 else "a setting"
    raise ProvisionerConfigError(
        f"{prefix}: metadata.kernel_provisioner.config names {noun} {cls.__name__} does not have: {listed}. "
        f"Its settings are listed in docs/configuration.md."
    )
