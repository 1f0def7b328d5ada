"""``python -m kubelite --port N --kubeconfig PATH``: run the fake cluster as a process until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

from .server import KubeLite


async def _serve(args: argparse.Namespace) -> None:
    server = KubeLite(args.host, args.port, token=args.token, spark_operator=not args.no_spark_operator,
                      unschedulable=args.unschedulable, tls=not args.plain_http)
    await server.start()
    try:
        server.write_kubeconfig(args.kubeconfig, namespace=args.namespace)
        print(f"kubelite: serving {server.url}; kubeconfig {args.kubeconfig}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        await server.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="kubelite", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--kubeconfig", required=True, help="where to write the kubeconfig")
    parser.add_argument("--namespace", default="default", help="the kubeconfig context's namespace")
    parser.add_argument("--token", default=None, help="bearer token (random when omitted)")
    parser.add_argument("--plain-http", action="store_true",
                        help="serve plain HTTP instead of HTTPS with a generated CA (kubectl sends no token over it)")
    parser.add_argument("--unschedulable", action="store_true", help="start with the node cordoned")
    parser.add_argument("--no-spark-operator", action="store_true", help="do not serve SparkApplications")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO)
    asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
