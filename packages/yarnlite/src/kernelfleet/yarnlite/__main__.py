"""``yarnlite --port N [--ha]``: run a ResourceManager (or an HA pair) as a process until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import signal
import tempfile
from pathlib import Path

from .cluster import Cluster, Queue
from .server import ResourceManager, ResourceManagerPair


async def _serve(args: argparse.Namespace) -> None:
    cluster = Cluster(Path(args.work_dir or tempfile.mkdtemp(prefix="yarnlite-")),
                      queues=[Queue(q) for q in args.queue or ["default"]])
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        if args.ha:
            async with ResourceManagerPair(cluster, host=args.host) as pair:
                print(f"yarnlite: active {pair.rm1.endpoint}, standby {pair.rm2.endpoint}", flush=True)
                await stop.wait()
        else:
            async with ResourceManager(cluster, host=args.host, port=args.port) as rm:
                print(f"yarnlite: serving {rm.endpoint}", flush=True)
                await stop.wait()
    finally:
        await cluster.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="yarnlite", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--ha", action="store_true", help="two RMs, the second standby")
    parser.add_argument("--queue", action="append", help="a queue name (repeat; default: default)")
    parser.add_argument("--work-dir", help="NodeManager work and log directories")
    asyncio.run(_serve(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
