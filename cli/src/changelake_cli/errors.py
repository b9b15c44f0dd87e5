"""Every CLI failure as one clear line with a hint, never a traceback.

A traceback is for the developers of changelake, not its users: with ``CHANGELAKE_LOG_LEVEL=DEBUG``
the exception propagates as usual.
"""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager

import typer
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
)
from changelake import aws

LOCAL_HINT = "for the local stack run `changelake local up` and paste the export lines it prints"


def _where(exc: BaseException) -> str:
    url = getattr(exc, "kwargs", {}).get("endpoint_url") or aws.endpoint_for("s3")
    if not url:
        return "AWS (no AWS_ENDPOINT_URL set)"
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _aws_cause(exc: BaseException) -> BaseException:
    """The AWS SDK error behind ``exc`` (services wrap them), else ``exc`` itself."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, (BotoCoreError, ClientError)):
            return seen
        seen = seen.__cause__ or seen.__context__
    return exc


def one_line(exc: BaseException) -> str:
    """The message for a failure that reached the command line: ``error: … (hint: …)``."""
    exc = _aws_cause(exc)
    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        return (
            "error: no AWS credentials found (hint: "
            f"{LOCAL_HINT}; for AWS, configure credentials, e.g. AWS_PROFILE)"
        )
    if isinstance(exc, EndpointConnectionError):
        return f"error: cannot reach {_where(exc)} (hint: is it running? {LOCAL_HINT})"
    if isinstance(exc, NoRegionError):
        return "error: no AWS region configured (hint: export AWS_REGION or CHANGELAKE_REGION)"
    if isinstance(exc, ClientError):
        code = aws.error_code(exc) or "error"
        message = exc.response.get("Error", {}).get("Message") or str(exc)
        operation = getattr(exc, "operation_name", "")
        return (
            f"error: AWS {operation} failed: {code}: {message} "
            f"(endpoint: {_where(exc)}; hint: {LOCAL_HINT})"
        )
    text = " ".join(str(exc).split()) or type(exc).__name__
    return (
        f"error: {type(exc).__name__}: {text} "
        "(hint: set CHANGELAKE_LOG_LEVEL=DEBUG to see the traceback)"
    )


def show_tracebacks() -> bool:
    """Whether the user asked for tracebacks (debug logging)."""
    return os.environ.get("CHANGELAKE_LOG_LEVEL", "").upper() == "DEBUG"


@contextmanager
def exit_on_failure(code: int) -> Iterator[None]:
    """Any failure inside: its one line on stderr, then exit ``code`` (a traceback if DEBUG)."""
    try:
        yield
    except typer.Exit:
        raise
    except Exception as exc:
        if show_tracebacks():
            raise
        typer.echo(one_line(exc), err=True)
        raise typer.Exit(code) from exc
