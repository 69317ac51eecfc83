"""Run a coroutine on uvloop when it is installed: the server runs on uvloop, so the load
generator and the baseline do too, and all three pay the same event-loop costs."""

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run_async(main: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a Garrison dependency on Linux
        return asyncio.run(main)
    return uvloop.run(main)
