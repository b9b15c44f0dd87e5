"""Build the CDK app the same way for ``cdk synth``, ``python app.py`` and the tests."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

import aws_cdk as cdk

from changelake_deploy.stack import ChangelakeStack

DEPLOY_DIR = Path(__file__).resolve().parents[1]
DEFAULT_STACK_NAME = "Changelake"


def cdk_json_context() -> dict[str, object]:
    """The ``context`` block of deploy/cdk.json (feature flags and the stack's defaults)."""
    data = json.loads((DEPLOY_DIR / "cdk.json").read_text(encoding="utf-8"))
    return dict(data.get("context", {}))


def build_app(
    outdir: str | None = None, context: Mapping[str, object] | None = None
) -> tuple[cdk.App, ChangelakeStack]:
    """The app with its one stack; cdk.json's context, then ``context``, then the CLI's ``-c``."""
    merged = {**cdk_json_context(), **(context or {})}
    if outdir is None and "CDK_OUTDIR" not in os.environ:
        outdir = str(DEPLOY_DIR / "cdk.out")  # plain `python app.py` writes where cdk would
    app = cdk.App(outdir=outdir, context=merged)
    account = os.environ.get("CDK_DEFAULT_ACCOUNT")
    region = os.environ.get("CDK_DEFAULT_REGION")
    env = cdk.Environment(account=account, region=region) if account and region else None
    stack = ChangelakeStack(
        app,
        str(app.node.try_get_context("stack_name") or DEFAULT_STACK_NAME),
        env=env,
        description="changelake: every DynamoDB change, queryable with plain SQL",
    )
    return app, stack
