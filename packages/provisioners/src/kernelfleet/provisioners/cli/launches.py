"""``jupyter kernelfleet launches``: the server's last launches with their phase timings, from the launch journal.

It reads the file the server's provisioners append to (``launch_journal``; the server's config and
``KF_LAUNCH_JOURNAL`` are honoured, ``--journal`` overrides), so an operator sees where start time goes: each launch
on one line, its outcome, total seconds and the time since the launch began at which each phase was reached, and
for a failed one the engine's reason. ``--json`` prints the records as they are stored, one per line.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, TextIO

from kernelfleet.provisioners.launch_journal import read_launches

DEFAULT_LAST = 20


def add_parser(commands: Any) -> None:
    """The ``launches`` subcommand of ``jupyter kernelfleet`` (``cli.sweep.parser``)."""
    launches = commands.add_parser("launches", help="print the last launches with their phase timings",
                                   description=__doc__.split("\n\n")[0])
    launches.add_argument("--last", type=int, default=DEFAULT_LAST, help=f"how many (default {DEFAULT_LAST})")
    launches.add_argument("--kernel", help="only this kernel id's launches")
    launches.add_argument("--journal", type=Path, help="the launch journal (default: the server's launch_journal "
                          "setting, KF_LAUNCH_JOURNAL, or <runtime dir>/kernelfleet-launches.jsonl)")
    launches.add_argument("--json", action="store_true", help="print the stored records, one JSON object a line")


def phase_line(record: dict[str, Any]) -> str:
    """``phase@seconds`` for each phase reached, in order: where the launch's time went."""
    return " ".join(f"{name}@{float(seconds):.3f}" for name, seconds in record.get("phases") or [])


def launches_table(records: list[dict[str, Any]]) -> str:
    header = ["STARTED", "KERNEL", "ENGINE", "OUTCOME", "SECONDS", "PHASES"]
    rows = [[str(r.get("started_at", ""))[:23], str(r.get("kernel_id", "")), str(r.get("engine", "")),
             str(r.get("outcome", "")), f"{float(r.get('seconds') or 0):.3f}", phase_line(r)] for r in records]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]
    lines = []
    for row, record in zip([header, *rows], [None, *records], strict=True):
        lines.append("  ".join([*(cell.ljust(w) for cell, w in zip(row, widths, strict=False)), row[-1]]).rstrip())
        if record is not None and record.get("error"):
            lines.append(f"    error: {record['error']}")
    return "\n".join(lines)


def launches(args: argparse.Namespace, journal: Path, out: TextIO) -> int:
    records = read_launches(args.journal or journal, max(args.last, 0) if not args.kernel else 10**9)
    if args.kernel:
        records = [r for r in records if r.get("kernel_id") == args.kernel][-args.last:]
    if args.json:
        for record in records:
            print(json.dumps(record), file=out)
        return 0
    if not records:
        print(f"no launches recorded in {args.journal or journal}", file=out)
        return 0
    print(launches_table(records), file=out)
    return 0
