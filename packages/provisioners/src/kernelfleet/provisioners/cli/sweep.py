"""``jupyter kernelfleet sweep``: list (and with ``--yes`` remove) what this server's kernels left on the engines
that no saved session claims.

Dry run by default: it prints a table and changes nothing. It must never remove a live kernel of a running
server, so

* the kernels the session store (``--store-dir``, default ``<Jupyter runtime dir>/kernelfleet-sessions``) holds
  are claimed; without a store it refuses, unless ``--all-unclaimed`` says that no server with this identity runs;
* objects younger than ``--grace`` seconds (default 600, the default longest launch timeout) are not touched: a
  running server may be in the middle of launching them and has not saved their session yet.

The server's own configuration (``jupyter_server_config``: ``c.ServerIdentity.server_id``, the
``distributed-provisioner`` settings) is read, so the sweep looks for the identity and hosts the server uses.

Exit status: 0 all selected engines searched and (with ``--yes``) everything found removed; 1 a removal failed;
2 refused or bad usage (no session store, an invalid server id); 3 an engine could not be searched (the others
were searched and, with ``--yes``, swept).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path
from typing import TextIO

from jupyter_core.application import JupyterApp

from kernelfleet.provisioners.cli import launches
from kernelfleet.provisioners.launch_events import LaunchEventSettings
from kernelfleet.provisioners.leases import close_all
from kernelfleet.provisioners.server_identity import ServerIdentityError, check_server_id, server_id_of
from kernelfleet.provisioners.sweep import (
    ENGINES,
    Orphan,
    Outcome,
    SSHTarget,
    YarnTarget,
    claimed_kernel_ids,
    default_store_dir,
    find_orphans,
    remove_orphans,
)

EXIT_OK, EXIT_REMOVAL_FAILED, EXIT_REFUSED, EXIT_ENGINE_UNAVAILABLE = 0, 1, 2, 3
DEFAULT_GRACE = 600.0


class ServerConfig(JupyterApp):  # type: ignore[misc]
    """Only reads the Jupyter server's config files, so ServerIdentity and the provisioners see what the server
    sees."""

    name = "jupyter-kernelfleet"
    config_file_name = "jupyter_server_config"


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="jupyter kernelfleet", description="Kernel Fleet operator commands.")
    commands = top.add_subparsers(dest="command", required=True)
    sweep = commands.add_parser(
        "sweep", help="list or remove kernel objects of this server that no session claims",
        description=__doc__.split("\n\n")[0], epilog="exit status: 0 done; 1 a removal failed; 2 refused or bad "
        "usage; 3 an engine could not be searched", formatter_class=argparse.RawDescriptionHelpFormatter)
    sweep.add_argument("--yes", action="store_true", help="remove what is listed (default: dry run)")
    sweep.add_argument("--server-id", help="identity to sweep (default: the server's, from its config, "
                       "KF_SERVER_ID or the host name and runtime dir)")
    sweep.add_argument("--engine", action="append", choices=ENGINES, help="search only this engine (repeatable; "
                       "default all)")
    sweep.add_argument("--ssh-host", action="append", help="SSH host to search (repeatable; default: the hosts of "
                       "every distributed-provisioner kernelspec)")
    sweep.add_argument("--yarn-endpoint", action="append", help="YARN ResourceManager to search (repeatable; "
                       "default: those of every yarn-provisioner kernelspec and the server's, e.g. GP_YARN_ENDPOINT)")
    sweep.add_argument("--store-dir", type=Path, help="the session store (default <runtime dir>/kernelfleet-sessions)")
    sweep.add_argument("--all-unclaimed", action="store_true", help="no server with this identity is running: treat "
                       "nothing as claimed, even without a session store")
    sweep.add_argument("--grace", type=float, default=DEFAULT_GRACE, help="leave objects younger than this many "
                       f"seconds alone (launches in progress; default {DEFAULT_GRACE:g})")
    launches.add_parser(commands)
    return top


def format_age(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def table(orphans: list[Orphan], outcomes: dict[Orphan, str] | None = None) -> str:
    header = ["ENGINE", "KIND", "NAME", "KERNEL", "AGE"] + (["RESULT"] if outcomes is not None else [])
    rows = [[o.engine, o.kind, o.name, o.kernel_id, format_age(o.age)] + (
        [outcomes.get(o, "")] if outcomes is not None else []) for o in orphans]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
                     for row in [header, *rows])


async def sweep(args: argparse.Namespace, app: ServerConfig, out: TextIO, err: TextIO) -> int:
    try:
        server_id = check_server_id(args.server_id, "--server-id") if args.server_id else server_id_of(app)
    except ServerIdentityError as error:
        print(f"error: {error}", file=err)
        return EXIT_REFUSED
    store = args.store_dir or default_store_dir()
    if args.all_unclaimed:
        claimed: set[str] = set()
    else:
        try:
            claimed = await asyncio.to_thread(claimed_kernel_ids, store)
        except OSError as error:
            print(f"error: cannot read the session store {store} ({error.strerror or error}); without it every kernel "
                  "of a running server would look unclaimed. Point --store-dir at it, or pass --all-unclaimed if no "
                  f"server with identity {server_id} is running", file=err)
            return EXIT_REFUSED
    targets = None
    if args.ssh_host:
        from kernelfleet.provisioners.ssh.distributed import DistributedProvisioner

        settings = DistributedProvisioner(parent=app).ssh_settings()
        targets = [SSHTarget(host, settings) for host in args.ssh_host]
    try:
        rms = yarn_targets(args.yarn_endpoint, app) if args.yarn_endpoint else None
    except ValueError as error:
        print(f"error: --yarn-endpoint: {error}", file=err)
        return EXIT_REFUSED
    try:
        orphans = await find_orphans(claimed, server_id=server_id, engines=args.engine, ssh_targets=targets,
                                     yarn_targets=rms, min_age=args.grace, parent=app)
        print(f"server {server_id}: {len(orphans)} unclaimed object(s) older than {args.grace:g}s "
              f"({len(claimed)} kernel(s) claimed by sessions)", file=out)
        for where, why in sorted(orphans.unavailable.items()):
            print(f"warning: {where} not searched: {why}", file=err)
        status = EXIT_ENGINE_UNAVAILABLE if orphans.unavailable else EXIT_OK
        if not orphans:
            return status
        if not args.yes:
            print(table(list(orphans)), file=out)
            print("dry run: nothing was removed; run again with --yes to remove these", file=out)
            return status
        removals = await remove_orphans(orphans)
    finally:
        await close_all()
    outcomes = {r.orphan: r.outcome.value + (f": {r.message}" if r.message else "") for r in removals}
    print(table([r.orphan for r in removals], outcomes), file=out)
    if any(r.outcome is Outcome.FAILED for r in removals):
        return EXIT_REMOVAL_FAILED
    return status


def yarn_targets(endpoints: list[str], app: ServerConfig) -> list[YarnTarget]:
    """One target per ``--yarn-endpoint``, authenticated as the server's yarn-provisioner settings say."""
    from kernelfleet.provisioners.yarn.client import normalise_endpoint
    from kernelfleet.provisioners.yarn.provisioner import YarnProvisioner

    configured = YarnProvisioner(parent=app)
    hook = configured.authorization_hook if configured.yarn_endpoint_security_enabled else ""
    return [YarnTarget((normalise_endpoint(endpoint),), hook) for endpoint in endpoints]


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.getLogger("kernelfleet").addHandler(logging.NullHandler())  # the tables and warnings say it all
    app = ServerConfig()
    app.initialize([])
    if args.command == "launches":
        return launches.launches(args, Path(LaunchEventSettings(parent=app).launch_journal), sys.stdout)
    return asyncio.run(sweep(args, app, sys.stdout, sys.stderr))


if __name__ == "__main__":
    sys.exit(main())
