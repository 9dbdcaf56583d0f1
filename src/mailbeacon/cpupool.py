"""Work that costs CPU in proportion to a user's input, run in other processes.

DESIGN rule 1: nothing like that runs on the event loop that answers pixels.
A thread would not do: it holds the GIL while it works, and the loop waits.
A `CpuPool` is a small `ProcessPoolExecutor` that starts its processes on
first use and replaces them if one dies. Processes come from a fork server
(never forked from the parent itself, which runs threads), started once per
process with the modules named by `preload` already imported, so a new pool
process is ready in milliseconds. Functions given to it must be importable
module-level functions taking and returning picklable data. A pool may run
its processes at a lower priority (`nice`), so that on a busy machine the
scheduler prefers the process answering pixels.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

T = TypeVar("T")
_CONTEXT = multiprocessing.get_context("forkserver")


def preload(modules: list[str]) -> None:
    """Modules the fork server imports once, before it starts (later calls change nothing)."""
    _CONTEXT.set_forkserver_preload(modules)


def _lower_priority(nice: int) -> None:
    """Runs first in each pool process: background work yields the CPU to pixel answers."""
    if nice:
        os.nice(nice)


class CpuPool:
    """Run functions in worker processes and await their results from the loop."""

    def __init__(self, workers: int = 1, *, nice: int = 0) -> None:
        self._workers = workers
        self._nice = nice
        self._executor: ProcessPoolExecutor | None = None

    def _pool(self) -> ProcessPoolExecutor:
        if self._executor is None:
            self._executor = ProcessPoolExecutor(
                max_workers=self._workers,
                mp_context=_CONTEXT,
                initializer=_lower_priority,
                initargs=(self._nice,),
            )
        return self._executor

    async def run(self, function: Callable[..., T], *args: Any, retry: bool = True) -> T:
        """`function(*args)` in a worker process.

        If the process died, the pool is replaced; with `retry` the call is made
        again (right for pure functions), else BrokenProcessPool is raised (a
        call with effects outside, such as SMTP, must not run twice).
        """
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool(), function, *args)
        except BrokenProcessPool:
            self._discard()
            if not retry:
                raise
            return await loop.run_in_executor(self._pool(), function, *args)

    def _discard(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    async def close(self) -> None:
        """Stop the processes (waiting for the one task each may be running)."""
        if self._executor is not None:
            executor, self._executor = self._executor, None
            await asyncio.to_thread(executor.shutdown, wait=True, cancel_futures=True)
