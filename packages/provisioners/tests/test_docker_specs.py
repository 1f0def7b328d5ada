"""The Docker container config and the Swarm task template as pure functions of a frozen DockerLaunch (issue 10,
item 2), checked without a Docker engine."""

from __future__ import annotations

import pytest

from kernelfleet.provisioners.docker.specs import DockerLaunch, TokenSecret, container_config, task_template

LAUNCH = DockerLaunch(image="kernelfleet/kernel-py:dev", uid=1000, gid=100,
                      env={"KERNEL_ID": "k1", "LAUNCH_TOKEN_FILE": "/run/kf/token"},
                      labels={"kernel_id": "k1", "app": "kernelfleet"}, network="kf-net", working_dir="/home/jovyan",
                      mounts=({"Type": "volume", "Source": "data", "Target": "/data"},), memory_bytes=2**30)


def test_container_config() -> None:
    config = container_config(LAUNCH)
    assert config["Image"] == "kernelfleet/kernel-py:dev" and config["User"] == "1000:100"
    assert config["Env"] == ["KERNEL_ID=k1", "LAUNCH_TOKEN_FILE=/run/kf/token"]
    assert config["WorkingDir"] == "/home/jovyan" and config["Labels"]["kernel_id"] == "k1"
    assert config["HostConfig"] == {"NetworkMode": "kf-net", "Init": True, "SecurityOpt": ["no-new-privileges"],
                                    "Mounts": [{"Type": "volume", "Source": "data", "Target": "/data"}],
                                    "Memory": 2**30, "MemorySwap": 2**30}


def test_task_template() -> None:
    template = task_template(LAUNCH, TokenSecret("s1", "kf-token-k1", "kernelfleet-launch-token"))
    spec = template["ContainerSpec"]
    assert spec["Secrets"] == [{"SecretID": "s1", "SecretName": "kf-token-k1", "File": {
        "Name": "kernelfleet-launch-token", "UID": "1000", "GID": "100", "Mode": 0o400}}]
    assert spec["Dir"] == "/home/jovyan" and spec["Env"]["KERNEL_ID"] == "k1" and spec["Init"] is True
    assert template["RestartPolicy"] == {"Condition": "none", "MaxAttempts": 0}
    assert template["Resources"] == {"Limits": {"MemoryBytes": 2**30}}
    assert template["Networks"] == [{"Target": "kf-net"}]
    bridge = task_template(DockerLaunch(image="i", uid=1, gid=1, env={}, labels={}, network="bridge"),
                           TokenSecret(None, None, "t"))
    assert "Networks" not in bridge and "Resources" not in bridge


def test_the_token_never_goes_into_the_environment() -> None:
    with pytest.raises(ValueError, match="as a file"):
        DockerLaunch(image="i", uid=1, gid=1, env={"LAUNCH_TOKEN": "secret"}, labels={}, network="host")
