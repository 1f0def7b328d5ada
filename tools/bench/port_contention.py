"""Neighbours that compete with kernel launchers for ports, and starting many kernels at once.

Shared by the port-race tests (tests/e2e, tests/ssh, tests/docker, tests/launchers) and by
tools/bench/concurrent_start.py, which also runs it inside Gateway Provisioners' venv: so nothing here
imports Kernel Fleet, only the standard library and jupyter_client.

Run as a script it is the neighbour process itself:
  python port_contention.py hungry [--hold N] [--rate R]   grab ephemeral ports (bind(0) and outbound
                                                            connections), hold up to N, churn R a second
  python port_contention.py thief                           bind every port read from stdin (one per line)
                                                            as soon as it is free, print "taken PORT"
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import select
import socket
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
HOLD = 3000
RATE = 2000.0


# ------------------------------------------------------------------------------------------ the neighbours


def _hungry(hold: int, rate: float) -> None:
    """Hold up to ``hold`` ephemeral ports, replacing the oldest at ``rate`` a second, until stdin closes.

    Half are bind(0) picks, half the source ports of outbound connections to a local listener: the two
    ways any busy program takes ports from the ephemeral range.
    """
    listener = socket.create_server(("127.0.0.1", 0), backlog=4096)
    listener.setblocking(False)
    target = listener.getsockname()
    held: deque[socket.socket] = deque()
    accepted: deque[socket.socket] = deque()
    period = 1.0 / rate
    next_at = time.monotonic()
    count = 0
    while True:
        wait = max(0.0, next_at - time.monotonic())
        readable, _, _ = select.select([sys.stdin, listener], [], [], wait)
        if sys.stdin in readable and not sys.stdin.readline():
            return
        if listener in readable:
            with contextlib.suppress(BlockingIOError):
                while True:
                    accepted.append(listener.accept()[0])
        if time.monotonic() < next_at:
            continue
        next_at += period
        sock = socket.socket()
        try:
            if count % 2:
                sock.bind(("0.0.0.0", 0))
            else:
                sock.connect(target)
        except OSError:
            sock.close()
        else:
            held.append(sock)
        count += 1
        while len(held) > hold:
            held.popleft().close()
        while len(accepted) > hold:
            accepted.popleft().close()


def _thief() -> None:
    """Bind, as an ordinary program does (no SO_REUSEADDR), every port named on stdin once it is free."""
    wanted: set[int] = set()
    taken: list[socket.socket] = []
    while True:
        readable, _, _ = select.select([sys.stdin], [], [], 0.0005 if wanted else None)
        if readable:
            line = sys.stdin.readline()
            if not line:
                return
            wanted.update(int(p) for p in line.split())
        for port in list(wanted):
            sock = socket.socket()
            try:
                sock.bind(("0.0.0.0", port))
                sock.listen(1)
            except OSError:
                sock.close()
                continue
            wanted.discard(port)
            taken.append(sock)
            print(f"taken {port}", flush=True)


class Neighbour:
    """One neighbour process; ``async with`` starts it and ends it (its stdin closes)."""

    def __init__(self, *args: str) -> None:
        self.args = args
        self.proc: asyncio.subprocess.Process | None = None
        self.taken: set[int] = set()
        self._reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Neighbour:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, str(HERE), *self.args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
        )
        self._reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        async for line in self.proc.stdout:
            word, _, port = line.decode().partition(" ")
            if word == "taken":
                self.taken.add(int(port))

    def want(self, ports: Iterable[int]) -> None:
        """Thief only: take these ports the moment they are free."""
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write((" ".join(str(p) for p in ports) + "\n").encode())

    async def __aexit__(self, *exc: object) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), 10)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
        if self._reader is not None:
            await self._reader


def port_hungry_neighbour(hold: int = HOLD, rate: float = RATE) -> Neighbour:
    return Neighbour("hungry", "--hold", str(hold), "--rate", str(rate))


def port_thief() -> Neighbour:
    return Neighbour("thief")


# ------------------------------------------------------------------------------------------ many kernels


@dataclass
class Outcome:
    index: int
    ok: bool
    detail: str


async def start_and_execute(
    make_manager: Callable[[int], Any], index: int, ready_timeout: float, code: str = "6 * 7"
) -> Outcome:
    """Start one kernel with a fresh jupyter_client manager, wait for kernel_info, run ``code``, shut down."""
    km = make_manager(index)
    client = None
    try:
        await km.start_kernel()
        client = km.client()
        client.start_channels(hb=False)
        await client.wait_for_ready(timeout=ready_timeout)
        msg_id = client.execute(code)
        async with asyncio.timeout(ready_timeout):
            while True:
                reply = await client.get_shell_msg()
                if reply["parent_header"].get("msg_id") == msg_id:
                    break
        status = reply["content"]["status"]
        return Outcome(index, status == "ok", f"execute status {status}")
    except Exception as err:  # every failure is one lost kernel, reported with its message
        return Outcome(index, False, f"{type(err).__name__}: {str(err)[-600:]}")
    finally:
        if client is not None:
            client.stop_channels()
        with contextlib.suppress(Exception):
            if km.has_kernel:
                await km.shutdown_kernel(now=True)


async def start_many(make_manager: Callable[[int], Any], count: int, ready_timeout: float = 300.0) -> list[Outcome]:
    """Start ``count`` kernels at once (one task each, as a server does for simultaneous users)."""
    return list(await asyncio.gather(*(start_and_execute(make_manager, i, ready_timeout) for i in range(count))))


def summary(outcomes: list[Outcome]) -> str:
    lost = [o for o in outcomes if not o.ok]
    lines = [f"{len(outcomes) - len(lost)}/{len(outcomes)} kernels came up and executed"]
    lines += [f"  kernel #{o.index}: {o.detail}" for o in lost[:10]]
    return "\n".join(lines)


def _main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("role", choices=["hungry", "thief"])
    parser.add_argument("--hold", type=int, default=HOLD)
    parser.add_argument("--rate", type=float, default=RATE)
    args = parser.parse_args()
    if args.role == "hungry":
        _hungry(args.hold, args.rate)
    else:
        _thief()


if __name__ == "__main__":
    _main()
