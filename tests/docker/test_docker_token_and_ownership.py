"""Issue 12 for Docker and Swarm, against the real dockerd and a one-node swarm.

- The launch token is in no object Docker's API returns: container, service, task and secret inspect
  output and the engine's events during the launch; inside the kernel it is in no process environment
  and (plain Docker) its file is gone before the first cell runs.
- Provisioners remove only what they created: a name already held by someone else's container or
  service fails the launch with a clear error and the holder survives, even when it carries this
  kernel's labels; a Swarm kernel's removal leaves a foreign container with its label alone.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from kf_docker import IMAGE, docker_cli, leftovers
from kf_testing import connect, execute, manager

from kernelfleet.provisioners.base import LaunchError
from kernelfleet.provisioners.container import resource_name

pytestmark = pytest.mark.hostile

# Run inside the kernel: every process environment it can read, and whether the token file is still there.
PROBE = """
import glob, json, os
environs = []
for path in glob.glob('/proc/[0-9]*/environ'):
    try:
        environs.append(open(path, 'rb').read().decode('latin-1'))
    except OSError:
        pass
token_file = os.environ.get('LAUNCH_TOKEN_FILE', '')
print(json.dumps({'environs': environs, 'token_file': token_file,
                  'file_exists': bool(token_file) and os.path.exists(token_file),
                  'env_token': 'LAUNCH_TOKEN' in os.environ}))
"""


async def kernel_objects(kernel_id: str) -> dict[str, str]:
    """Everything Docker returns about this kernel's containers, services, tasks and secrets, as raw JSON text."""
    label = f"label=kernel_id={kernel_id}"
    found: dict[str, str] = {}
    for kind, listing in (
        ("container", ["ps", "-aq", "--no-trunc", "--filter", label]),
        ("service", ["service", "ls", "-q", "--filter", label]),
        ("secret", ["secret", "ls", "-q", "--filter", label]),
    ):
        for object_id in (await docker_cli(*listing)).split():
            found[f"{kind} {object_id}"] = await docker_cli("inspect", "--type", kind, object_id)
            if kind == "service":
                for task_id in (await docker_cli("service", "ps", "-q", "--no-trunc", object_id)).split():
                    found[f"task {task_id}"] = await docker_cli("inspect", "--type", "task", task_id)
    return found


async def engine_events(since: float, until: float) -> str:
    """Every event dockerd recorded in [since, until], all types, as JSON lines."""
    return await docker_cli("events", "--since", f"{since:.3f}", "--until", f"{until:.3f}", "--format", "{{json .}}")


@pytest.fixture
async def foreign() -> AsyncIterator[list[str]]:
    """Objects that belong to 'someone else'; the test appends 'container <id>' / 'service <id>', removed after."""
    made: list[str] = []
    yield made
    for entry in made:
        kind, object_id = entry.split(" ", 1)
        if kind == "container":
            await docker_cli("rm", "-f", object_id, check=False)
        else:
            await docker_cli("service", "rm", object_id, check=False)


# ----------------------------------------------------------------------------------------- the token
async def test_launch_token_is_in_no_engine_object_nor_event(
    provisioner: str, docker_spec: Callable[..., str], kernels_dir: Path
) -> None:
    km = manager(kernels_dir, docker_spec(provisioner))
    since = time.time() - 1  # events carry whole-second and nanosecond times; a second of slack before
    await km.start_kernel(env={**os.environ})
    try:
        token = km.provisioner.launch_env["LAUNCH_TOKEN"]
        assert token, "the provisioner made no launch token"
        objects = await kernel_objects(km.kernel_id)
        for name, text in objects.items():
            assert token not in text, f"the launch token is readable in `docker inspect` of {name}"
            assert "LAUNCH_TOKEN=" not in text, f"{name} carries a LAUNCH_TOKEN variable"
        kinds = {name.split()[0] for name in objects}
        expected = {"container"} if provisioner == "docker-provisioner" else {"container", "service", "task", "secret"}
        assert expected <= kinds, f"expected to inspect {sorted(expected)}, found {sorted(objects)}"
        if provisioner == "docker-swarm-provisioner":  # the secret is this launch's, and its data is never shown
            secret = next(json.loads(text)[0] for name, text in objects.items() if name.startswith("secret"))
            assert secret["Spec"]["Labels"]["kernel_id"] == km.kernel_id and "Data" not in secret["Spec"]

        client = await connect(km)
        try:
            reply = await execute(client, "6 * 7")
            assert reply["status"] == "ok" and reply["result"] == "42"
            probe = await execute(client, PROBE)
            assert probe["status"] == "ok", probe
            seen = json.loads(probe["stdout"])
        finally:
            client.stop_channels()
        assert seen["environs"], "the kernel could read no process environment: the probe proves nothing"
        assert not any(token in environ for environ in seen["environs"]), "a process environment holds the token"
        assert not seen["env_token"] and seen["token_file"]
        if provisioner == "docker-provisioner":
            assert not seen["file_exists"], "the launcher left the token file in the container"
        until = time.time() + 1
        events = await engine_events(since, until)
        assert km.kernel_id in events, "no event of this launch was recorded: the event check proves nothing"
        assert token not in events, "the launch token appears in Docker's event stream"
    finally:
        await km.shutdown_kernel()
    assert await leftovers(km.kernel_id) == []


