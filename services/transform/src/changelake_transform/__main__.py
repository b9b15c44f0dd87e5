"""Invoke the handler locally: a Firehose event as JSON on stdin, the response on stdout."""

from __future__ import annotations

import sys

import orjson

from changelake_transform.handler import handler


def main() -> int:
    """Read an event from stdin, print the handler's response."""
    event = orjson.loads(sys.stdin.buffer.read())
    sys.stdout.write(orjson.dumps(handler(event, None)).decode() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
