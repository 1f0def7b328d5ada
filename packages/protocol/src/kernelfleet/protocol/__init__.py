"""Kernel Fleet launch protocol v2: the one implementation shared by the server and the Python launcher.

The wire format is specified in ``docs/protocol.md``; ``docs/protocol-vectors.json`` pins it byte for
byte so the R and Scala launchers can prove they speak the same protocol; ``contract`` names what a
launcher receives (section 2), pinned for every launcher by ``docs/launcher-vectors.json``.

Names are imported on first use (PEP 562), so a launcher that needs only ``PortRange`` before it
spawns its kernel does not pay for loading the cryptography first.
"""

from __future__ import annotations

import importlib

from kernelfleet.protocol._version import __version__

PROTOCOL_VERSION = 2
# Not typing.TYPE_CHECKING: importing typing would cost the launcher's small supervisor memory.
TYPE_CHECKING = False

_EXPORTS = {
    "CommOp": "comm",
    "CommProtocolError": "comm",
    "UnknownOpError": "comm",
    "greeting": "comm",
    "parse_greeting": "comm",
    "parse_reply": "comm",
    "reply": "comm",
    "sign_request": "comm",
    "verify_request": "comm",
    "ServerKey": "keys",
    "PortRange": "ports",
    "PortRangeError": "ports",
    "LegacyReportError": "report",
    "Report": "report",
    "ReportError": "report",
    "open_report": "report",
    "peek_kernel_id": "report",
    "seal_report": "report",
    "ResponseAddress": "address",
}

__all__ = [
    "PROTOCOL_VERSION",
    "CommOp",
    "CommProtocolError",
    "LegacyReportError",
    "PortRange",
    "PortRangeError",
    "Report",
    "ReportError",
    "ResponseAddress",
    "ServerKey",
    "UnknownOpError",
    "__version__",
    "greeting",
    "open_report",
    "parse_greeting",
    "parse_reply",
    "peek_kernel_id",
    "reply",
    "seal_report",
    "sign_request",
    "verify_request",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:
    from typing import Any

    from kernelfleet.protocol.address import ResponseAddress
    from kernelfleet.protocol.comm import (
        CommOp,
        CommProtocolError,
        UnknownOpError,
        greeting,
        parse_greeting,
        parse_reply,
        reply,
        sign_request,
        verify_request,
    )
    from kernelfleet.protocol.keys import ServerKey
    from kernelfleet.protocol.ports import PortRange, PortRangeError
    from kernelfleet.protocol.report import (
        LegacyReportError,
        Report,
        ReportError,
        open_report,
        peek_kernel_id,
        seal_report,
    )
