"""Kernel Fleet launch protocol v2: the one implementation shared by the server and the Python launcher.

The wire format is specified in ``docs/protocol.md``; ``docs/protocol-vectors.json`` pins it byte for
byte so the R and Scala launchers can prove they speak the same protocol.
"""

from kernelfleet.protocol.address import ResponseAddress
from kernelfleet.protocol.comm import (
    CommOp,
    CommProtocolError,
    greeting,
    parse_greeting,
    parse_reply,
    reply,
    sign_request,
    verify_request,
)
from kernelfleet.protocol.constants import PROTOCOL_VERSION
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
