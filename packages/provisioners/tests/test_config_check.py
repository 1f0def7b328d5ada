"""A kernelspec's provisioner config is checked key by key (config_check): a typo fails the start request with the
kernelspec's name, the key and the setting meant, instead of leaving the default silently in force. Runs through
jupyter_client's own provisioner factory; the check fails the start before anything is launched, so no engine."""

from __future__ import annotations

import json
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from jupyter_client import AsyncKernelManager
from jupyter_client.kernelspec import KernelSpec, KernelSpecManager

from kernelfleet.provisioners.config_check import ProvisionerConfigError, check_provisioner_config, kernelspec_name
from kernelfleet.provisioners.ssh.distributed import DistributedProvisioner


def write_spec(tmp_path: Path, name: str, provisioner: str, config: dict[str, object]) -> KernelSpecManager:
    spec_dir = tmp_path / "kernels" / name
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(json.dumps({
        "argv": ["python", "-m", "kernelfleet.launcher"], "display_name": name, "language": "python",
        "metadata": {"kernel_provisioner": {"provisioner_name": provisioner, "config": config}},
    }))
    return KernelSpecManager(kernel_dirs=[str(tmp_path / "kernels")])


def kernelfleet_provisioners() -> list[str]:
    return sorted(ep.name for ep in entry_points(group="jupyter_client.kernel_provisioners")
                  if ep.value.startswith("kernelfleet."))


@pytest.mark.parametrize("provisioner", kernelfleet_provisioners())
async def test_a_typo_fails_the_start_with_the_kernelspec_and_the_key_meant(tmp_path: Path, provisioner: str) -> None:
    ksm = write_spec(tmp_path, "kf_typo", provisioner, {"launch_timout": 5, "port_range": "0..0"})
    km = AsyncKernelManager(kernel_name="kf_typo", kernel_spec_manager=ksm)
    with pytest.raises(ProvisionerConfigError) as err:
        await km.start_kernel()
    message = str(err.value)
    assert "kernelspec 'kf_typo'" in message
    assert "'launch_timout' (did you mean 'launch_timeout'?)" in message
    assert "port_range" not in message  # a valid key is not reported
    assert km.provisioner is None  # nothing was launched


def test_every_unknown_key_is_named_and_one_far_from_any_setting_has_no_suggestion() -> None:
    spec = KernelSpec(resource_dir="/usr/share/jupyter/kernels/remote_py", argv=["x"], display_name="x")
    with pytest.raises(ProvisionerConfigError) as err:
        DistributedProvisioner(kernel_id="k-1", kernel_spec=spec, remote_host="h1", zzzzzz=1)
    assert str(err.value).startswith("Kernel k-1: kernelspec 'remote_py': ")
    assert "'remote_host' (did you mean 'remote_hosts'?)" in str(err.value)
    assert "'zzzzzz'." in str(err.value) and "'zzzzzz' (did you mean" not in str(err.value)


def test_valid_keys_still_configure_the_provisioner() -> None:
    provisioner = DistributedProvisioner(kernel_id="k-1", launch_timeout=7.5, remote_hosts=["h1"])
    assert (provisioner.launch_timeout, provisioner.remote_hosts) == (7.5, ["h1"])


def test_kernelspec_name_falls_back_to_the_resource_dir() -> None:
    assert kernelspec_name(KernelSpec(name="named", resource_dir="/k/other")) == "named"
    assert kernelspec_name(KernelSpec(resource_dir="/k/kf_r/")) == "kf_r"
    assert kernelspec_name(None) == "<unnamed>"
    with pytest.raises(ProvisionerConfigError, match=r"^Kernelspec '<unnamed>': "):
        check_provisioner_config(DistributedProvisioner, {"lanch_timeout": 1})
