"""Launch events without an engine: the payload builder against the published schema (validated by a real
jupyter_events EventLogger), finding a server's event logger up the parent chain, Docker pull tallies, pod Event
mapping, the launch journal (0600, bounded, no secret) and ``jupyter kernelfleet launches``."""

from __future__ import annotations

import asyncio
import io
import json
import stat
from pathlib import Path
from typing import Any

import pytest
from jupyter_events import EventLogger
from traitlets import Instance
from traitlets.config import LoggingConfigurable

from kernelfleet.provisioners.cli import launches as launches_cli
from kernelfleet.provisioners.cli.sweep import main, parser
from kernelfleet.provisioners.docker.pull import PullTally, split_reference
from kernelfleet.provisioners.k8s.pod_events import event_phase
from kernelfleet.provisioners.launch_events import (
    SCHEMA_ID,
    LaunchEventSettings,
    LaunchProgress,
    Phase,
    launch_event,
    launch_schema,
    server_event_logger,
)
from kernelfleet.provisioners.launch_journal import LaunchJournal, launch_record, read_launches


class FakeServerApp(LoggingConfigurable):  # type: ignore[misc]
    """Stands for jupyter_server's ServerApp: the one object of the chain that owns an ``event_logger``."""

    event_logger = Instance(EventLogger, args=())


def test_schema_phases_and_engines_are_the_codes() -> None:
    schema = launch_schema()
    assert schema["$id"] == SCHEMA_ID and SCHEMA_ID.startswith("https://events.kernelfleet.dev/")
    assert schema["properties"]["phase"]["enum"] == [p.value for p in Phase]
    engines = set(schema["properties"]["engine"]["enum"])
    from kernelfleet.provisioners import base
    from kernelfleet.provisioners.docker.provisioner import DockerProvisioner, DockerSwarmProvisioner
    from kernelfleet.provisioners.k8s.provisioner import KubernetesProvisioner
    from kernelfleet.provisioners.k8s.spark_operator import SparkOperatorProvisioner
    from kernelfleet.provisioners.ssh.distributed import DistributedProvisioner
    from kernelfleet.provisioners.yarn.provisioner import YarnProvisioner

    classes = [DockerProvisioner, DockerSwarmProvisioner, KubernetesProvisioner, SparkOperatorProvisioner,
               DistributedProvisioner, YarnProvisioner, base.RemoteProvisionerBase]
    assert {c.launch_engine for c in classes} | {"local"} == engines


def test_builder_drops_empty_details_and_cuts_long_messages() -> None:
    event = launch_event("k1", "docker", Phase.IMAGE_PULL, 1.23456789, reason="Downloading", message="x" * 5000,
                         host=None, image="", bytes_done=10, bytes_total=20)
    assert event == {"kernel_id": "k1", "engine": "docker", "phase": "image_pull", "elapsed": 1.234568,
                     "reason": "Downloading", "message": "x" * 2000 + "…", "bytes_done": 10, "bytes_total": 20}


def test_events_reach_the_server_logger_validated_and_in_order() -> None:
    app = FakeServerApp()
    received: list[dict[str, Any]] = []

    async def run() -> None:
        kernel_manager = LoggingConfigurable(parent=LoggingConfigurable(parent=app))
        provisioner = LaunchEventSettings(parent=kernel_manager, launch_journal="")
        logger = server_event_logger(provisioner)
        assert logger is app.event_logger and SCHEMA_ID in logger.schemas.schema_ids

        ended = asyncio.Event()

        async def listener(logger: EventLogger, schema_id: str, data: dict[str, Any]) -> None:
            received.append(data)
            if data["phase"] == "failed":
                ended.set()

        logger.add_listener(schema_id=SCHEMA_ID, listener=listener)
        progress = provisioner.begin_progress("k1", "kubernetes")
        progress.emit(Phase.ACCEPTED)
        progress.forward(Phase.SCHEDULED, "Scheduled", "Successfully assigned ns/pod to node")
        progress.emit(Phase.IMAGE_PULL, image="img", bytes_done=1, bytes_total=2)
        progress.finish(RuntimeError("Kernel k1: pod ns/pod: ImagePullBackOff"))
        progress.emit(Phase.STARTED)  # after the end: belongs to no launch
        await asyncio.wait_for(ended.wait(), 10)  # listeners run as tasks

    asyncio.run(run())
    assert [e["phase"] for e in received] == ["accepted", "scheduled", "image_pull", "failed"]
    assert all(e["kernel_id"] == "k1" and e["engine"] == "kubernetes" for e in received)
    assert received[-1]["message"] == "Kernel k1: pod ns/pod: ImagePullBackOff"
    elapsed = [e["elapsed"] for e in received]
    assert elapsed == sorted(elapsed)


def test_an_invalid_event_never_fails_a_launch() -> None:
    app = FakeServerApp()
    app.event_logger.register_handler(__import__("logging").NullHandler())
    progress = LaunchProgress("k1", "not-an-engine", app.log, app.event_logger, None)
    server_event_logger(LaunchEventSettings(parent=LoggingConfigurable(parent=app)))
    progress.emit(Phase.ACCEPTED)  # the schema refuses the engine: logged at debug, not raised
    assert progress.timings[0][0] == "accepted"


