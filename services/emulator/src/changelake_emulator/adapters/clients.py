"""boto3 clients the emulator builds for itself: explicit endpoint, never read from os.environ."""

from __future__ import annotations

import functools
import os
import threading
from typing import Any

import boto3
from changelake.adapters.aws import client_config

# moto accepts any credentials; these are used only when the environment supplies none.
FAKE_ACCESS_KEY = "changelake-local"
FAKE_SECRET_KEY = "changelake-local"


_lock = threading.Lock()


@functools.cache
def _session(region: str) -> boto3.session.Session:
    # One session per region: it caches the service models (loading them is the slow part).
    return boto3.session.Session(region_name=region)


def emulator_client(service: str, endpoint_url: str | None, region: str) -> Any:
    """A client for ``service``; with an endpoint, against it, with fake credentials if needed.

    Clients are thread-safe once built; building them is serialized because sessions are not.
    """
    kwargs: dict[str, Any] = {"config": client_config()}
    if endpoint_url is not None:
        kwargs["endpoint_url"] = endpoint_url
        if not os.environ.get("AWS_ACCESS_KEY_ID"):
            kwargs["aws_access_key_id"] = FAKE_ACCESS_KEY
            kwargs["aws_secret_access_key"] = FAKE_SECRET_KEY
    with _lock:
        return _session(region).client(service, **kwargs)  # type: ignore[call-overload]
