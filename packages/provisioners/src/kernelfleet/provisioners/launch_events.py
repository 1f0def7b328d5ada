"""Launch progress as Jupyter events: one event per phase of a kernel's launch, in our own published schema.

Every provisioner calls ``LaunchProgress.emit`` at its lifecycle points (``RemoteProvisionerBase`` for the phases
all engines share: accepted, launcher_started, reported, connected, failed; each engine for its own: host chosen,
image pull, scheduled, started, and the engine's own events forwarded). Under jupyter_server the events go to the
server's ``EventLogger`` (the schema, ``event_schemas/launch/v1.json``, is registered with it on first use), so a
client of ``/api/events/subscribe`` sees them live; elsewhere they are plain debug log lines. Each finished launch
(connected or failed) is handed to the launch journal (``launch_journal``) that ``jupyter kernelfleet launches``
reads.

``launch_event`` is the pure builder of one payload; ``LaunchProgress`` is the thin emitter of one launch. An
event never fails a launch: a logger that refuses one is logged at debug and the launch goes on.
"""

from __future__ import annotations

import enum
import functools
import json
import logging
import time
from importlib import resources
from pathlib import Path
from typing import Any

from traitlets import Bool, Unicode, default
from traitlets.config import LoggingConfigurable

from kernelfleet.provisioners.envconfig import env_bool, env_value
from kernelfleet.provisioners.launch_journal import default_journal_path, journal_at, launch_record

SCHEMA_ID = "https://events.kernelfleet.dev/kernelfleet/launch/v1"
MESSAGE_LIMIT = 2000  # an engine's message (a pod's events, a log tail) is cut here: events are not logs
PARENT_DEPTH = 4  # provisioner -> kernel manager -> multi-kernel manager -> server app


class Phase(enum.StrEnum):
    """The phases of the schema, in the order a launch passes them (engines skip those they do not have)."""

    ACCEPTED = "accepted"
    HOST_CHOSEN = "host_chosen"
    IMAGE_PULL = "image_pull"
    SCHEDULED = "scheduled"
    LAUNCHER_STARTED = "launcher_started"
    STARTED = "started"
    ENGINE_EVENT = "engine_event"
    REPORTED = "reported"
    CONNECTED = "connected"
    FAILED = "failed"


# Phases kept in the journal's timings: each engine event or pull progress line is not worth a row.
TIMED_ONCE = frozenset(Phase) - {Phase.ENGINE_EVENT, Phase.IMAGE_PULL}


