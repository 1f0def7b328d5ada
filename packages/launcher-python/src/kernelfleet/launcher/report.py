"""Sending the sealed report (docs/protocol.md, section 3) and reading the server's verdict.

The report is sealed only once connected, because with KERNEL_IP=0.0.0.0 the address to report is the
local end of the very connection that reaches the server: the interface the server can reach us by.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

from kernelfleet.protocol.address import ResponseAddress
from kernelfleet.protocol.contract import (
    REPORT_CONNECT_TIMEOUT,
    REPORT_CONNECT_WINDOW,
    REPORT_REPLY_TIMEOUT,
    REPORT_RETRY_FIRST_PAUSE,
    REPORT_RETRY_MAX_PAUSE,
)

MAX_REPLY_BYTES = 4096

log = logging.getLogger("kernelfleet.launcher")


class ReportFailed(RuntimeError):
    """The report could not be delivered or the server refused it; the message is safe to log."""


async def _connect(address: ResponseAddress) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + REPORT_CONNECT_WINDOW
    delay = REPORT_RETRY_FIRST_PAUSE
    while True:
        try:
            return await asyncio.wait_for(
                asyncio.open_connection(address.host, address.port, limit=MAX_REPLY_BYTES), REPORT_CONNECT_TIMEOUT
            )
        except ConnectionRefusedError:
            if loop.time() + delay > deadline:
                raise ReportFailed(
                    f"RESPONSE_ADDRESS {address} refused the connection for {REPORT_CONNECT_WINDOW:.0f} s"
                ) from None
            log.debug("response address %s refused the connection; retrying", address)
            await asyncio.sleep(delay)
            delay = min(delay * 2, REPORT_RETRY_MAX_PAUSE)
        except TimeoutError:
            raise ReportFailed(f"connecting to RESPONSE_ADDRESS {address} timed out") from None
        except OSError as err:
            raise ReportFailed(f"cannot connect to RESPONSE_ADDRESS {address}: {err.strerror or err}") from None


async def send_report(address: ResponseAddress, seal: Callable[[str], bytes]) -> dict[str, Any]:
    """Connect, seal with the local address (``seal(local_ip)`` returns the line), send, and return the reply.

    Raises ReportFailed unless the server answered ``{"ok": true}``.
    """
    reader, writer = await _connect(address)
    try:
        local_ip = writer.get_extra_info("sockname")[0]
        writer.write(seal(local_ip))
        await writer.drain()
        try:
            line = await asyncio.wait_for(reader.readline(), REPORT_REPLY_TIMEOUT)
        except TimeoutError:
            raise ReportFailed(f"the server at {address} did not answer within {REPORT_REPLY_TIMEOUT:.0f} s") from None
        except ValueError:
            raise ReportFailed(f"the server at {address} answered with an over-long line") from None
    except (ConnectionError, OSError) as err:
        raise ReportFailed(f"sending the report to {address} failed: {err}") from None
    finally:
        writer.close()
    try:
        answer = json.loads(line)
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise ReportFailed(f"the server at {address} closed the connection without a valid answer")
    if answer.get("ok") is not True:
        raise ReportFailed(f"the server refused the report ({answer.get('error', 'no reason given')})")
    return answer
