"""Writing one watch response: the store's changes as JSON lines, BOOKMARK events while nothing happens (when the
client sent ``allowWatchBookmarks=true``), and the test hook that drops open watches silently.

``KubeLite._watch`` calls ``stream_changes`` once per watch request. A BOOKMARK carries only the resourceVersion
the watch has reached, as the API server's watch cache sends it, so a client that resumes from it skips nothing.
A silenced watch (``WatchSilencer.drop_all``) keeps its connection open but never writes again, as a connection
that a middlebox or a dead peer dropped without a FIN looks to the client; only a client-side timeout ends it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import web

from .store import Change


class WatchSilencer:
    """The open watches of one server, so that a test can make them all go quiet at once."""

    def __init__(self) -> None:
        self._open: set[asyncio.Event] = set()

    @contextlib.contextmanager
    def register(self) -> Any:
        silenced = asyncio.Event()
        self._open.add(silenced)
        try:
            yield silenced
        finally:
            self._open.discard(silenced)

    def drop_all(self) -> int:
        """Silence every watch open now (later ones are unaffected); returns how many."""
        for silenced in self._open:
            silenced.set()
        return len(self._open)


async def stream_changes(response: web.StreamResponse, changes: AsyncIterator[Change],
                         translate: Callable[[Change], str | None], *, kind: str, api_version: str,
                         bookmark_every: float | None, revision: Callable[[], int],
                         silenced: asyncio.Event,
                         send: Callable[[str, dict[str, Any]], Awaitable[None]] | None = None) -> None:
    """Write ``changes`` (filtered and typed by ``translate``) until they end, each through ``send`` (default: one
    JSON watch event per line; the server passes one that writes Tables for ``kubectl get -w``); raises ApiError for
    an ERROR event (written by the caller) and ConnectionError when the client went away."""

    async def write_event(type_: str, obj: dict[str, Any]) -> None:
        await response.write(json.dumps({"type": type_, "object": obj}).encode() + b"\n")

    send = send or write_event

    next_change: asyncio.Task[Change] = asyncio.ensure_future(anext(changes))
    quiet: asyncio.Task[bool] = asyncio.ensure_future(silenced.wait())
    try:
        while True:
            done, _ = await asyncio.wait({next_change, quiet}, timeout=bookmark_every,
                                         return_when=asyncio.FIRST_COMPLETED)
            if quiet in done:  # dropped silently: keep consuming (so the watch still ends with the store) unwritten
                with contextlib.suppress(StopAsyncIteration):
                    while True:
                        await next_change
                        next_change = asyncio.ensure_future(anext(changes))
                return
            if next_change not in done:  # nothing for a while: tell the client how far it has got
                await send("BOOKMARK", {"kind": kind, "apiVersion": api_version,
                                        "metadata": {"resourceVersion": str(revision())}})
                continue
            try:
                change = next_change.result()
            except StopAsyncIteration:
                return
            type_ = translate(change)
            if type_ is not None:
                await send(type_, change.obj)
            next_change = asyncio.ensure_future(anext(changes))
    finally:
        for task in (next_change, quiet):
            task.cancel()
        await asyncio.gather(next_change, quiet, return_exceptions=True)
