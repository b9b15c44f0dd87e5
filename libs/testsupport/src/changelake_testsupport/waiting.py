"""Waiting for an eventually consistent pipeline in tests: poll until true, or fail saying what."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(what: str, check: Callable[[], bool], timeout: float = 120.0) -> None:
    """Poll ``check`` every half second until it is true; ``AssertionError`` naming ``what``.

    The default timeout is sized for a loaded 2-core machine running the embedded stack.
    """
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.5)
