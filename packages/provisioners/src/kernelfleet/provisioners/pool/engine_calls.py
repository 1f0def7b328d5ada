"""How a ``StandbyEngine``'s start and stop run: to completion, even when the pool that awaits them is closing and
cancels them. A cancelled request does not stop the engine (Docker, the API server): what it made would be left
behind unknown. The engines (``docker.standbys``, ``k8s.standbys``) wrap their own calls in these two.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


async def start_to_completion(start: Coroutine[Any, Any, T], stop: Callable[[T], Awaitable[None]]) -> T:
    """Await ``start``; cancelled meanwhile, let it finish and ``stop`` what it made, then pass the cancellation on."""
    starting = asyncio.ensure_future(start)
    try:
        return await asyncio.shield(starting)
    except asyncio.CancelledError:
        await asyncio.wait({starting})
        if not starting.cancelled() and starting.exception() is None:
            await stop(starting.result())
        raise


async def stop_to_completion(stop: Coroutine[Any, Any, None]) -> None:
    """Await ``stop``; cancelled meanwhile, let it finish all the same, then pass the cancellation on."""
    stopping = asyncio.ensure_future(stop)
    try:
        await asyncio.shield(stopping)
    except asyncio.CancelledError:
        await asyncio.wait({stopping})
        raise