# ----------------------------------------------------------------------------------------- ownership
async def test_taken_container_name_fails_and_the_holder_survives(
    docker_spec: Callable[..., str], kernels_dir: Path, foreign: list[str]
) -> None:
    """Someone else's running container holds the name a request chooses (KERNEL_USERNAME + kernel id), and even
    wears this kernel's labels: the launch fails naming the kernel and KERNEL_USERNAME; the container lives on."""
    kernel_id, username = str(uuid.uuid4()), "alice"
    name = resource_name(username, kernel_id)
    holder = (await docker_cli("run", "-d", "--name", name, "--label", f"kernel_id={kernel_id}",
                               "--label", "app=kernelfleet", IMAGE, "sleep", "infinity")).strip()
    foreign.append(f"container {holder}")
    km = manager(kernels_dir, docker_spec("docker-provisioner"), kernel_id=kernel_id)
    try:
        with pytest.raises(LaunchError) as failure:
            await km.start_kernel(env={**os.environ, "KERNEL_USERNAME": username})
    finally:
        if km.has_kernel:  # the launch took the name after all: do not leave its kernel running
            await km.shutdown_kernel(now=True)
    message = str(failure.value)
    assert kernel_id in message and "KERNEL_USERNAME" in message and name in message, message
    assert "left untouched" in message
    state = json.loads(await docker_cli("inspect", "--type", "container", holder))[0]["State"]
    assert state["Running"], f"the foreign container was stopped or removed: {state}"
    assert (await docker_cli("ps", "-aq", "--no-trunc", "--filter", f"name=^{name}$")).split() == [holder]
    assert (await docker_cli("secret", "ls", "-q", "--filter", f"label=kernel_id={kernel_id}")).split() == []


async def test_taken_service_name_fails_and_the_holder_survives(
    swarm_ready: None, docker_spec: Callable[..., str], kernels_dir: Path, foreign: list[str]
) -> None:
    kernel_id, username = str(uuid.uuid4()), "alice"
    name = resource_name(username, kernel_id)
    holder = (await docker_cli("service", "create", "-d", "--name", name, "--label", f"kernel_id={kernel_id}",
                               "--container-label", f"kernel_id={kernel_id}", "--restart-condition", "none",
                               IMAGE, "sleep", "infinity")).strip()
    foreign.append(f"service {holder}")
    km = manager(kernels_dir, docker_spec("docker-swarm-provisioner"), kernel_id=kernel_id)
    try:
        with pytest.raises(LaunchError) as failure:
            await km.start_kernel(env={**os.environ, "KERNEL_USERNAME": username})
    finally:
        if km.has_kernel:  # the launch took the name after all: do not leave its kernel running
            await km.shutdown_kernel(now=True)
    message = str(failure.value)
    assert kernel_id in message and "KERNEL_USERNAME" in message and name in message, message
    spec = json.loads(await docker_cli("inspect", "--type", "service", holder))[0]
    assert spec["ID"] == holder and spec["Spec"]["Name"] == name, "the foreign service was replaced"
    # the launch's own token secret went with the failed launch
    assert (await docker_cli("secret", "ls", "-q", "--filter", f"label=kernel_id={kernel_id}")).split() == []


async def test_swarm_kernel_removal_spares_a_foreign_container_with_its_label(
    swarm_ready: None, docker_spec: Callable[..., str], kernels_dir: Path, foreign: list[str]
) -> None:
    """Removing a Swarm kernel removes its own task containers only, not every container labelled with its id."""
    kernel_id = str(uuid.uuid4())
    bystander = (await docker_cli("run", "-d", "--name", f"bystander-{kernel_id[:8]}", "--label",
                                  f"kernel_id={kernel_id}", IMAGE, "sleep", "infinity")).strip()
    foreign.append(f"container {bystander}")
    km = manager(kernels_dir, docker_spec("docker-swarm-provisioner"), kernel_id=kernel_id)
    await km.start_kernel(env={**os.environ})
    try:
        client = await connect(km)
        assert (await execute(client, "1 + 1"))["result"] == "2"
        client.stop_channels()
    finally:
        await km.shutdown_kernel()
    state = json.loads(await docker_cli("inspect", "--type", "container", bystander))[0]["State"]
    assert state["Running"], f"the kernel's removal stopped or removed a container it did not create: {state}"
    assert await leftovers(kernel_id) == [f"container {bystander[:12]}"]


# ----------------------------------------------------------------------------------------- old images
def test_an_image_without_token_file_support_is_named_as_the_cause() -> None:
    """The output of a bootstrap from before LAUNCH_TOKEN_FILE (as the old kernel-py image printed it) gets the
    note that the image must be rebuilt; the new bootstrap's own complaint, which names the file, does not."""
    from kernelfleet.provisioners.docker.common import tail_text

    old = tail_text(["bootstrap-kernel.sh: required environment variable LAUNCH_TOKEN is not set\n"])
    assert "predates LAUNCH_TOKEN_FILE" in old and "rebuild the image" in old
    new = tail_text(["bootstrap-kernel.sh: LAUNCH_TOKEN_FILE names no file this user (1000:100) can read\n"])
    assert "predates" not in new


async def test_a_mount_over_the_token_directory_is_refused_before_anything_is_created(
    docker_spec: Callable[..., str], kernels_dir: Path
) -> None:
    """A tmpfs on /tmp would hide the token file copied in before start: refused with the setting named."""
    spec = docker_spec("docker-provisioner", mounts=[{"Type": "tmpfs", "Target": "/tmp"}])
    km = manager(kernels_dir, spec)
    with pytest.raises(ValueError, match="launch_token_dir") as failure:
        await km.start_kernel(env={**os.environ})
    assert km.kernel_id in str(failure.value)
    assert await leftovers(km.kernel_id) == []
