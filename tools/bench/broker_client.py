"""Simulated launchers: seal reports for every expected kernel, then send them all at once.

Reads the broker's JSON line on stdin. v2 reports for Kernel Fleet; for Gateway Provisioners, the v1
payload its launchers send (RSA-PKCS#1 v1.5 + AES-ECB, socket closed to end the message).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import secrets
import sys
import time

from Crypto.Cipher import AES, PKCS1_v1_5
from Crypto.PublicKey import RSA
from Crypto.Util.Padding import pad

from kernelfleet.protocol import seal_report
from kernelfleet.protocol.encoding import b64encode


def conn_info(kernel_id: str) -> dict:
    return {"shell_port": 50001, "iopub_port": 50002, "stdin_port": 50003, "control_port": 50004,
            "hb_port": 50005, "ip": "127.0.0.1", "key": secrets.token_hex(16), "transport": "tcp",
            "signature_scheme": "hmac-sha256", "kernel_name": "", "comm_port": 50006, "kernel_id": kernel_id,
            "pid": 1, "pgid": 1}


def v1_payload(public_key: str, info: dict) -> bytes:
    aes_key = secrets.token_bytes(16)
    conn = base64.b64encode(AES.new(aes_key, AES.MODE_ECB).encrypt(pad(json.dumps(info).encode(), 16)))
    wrapped = PKCS1_v1_5.new(RSA.import_key(base64.b64decode(public_key))).encrypt(aes_key)
    envelope = {"version": 1, "key": base64.b64encode(wrapped).decode(), "conn_info": conn.decode()}
    return base64.b64encode(json.dumps(envelope).encode())


async def send(host: str, port: int, payload: bytes, expect_reply: bool) -> None:
    try:
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(payload)
        await writer.drain()
        if expect_reply:
            await reader.readline()
        else:
            writer.write_eof()
        writer.close()
    except OSError:
        pass  # a launcher whose connection is refused or reset just loses its report, as in real life


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("impl", choices=["kf", "gp"])
    parser.add_argument("--kernels", required=True, help="comma-separated kernel ids")
    parser.add_argument("--stall-seconds", type=float, default=0.0)
    args = parser.parse_args()
    info = json.loads(sys.stdin.readline())
    host, port = info["address"].rsplit(":", 1)
    kernel_ids = args.kernels.split(",")
    if args.impl == "kf":
        payloads = [seal_report({**conn_info(k), "comm_key": b64encode(secrets.token_bytes(32)),
                                 "launch_token": info["tokens"][k]}, kernel_id=k, public_key_b64=info["public_key"])
                    for k in kernel_ids]
    else:
        payloads = [v1_payload(info["public_key"], conn_info(k)) for k in kernel_ids]
    stalled = None
    if args.stall_seconds:
        stalled = await asyncio.open_connection(host, int(port))  # connects, sends nothing
        await asyncio.sleep(0.2)
    began = time.time()
    print(json.dumps({"began": began}), flush=True)
    await asyncio.gather(*(send(host, int(port), p, args.impl == "kf") for p in payloads))
    if stalled:
        await asyncio.sleep(max(0.0, args.stall_seconds - (time.time() - began)))
        stalled[1].close()


if __name__ == "__main__":
    try:  # the benchmarks run on uvloop when it is installed (Kernel Fleet supports it; GP's venv lacks it)
        import uvloop
    except ImportError:
        asyncio.run(main())
    else:
        uvloop.run(main())
