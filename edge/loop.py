"""Which asyncio event loop the server runs on: uvloop (libuv) when installed, or the stock one.

uvloop is a well-kept drop-in loop written on libuv; Tornado runs on it unchanged (its IOLoop
wraps whatever asyncio loop runs). `--loop=auto` takes it when it can be imported.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["CHOICES", "LoopUnavailable", "loop_factory", "describe"]

CHOICES = ("auto", "asyncio", "uvloop")


class LoopUnavailable(RuntimeError):
    """--loop=uvloop was asked for and uvloop is not installed."""


def loop_factory(choice: str) -> Callable[[], asyncio.AbstractEventLoop]:
    """Returns what makes the event loop `choice` names (auto: uvloop if installed)."""
    if choice == "asyncio":
        return asyncio.new_event_loop
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise LoopUnavailable("--loop=uvloop needs the uvloop package: "
                                  "pip install 'uvloop>=0.21,<1'") from None
        return asyncio.new_event_loop
    return uvloop.new_event_loop


def describe(loop: asyncio.AbstractEventLoop) -> str:
    """Returns the name of a running loop for the start-up log line."""
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"
