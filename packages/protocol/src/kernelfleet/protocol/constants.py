"""Numbers and labels fixed by protocol v2 (see docs/protocol.md); changing one is a new version."""

from __future__ import annotations

import re

PROTOCOL_VERSION = 2
PROTOCOL_NAME = "kernelfleet"

# Domain-separation labels: a MAC made for one purpose can never verify for another.
REPORT_MAC_LABEL = b"kernelfleet-report-v2\x00"
COMM_MAC_LABEL = b"kernelfleet-comm-v2\x00"

RSA_MIN_BITS = 2048
AES_KEY_BYTES = 32
MAC_KEY_BYTES = 32
IV_BYTES = 16
COMM_KEY_BYTES = 32
NONCE_BYTES = 32
LAUNCH_TOKEN_BYTES = 32

# Largest report line the server reads; a real one is about 1.5 KiB.
MAX_REPORT_BYTES = 64 * 1024
# Largest comm-port line either side reads.
MAX_COMM_LINE_BYTES = 4 * 1024

# Fields the launcher must put inside the encrypted connection info.
REQUIRED_CONNECTION_FIELDS = (
    "shell_port",
    "iopub_port",
    "stdin_port",
    "control_port",
    "hb_port",
    "key",
    "transport",
    "signature_scheme",
    "comm_port",
    "comm_key",
    "launch_token",
)
PORT_FIELDS = ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port", "comm_port")

# What a kernel id may look like on the wire (it is also part of MAC input and file names). ``\Z``, not ``$``:
# ``$`` also matches before a trailing newline, so "id\n" passed ``.match`` and reached grep patterns and logs.
KERNEL_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")
