"""Run the emulator alone (container / dev): settings → logging → emulator → wait for a signal."""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType

from changelake.logs import configure_logging

from changelake_emulator.emulator import Emulator
from changelake_emulator.settings import EmulatorSettings


def main() -> int:
    """Start the emulator, print its endpoint, stop cleanly on SIGINT/SIGTERM."""
    settings = EmulatorSettings()
    configure_logging(settings.log_level)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        del signum, frame
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, on_signal)
    with Emulator(
        settings.emulator_port,
        settings=settings,
        faults=settings.faults(),
        precision=settings.emulator_precision,
        firehose_buffer_seconds=settings.emulator_firehose_buffer_seconds,
        firehose_buffer_mb=settings.emulator_firehose_buffer_mb,
        shards=settings.emulator_shards,
        host=settings.emulator_host,
    ) as emulator:
        print(f"changelake emulator ready at {emulator.endpoint}", flush=True)
        while not stop.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