def test_no_server_no_logger_and_events_off() -> None:
    assert server_event_logger(LaunchEventSettings()) is None
    settings = LaunchEventSettings(launch_events=False)
    progress = settings.begin_progress("k1", "docker")
    progress.emit(Phase.ACCEPTED)
    progress.finish()
    assert progress.timings == []


def test_pull_tally_from_dockers_progress_lines() -> None:
    tally = PullTally()
    lines = [
        {"status": "Pulling from kf/kernel-py", "id": "tag"},
        {"status": "Pulling fs layer", "id": "a"}, {"status": "Pulling fs layer", "id": "b"},
        {"status": "Downloading", "id": "a", "progressDetail": {"current": 100, "total": 1000}},
        {"status": "Downloading", "id": "b", "progressDetail": {"current": 50, "total": 500}},
    ]
    ended = [tally.feed(line) for line in lines]
    assert (tally.done, tally.total) == (150, 1500) and not any(ended)
    assert tally.feed({"status": "Download complete", "id": "a"})
    assert (tally.done, tally.total) == (1050, 1500)
    tally.feed({"status": "Extracting", "id": "a", "progressDetail": {"current": 7, "total": 1000}})
    tally.feed({"status": "Download complete", "id": "b"})
    assert (tally.done, tally.total) == (1500, 1500)


@pytest.mark.parametrize(("image", "expected"), [
    ("kernelfleet/kernel-py:dev", ("kernelfleet/kernel-py", "dev")),
    ("127.0.0.1:5000/kf/kernel-py:x1", ("127.0.0.1:5000/kf/kernel-py", "x1")),
    ("127.0.0.1:5000/kf/kernel-py", ("127.0.0.1:5000/kf/kernel-py", "latest")),
    ("kf/kernel-py@sha256:" + "0" * 64, ("kf/kernel-py@sha256:" + "0" * 64, None)),
])
def test_split_reference(image: str, expected: tuple[str, str | None]) -> None:
    assert split_reference(image) == expected


def test_pod_event_reasons_map_to_phases() -> None:
    assert [event_phase(r) for r in ("Scheduled", "Pulling", "Pulled", "Started", "BackOff", "Failed")] == [
        Phase.SCHEDULED, Phase.IMAGE_PULL, Phase.IMAGE_PULL, Phase.STARTED, Phase.ENGINE_EVENT, Phase.ENGINE_EVENT]


def test_journal_is_private_bounded_and_readable(tmp_path: Path) -> None:
    path = tmp_path / "runtime" / "kernelfleet-launches.jsonl"
    journal = LaunchJournal(path, max_bytes=4000)
    for n in range(100):
        error = RuntimeError(f"Kernel k{n}: Docker could not pull image 'x': not found") if n % 2 else None
        journal.record(launch_record(f"k{n}", "docker", 1.7e9 + n, [("accepted", 0.001), ("connected", 0.5)],
                                     {"image": "x"}, error))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.stat().st_size <= 4000
    last = read_launches(path, 3)
    assert [r["kernel_id"] for r in last] == ["k97", "k98", "k99"]
    assert last[-1]["outcome"] == "failed" and "not found" in last[-1]["error"]
    assert last[-2] == {"kernel_id": "k98", "engine": "docker", "started_at": "2023-11-14T22:14:58.000+00:00",
                        "outcome": "connected", "seconds": 0.5, "phases": [["accepted", 0.001], ["connected", 0.5]],
                        "image": "x"}


def test_journal_writes_off_the_loop_and_flushes(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"

    async def run() -> None:
        settings = LaunchEventSettings(launch_journal=str(path))
        progress = settings.begin_progress("k1", "local")
        progress.emit(Phase.ACCEPTED)
        progress.finish()
        assert progress.journal is not None
        await progress.journal.flush()

    asyncio.run(run())
    (record,) = read_launches(path, 10)
    assert record["kernel_id"] == "k1" and [p[0] for p in record["phases"]] == ["accepted", "connected"]


def test_launches_command_prints_phase_timings(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "kernelfleet-launches.jsonl"
    path.write_text("".join(json.dumps(launch_record(kid, "kubernetes", 1.7e9, [
        ("accepted", 0.002), ("scheduled", 0.05), ("started", 0.4), ("reported", 0.9), ("connected", 0.95)],
        {}, None)) + "\n" for kid in ("k1", "k2")) + "not json\n")
    monkeypatch.setenv("JUPYTER_CONFIG_DIR", str(tmp_path / "config"))
    assert main(["launches", "--journal", str(path), "--last", "1"]) == 0
    out = capsys.readouterr().out
    assert "k2" in out and "k1" not in out
    assert "accepted@0.002 scheduled@0.050 started@0.400 reported@0.900 connected@0.950" in out
    monkeypatch.setenv("KF_LAUNCH_JOURNAL", str(path))
    assert main(["launches", "--kernel", "k1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["kernel_id"] == "k1"
    args = parser().parse_args(["launches", "--journal", str(tmp_path / "none.jsonl")])
    out_buffer = io.StringIO()
    assert launches_cli.launches(args, path, out_buffer) == 0
    assert "no launches recorded" in out_buffer.getvalue()
