"""A stand-in for an old Gateway Provisioners kernel image's launcher: it sends a protocol-v1 report (made with
the server's real public key) and then waits, as GP's launcher does while its kernel runs.

Usage: python gp_v1_launcher.py RESPONSE_ADDRESS PUBLIC_KEY KERNEL_ID
"""

from __future__ import annotations

import asyncio
import sys

from report_clients import gp_v1_payload, send, v1_info


async def main(address: str, public_key: str, kernel_id: str) -> None:
    await send(address, gp_v1_payload(public_key, v1_info(kernel_id)), close_after=True)
    await asyncio.Event().wait()  # the server stops us when the launch times out


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
