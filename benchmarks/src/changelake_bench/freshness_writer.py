"""The freshness bench's load generator, in its own process (``python -m …freshness_writer``).

It puts items into DynamoDB at a fixed rate from a few threads and prints, for each batch that
DynamoDB accepted, one line ``<monotonic seconds> <pk>:<ver> …``. Running it outside the
pipeline's process keeps the load generator from taking the pipeline's GIL; ``time.monotonic``
is the system-wide CLOCK_MONOTONIC on Linux, so its stamps compare with the parent's.
"""

from __future__ import annotations

import argparse
import random
import string
import sys
import threading
import time
from collections import defaultdict
from typing import Any


def _write(
    ddb: Any,
    *,
    table: str,
    items: int,
    rate: float,
    until: float,
    offset: int,
    stride: int,
    lock: threading.Lock,
) -> None:
    rng = random.Random(offset)
    pad = "".join(rng.choices(string.ascii_letters, k=300))
    versions: dict[str, int] = defaultdict(int)
    batch = 25
    interval = batch / rate
    next_at = time.monotonic()
    n = offset
    while time.monotonic() < until:
        requests, keys = [], []
        for _ in range(batch):
            pk = f"f{n % items:06d}"
            n += stride
            if pk in keys:  # BatchWriteItem rejects two writes to one key
                continue
            versions[pk] += 1
            keys.append(pk)
            item = {
                "pk": {"S": pk},
                "ver": {"N": str(versions[pk])},
                "note": {"S": pad},
                "ok": {"BOOL": True},
            }
            requests.append({"PutRequest": {"Item": item}})
        unprocessed: dict[str, Any] = {table: requests}
        while unprocessed:
            resp = ddb.batch_write_item(RequestItems=unprocessed)
            unprocessed = resp.get("UnprocessedItems") or {}
        done = time.monotonic()
        line = f"{done:.6f} " + " ".join(f"{pk}:{versions[pk]}" for pk in keys) + "\n"
        with lock:
            sys.stdout.write(line)
            sys.stdout.flush()
        next_at += interval
        delay = next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)


def main(argv: list[str] | None = None) -> None:
    """Write for ``--seconds`` at ``--rate`` changes/s, then exit."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--table", default="persons")
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--writers", type=int, default=4)
    args = parser.parse_args(argv)
    from changelake_bench.env import boto_client

    ddb = boto_client("dynamodb", args.endpoint)
    until = time.monotonic() + args.seconds
    lock = threading.Lock()
    threads = [
        threading.Thread(
            target=_write,
            args=(ddb,),
            kwargs={
                "table": args.table,
                "items": args.items,
                "rate": args.rate / args.writers,
                "until": until,
                "offset": i,
                "stride": args.writers,
                "lock": lock,
            },
            daemon=True,
        )
        for i in range(args.writers)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


if __name__ == "__main__":
    main()
