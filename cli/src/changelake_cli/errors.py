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
from changelake.adapters import aws

LOCAL_HINT = "for the local stack run `changelake local up` and paste the export lines it prints"


def _where(endpoint: str | None) -> str:
    if not endpoint:
        return "AWS (no AWS_ENDPOINT_URL set)"
    parts = urllib.parse.urlsplit(endpoint)
    return f"{parts.scheme}://{parts.netloc}"


def one_line(exc: BaseException) -> str:
    """The message for a failure that reached the command line: ``error: … (hint: …)``."""
    failure = aws.failure(exc)
    if failure is None or failure.kind == "other":
        exc = failure.error if failure is not None else exc
        text = " ".join(str(exc).split()) or type(exc).__name__
        return (
            f"error: {type(exc).__name__}: {text} "
            "(hint: set CHANGELAKE_LOG_LEVEL=DEBUG to see the traceback)"
        )
    if failure.kind == "credentials":
        return (
            "error: no AWS credentials found (hint: "
            f"{LOCAL_HINT}; for AWS, configure credentials, e.g. AWS_PROFILE)"
        )
    if failure.kind == "unreachable":
        return f"error: cannot reach {_where(failure.endpoint)} (hint: is it running? {LOCAL_HINT})"
    if failure.kind == "region":
        return "error: no AWS region configured (hint: export AWS_REGION or CHANGELAKE_REGION)"
    return (
        f"error: AWS {failure.operation} failed: {failure.code}: {failure.message} "
        f"(endpoint: {_where(failure.endpoint)}; hint: {LOCAL_HINT})"
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
