"""settle_container (issue 10, item 2): the engine-neutral container decisions as a pure function of a frozen
ContainerSettings and the request, unit-tested without an engine; Docker, Swarm and Kubernetes all go through it."""

from __future__ import annotations

import pytest

from kernelfleet.provisioners.container import (
    ContainerChoice,
    ContainerSettings,
    LaunchInputs,
    settle_container,
)

KID = "0b8f2f1e-5b9a-4c55-9d3b-6d1c2e7f9a10"
SETTINGS = ContainerSettings(image_name="kernelfleet/kernel-py:dev", inherited_envs=("TZ",))
INPUTS = LaunchInputs(launch_env={"KERNEL_ID": KID, "LAUNCH_TOKEN": "t0k"}, argv_settings={"KERNEL_LANGUAGE": "python"})


def test_defaults_give_the_configured_image_jovyan_and_the_protocol_variables() -> None:
    choice = settle_container(KID, SETTINGS, {"KERNEL_USERNAME": "Alice Smith", "TZ": "UTC"}, INPUTS)
    assert isinstance(choice, ContainerChoice)
    assert (choice.image, choice.uid, choice.gid, choice.working_dir) == ("kernelfleet/kernel-py:dev", 1000, 100, None)
    assert choice.env["KERNEL_UID"] == "1000" and choice.env["KERNEL_GID"] == "100"
    assert choice.env["KERNEL_IMAGE"] == "kernelfleet/kernel-py:dev" and choice.env["KERNEL_LANGUAGE"] == "python"
    assert choice.env["LAUNCH_TOKEN"] == "t0k"
    assert choice.name == f"kf-alice-smith-{KID}"[:63]
    with pytest.raises(AttributeError):
        choice.image = "other"  # type: ignore[misc]  # frozen: a launch's decision cannot drift


def test_a_requested_image_needs_the_kernelspecs_consent() -> None:
    with pytest.raises(PermissionError, match=rf"Kernel {KID}: KERNEL_IMAGE='evil/x' .*allow_client_image is off"):
        settle_container(KID, SETTINGS, {"KERNEL_IMAGE": "evil/x"}, INPUTS)
    allowing = ContainerSettings(image_name="a/b", allow_client_image=True, allowed_images=frozenset({"ok/x"}))
    assert settle_container(KID, allowing, {"KERNEL_IMAGE": "ok/x"}, INPUTS).image == "ok/x"
    with pytest.raises(PermissionError, match="is not one of this kernelspec's allowed_images"):
        settle_container(KID, allowing, {"KERNEL_IMAGE": "evil/x"}, INPUTS)
    with pytest.raises(ValueError, match="no image configured"):
        settle_container(KID, ContainerSettings(), {}, INPUTS)


def test_ids_and_working_dir_are_checked() -> None:
    with pytest.raises(PermissionError, match="KERNEL_UID"):
        settle_container(KID, SETTINGS, {"KERNEL_UID": "0"}, INPUTS)
    assert settle_container(KID, SETTINGS, {"KERNEL_UID": "1234", "KERNEL_GID": "1234"}, INPUTS).uid == 1234
    mirroring = ContainerSettings(image_name="a/b", mirror_working_dirs=True)
    assert settle_container(KID, mirroring, {"KERNEL_WORKING_DIR": "/home/x/../y"}, INPUTS).working_dir == "/home/y"
    assert settle_container(KID, SETTINGS, {"KERNEL_WORKING_DIR": "/home/y"}, INPUTS).working_dir is None
    with pytest.raises(ValueError, match="KERNEL_WORKING_DIR must be an absolute path"):
        settle_container(KID, mirroring, {"KERNEL_WORKING_DIR": "relative"}, INPUTS)
