"""Background tasks a component starts at start-up and must stop at shutdown."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable


async def stop_tasks(tasks: Iterable[asyncio.Task[None] | None]) -> None:
    """Cancels every task, then waits for each to finish (their cancellation is expected)."""
    running = [task for task in tasks if task is not None]
    for task in running:
        task.cancel()
    for task in running:
        with contextlib.suppress(asyncio.CancelledError):
            await task
