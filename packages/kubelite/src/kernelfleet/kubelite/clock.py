"""Timestamps in the API's RFC 3339, second-precision UTC form."""

from __future__ import annotations

import datetime as _dt


def now() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def docker_time(value: str | None) -> str | None:
    """Docker's nanosecond timestamps ("2024-05-01T10:00:00.123456789Z") cut to the API's precision."""
    if not value or value.startswith("0001-"):
        return None
    return value.split(".")[0].rstrip("Z") + "Z"
