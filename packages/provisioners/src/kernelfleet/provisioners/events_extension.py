"""A jupyter_server extension that registers the launch-events schema when the server starts.

jupyter_server's ``/api/events/subscribe`` listens to the schemas registered when a client connects; a schema
registered later (at the first launch, ``launch_events.server_event_logger``) would reach only clients that
connect after it. Enabled by the ``jupyter_server_config.d/kernelfleet-launch-events.json`` file this package
installs (``c.ServerApp.jpserver_extensions``), so every subscriber sees every launch.
"""

from __future__ import annotations

from typing import Any

from kernelfleet.provisioners.launch_events import SCHEMA_ID, launch_schema

MODULE = "kernelfleet.provisioners.events_extension"


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": MODULE}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    logger = serverapp.event_logger
    if SCHEMA_ID not in logger.schemas.schema_ids:
        logger.register_event_schema(launch_schema())
    serverapp.log.debug("Kernel Fleet launch events: schema %s registered", SCHEMA_ID)
