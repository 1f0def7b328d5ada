"""The launch journal: the server's last launches with their phase timings, for ``jupyter kernelfleet launches``.

``LaunchProgress.finish`` (``launch_events``) hands each finished launch here; it is appended as one JSON line to
a file only its owner can read (0600; default ``<Jupyter runtime dir>/kernelfleet-launches.jsonl``). The file is
bounded: past ``max_bytes`` its older half is dropped. A line holds the kernel id, engine, host/image, outcome,
phase timings and the failure's message (which never carries a secret: ``LaunchError``'s rule) — nothing from the
launch's environment. Appending runs in the default executor, so the event loop never waits on the disk.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

FILE_NAME = "kernelfleet-launches.jsonl"
MAX_BYTES = 1_000_000  # about 2,000 launches: enough to see where start time goes, small enough to rewrite
ERROR_LIMIT = 1000

log = logging.getLogger("kernelfleet")
_lock = threading.Lock()  # appends and trims of one process never interleave (O_APPEND covers other processes)


def default_journal_path() -> Path:
    from jupyter_core.paths import jupyter_runtime_dir

    return Path(jupyter_runtime_dir()) / FILE_NAME


def launch_record(kernel_id: str, engine: str, began: float, timings: Iterable[tuple[str, float]],
                  details: dict[str, str], error: BaseException | None) -> dict[str, Any]:
    """One journal line: who, where, when, how it ended, and each phase's time since the launch began."""
    phases = [[name, seconds] for name, seconds in timings]
    record: dict[str, Any] = {
        "kernel_id": kernel_id, "engine": engine,
        "started_at": datetime.datetime.fromtimestamp(began, datetime.UTC).isoformat(timespec="milliseconds"),
        "outcome": "failed" if error is not None else "connected",
        "seconds": phases[-1][1] if phases else 0.0, "phases": phases, **details,
    }
    if error is not None:
        record["error"] = (str(error) or type(error).__name__)[:ERROR_LIMIT]
    return record


class LaunchJournal:
    """Appends launch records to one file, off the event loop; ``pending`` holds the writes not yet done."""

    def __init__(self, path: Path, max_bytes: int = MAX_BYTES) -> None:
        self.path, self.max_bytes = path, max_bytes
        self.pending: set[asyncio.Future[None]] = set()

    def record(self, entry: dict[str, Any]) -> None:
        line = (json.dumps(entry, separators=(",", ":"), default=str) + "\n").encode()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._append(line)
            return
        future = loop.run_in_executor(None, self._append, line)
        self.pending.add(future)
        future.add_done_callback(self._done)

    def _done(self, future: asyncio.Future[None]) -> None:
        self.pending.discard(future)
        if not future.cancelled() and future.exception() is not None:
            log.warning("the launch journal %s could not be written: %s", self.path,
                                                     future.exception())

    async def flush(self) -> None:
        """Wait for the writes under way (tests, server shutdown)."""
        if self.pending:
            await asyncio.wait(set(self.pending))

    def _append(self, line: bytes) -> None:
        with _lock:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line)
                size = os.fstat(fd).st_size
            finally:
                os.close(fd)
            if size > self.max_bytes:
                self._trim()

    def _trim(self) -> None:
        """Keep the newer half (whole lines), replacing the file atomically with another 0600 file."""
        data = self.path.read_bytes()
        keep = data[len(data) - self.max_bytes // 2:]
        keep = keep[keep.find(b"\n") + 1:]
        temporary = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, keep)
        finally:
            os.close(fd)
        os.replace(temporary, self.path)


_journals: dict[Path, LaunchJournal] = {}


def journal_at(path: Path) -> LaunchJournal:
    """The process's one journal writer for ``path`` (every kernel of a server shares it)."""
    journal = _journals.get(path)
    if journal is None:
        journal = _journals[path] = LaunchJournal(path)
    return journal


def read_launches(path: Path, last: int) -> list[dict[str, Any]]:
    """The last ``last`` records of the journal, oldest first; lines that are not records are skipped."""
    try:
        lines = path.read_bytes().splitlines()
    except FileNotFoundError:
        return []
    records: list[dict[str, Any]] = []
    for line in reversed(lines):
        if len(records) >= last:
            break
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a line cut by a crash mid-write
        if isinstance(record, dict) and "kernel_id" in record:
            records.append(record)
    return records[::-1]