@functools.cache
def launch_schema() -> dict[str, Any]:
    """The published schema (package data), read once per process."""
    text = resources.files("kernelfleet.provisioners").joinpath("event_schemas/launch/v1.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def launch_event(kernel_id: str, engine: str, phase: Phase, elapsed: float, **details: Any) -> dict[str, Any]:
    """One event's payload: the schema's required fields and the details that have a value (messages cut)."""
    event: dict[str, Any] = {"kernel_id": kernel_id, "engine": engine, "phase": phase.value,
                             "elapsed": round(max(elapsed, 0.0), 6)}
    for name, value in details.items():
        if value is None or value == "":
            continue
        if isinstance(value, str) and len(value) > MESSAGE_LIMIT:
            value = value[:MESSAGE_LIMIT] + "…"
        event[name] = value
    return event


def server_event_logger(owner: Any) -> Any | None:
    """The jupyter_server ``EventLogger`` above ``owner`` (a provisioner: its kernel manager, whose parent's parent is
    the ServerApp), with our schema registered; None outside jupyter_server or without jupyter_events."""
    try:
        from jupyter_events import EventLogger
    except ImportError:
        return None
    node = getattr(owner, "parent", None)
    for _ in range(PARENT_DEPTH):
        if node is None:
            return None
        logger = getattr(node, "event_logger", None) if _has_event_logger(node) else None
        if isinstance(logger, EventLogger):
            if SCHEMA_ID not in logger.schemas.schema_ids:
                try:
                    logger.register_event_schema(launch_schema())
                except Exception as err:  # e.g. a jupyter_events too old for the schema: no events, still a launch
                    logging.getLogger("kernelfleet").warning("launch events are off: %s refused schema %s: %s",
                                                             type(logger).__name__, SCHEMA_ID, err)
                    return None
            return logger
        node = getattr(node, "parent", None)
    return None


def _has_event_logger(node: Any) -> bool:
    """Only objects that declare one (a traitlets trait or a plain attribute): nothing else is asked or created."""
    has_trait = getattr(node, "has_trait", None)
    return bool(has_trait("event_logger")) if callable(has_trait) else "event_logger" in getattr(node, "__dict__", {})


class LaunchProgress:
    """The events of one launch. ``RemoteProvisionerBase.pre_launch`` makes it (the clock starts), every provisioner
    emits through it, and the base class ends it with ``finish`` (connected or failed), which hands the launch's
    timings to the journal."""

    def __init__(self, kernel_id: str, engine: str, log: logging.Logger | logging.LoggerAdapter[Any],
                 event_logger: Any | None = None, journal: Any | None = None, enabled: bool = True) -> None:
        self.kernel_id, self.engine, self.log, self.enabled = kernel_id, engine, log, enabled
        self.event_logger, self.journal = event_logger, journal
        self.began = time.perf_counter()
        self.began_wall = time.time()
        self.timings: list[tuple[str, float]] = []
        self.details: dict[str, str] = {}  # host, image: what the journal shows besides timings
        self.finished = False

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.began

    def emit(self, phase: Phase, **details: Any) -> None:
        """Send one phase (with the engine's reason/message, host, image, bytes) to the server's event logger, or
        to the debug log outside a server."""
        if self.finished or not self.enabled:
            return  # an engine event that arrives after the launch ended belongs to no launch
        elapsed = self.elapsed
        if phase in TIMED_ONCE or not any(name == phase.value for name, _ in self.timings):
            self.timings.append((phase.value, round(elapsed, 4)))
        for name in ("host", "image"):
            if details.get(name):
                self.details[name] = str(details[name])
        event = launch_event(self.kernel_id, self.engine, phase, elapsed, **details)
        if self.log.isEnabledFor(logging.DEBUG):
            self.log.debug("Kernel %s: launch %s after %.3fs %s", self.kernel_id, phase.value, elapsed,
                           {k: v for k, v in event.items() if k not in ("kernel_id", "phase", "elapsed")})
        if self.event_logger is None:
            return
        try:
            self.event_logger.emit(schema_id=SCHEMA_ID, data=event)
        except Exception as err:  # an event must never fail a launch
            self.log.debug("Kernel %s: launch event %s not emitted: %s", self.kernel_id, phase.value, err)

    def forward(self, phase: Phase, reason: str, message: str = "", **details: Any) -> None:
        """An engine's own event (pod Event, Docker action, YARN state), forwarded as it came."""
        self.emit(phase, reason=reason, message=message, **details)

    def finish(self, error: BaseException | None = None) -> None:
        """End the launch: ``connected``, or ``failed`` with the error's message (it carries the engine's reason and
        never a secret: ``LaunchError``'s rule), and record it in the journal."""
        if self.finished:
            return
        if error is None:
            self.emit(Phase.CONNECTED)
        else:
            self.emit(Phase.FAILED, reason=type(error).__name__, message=str(error) or type(error).__name__)
        self.finished = True
        if self.journal is not None:
            self.journal.record(self.summary(error))

    def summary(self, error: BaseException | None) -> dict[str, Any]:
        """The journal's line for this launch (``launch_journal.launch_record``)."""
        return launch_record(self.kernel_id, self.engine, self.began_wall, self.timings, self.details, error)



class LaunchEventSettings(LoggingConfigurable):  # type: ignore[misc]
    """The launch-progress settings every provisioner has (a base of ``RemoteProvisionerBase``): set them per
    kernelspec or as ``c.<Provisioner>.*``."""

    launch_events = Bool(
        help="Emit launch progress as Jupyter events (schema " + SCHEMA_ID + ") and record each launch in the "
        "launch journal (env KF_LAUNCH_EVENTS; default true).",
    ).tag(config=True)
    launch_journal = Unicode(
        help="The launch journal that `jupyter kernelfleet launches` reads: a bounded JSON-lines file, mode 0600 "
        "(env KF_LAUNCH_JOURNAL; default <Jupyter runtime dir>/" + "kernelfleet-launches.jsonl; empty: none).",
    ).tag(config=True)

    @default("launch_events")
    def _launch_events_default(self) -> bool:
        return env_bool(("KF_LAUNCH_EVENTS",), True)

    @default("launch_journal")
    def _launch_journal_default(self) -> str:
        configured = env_value(("KF_LAUNCH_JOURNAL",))
        return str(default_journal_path()) if configured is None else configured

    def begin_progress(self, kernel_id: str, engine: str) -> LaunchProgress:
        """A new launch's progress (its clock starts now), wired to the server's event logger and the journal."""
        if not self.launch_events:
            return LaunchProgress(kernel_id, engine, self.log, enabled=False)
        journal = journal_at(Path(self.launch_journal)) if self.launch_journal else None
        return LaunchProgress(kernel_id, engine, self.log, server_event_logger(self), journal)
