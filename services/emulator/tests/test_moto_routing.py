"""The emulator's memoized moto routing picks the same backend as moto, without listing files."""

from __future__ import annotations

import os

import pytest
from changelake_emulator import moto_routing
from moto.moto_server import werkzeug_app
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

pytestmark = pytest.mark.unit

HOSTS = [
    None,
    "moto_api",
    "s3",
    "dynamodb",
    "kinesis.us-east-1.amazonaws.com",
    "glue.us-east-1.amazonaws.com",
    "sqs.us-east-1.amazonaws.com",
    "firehose.us-east-1.amazonaws.com",
    "127.0.0.1:4566",
    "not-a-service.example",
]


def test_memoized_routing_equals_moto_for_every_host(monkeypatch: pytest.MonkeyPatch) -> None:
    app = DomainDispatcherApplication(create_backend_app)
    expected = {h: moto_routing._original_get_backend_for_host(app, h) for h in HOSTS}
    moto_routing.install()
    listed: list[str] = []
    real_listdir = os.listdir
    monkeypatch.setattr(os, "listdir", lambda p: listed.append(p) or real_listdir(p))

    first = {
        h: werkzeug_app.DomainDispatcherApplication.get_backend_for_host(app, h) for h in HOSTS
    }
    again = {
        h: werkzeug_app.DomainDispatcherApplication.get_backend_for_host(app, h) for h in HOSTS
    }

    assert first == again == expected
    assert expected["kinesis.us-east-1.amazonaws.com"] == "kinesis"
    assert len(listed) <= 1  # moto's package is listed once per process, not once per request
    assert set(moto_routing.list_of_moto_modules()) == set(
        moto_routing._original_list_of_moto_modules()
    )
