"""Bench plumbing: a scoped environment and an emulator (moto + bootstrap) on loopback."""

from __future__ import annotations

import contextlib
import logging
import os
import urllib.request
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def scoped_env(**values: str | None) -> Iterator[None]:
    """Set (or, with ``None``, unset) environment variables for the block, then restore them."""
    saved = {k: os.environ.get(k) for k in values}
    try:
        for k, v in values.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        yield
    finally:
        for k, old in saved.items():
            if old is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = old


@contextlib.contextmanager
def bootstrapped_moto() -> Iterator[str]:
    """A fresh moto server on 127.0.0.1 with every pipeline resource created; yields its URL."""
    from changelake.settings import ChangelakeSettings
    from changelake_emulator.bootstrap import bootstrap
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://127.0.0.1:{port}"
        req = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")
        with urllib.request.urlopen(req, timeout=10) as resp:
            resp.read()
        with scoped_env(**fake_aws_env()):
            bootstrap(ChangelakeSettings(), shards=1, endpoint_url=endpoint)
        del host
        yield endpoint
    finally:
        server.stop()


def fake_aws_env() -> dict[str, str | None]:
    """Credentials and region for the emulator; never a real profile."""
    return {
        "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID") or "testing",
        "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY") or "testing",
        "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
        "AWS_PROFILE": None,
        "AWS_SESSION_TOKEN": None,
    }


def boto_client(service: str, endpoint: str) -> Any:
    """A boto3 client on the emulator (the bench's own observer, outside the services)."""
    import boto3

    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )
    make: Any = session.client  # service is a runtime string: no typed overload applies
    return make(service, endpoint_url=endpoint)
