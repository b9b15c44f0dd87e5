"""``python -m changelake_consumer [local|kcl|record-processor]``: see :mod:`.bootstrap`."""

from __future__ import annotations

import sys

from changelake_consumer.bootstrap import run

if __name__ == "__main__":
    sys.exit(run(sys.argv[1] if len(sys.argv) > 1 else "local"))
