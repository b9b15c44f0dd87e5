"""Synthesize the stack once per session; tests read the template, never AWS or Docker."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

DEPLOY_DIR = Path(__file__).resolve().parents[1]
REPO_ROOT = DEPLOY_DIR.parent
sys.path.insert(0, str(DEPLOY_DIR))

# jsii warns loudly on Node 20; nothing in the synth depends on the Node version.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
# An environment-agnostic stack, whatever the developer's shell says.
for _var in ("CDK_DEFAULT_ACCOUNT", "CDK_DEFAULT_REGION", "CDK_OUTDIR", "CDK_CONTEXT_JSON"):
    os.environ.pop(_var, None)


@dataclass(frozen=True)
class Synth:
    """One synthesized cloud assembly."""

    outdir: Path
    template: dict[str, Any]
    template_path: Path
    assets: dict[str, Any]

    def resources(self, cfn_type: str) -> dict[str, dict[str, Any]]:
        """Logical id → resource of one CloudFormation type."""
        return {k: r for k, r in self.template["Resources"].items() if r["Type"] == cfn_type}


def synthesize(outdir: Path, context: dict[str, object] | None = None) -> Synth:
    """Build the app exactly as app.py does (cdk.json context) and synthesize it."""
    from changelake_deploy.app import build_app

    app, stack = build_app(outdir=str(outdir), context=context)
    assembly = app.synth()
    artifact = assembly.get_stack_by_name(stack.stack_name)
    template_path = outdir / artifact.template_file
    assets = json.loads((outdir / f"{stack.stack_name}.assets.json").read_text())
    return Synth(outdir, artifact.template, template_path, assets)


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    """The default stack (cdk.json context), synthesized once."""
    return synthesize(tmp_path_factory.mktemp("cdk.out"))


@pytest.fixture(scope="session")
def template(synth: Synth) -> Any:
    """The default stack's template as an ``aws_cdk.assertions.Template``."""
    from aws_cdk.assertions import Template

    return Template.from_json(synth.template)


OTHER_STACK = "ChangelakeStaging"
PRIVACY_POLICY = '{"persons": {"emails": "hash", "phone": "hash", "birthday": "mask"}}'
PRIVACY_SECRET = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:changelake-key-AbCdEf"


@pytest.fixture(scope="session")
def other(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    """A second stack in the same account: another name, 4 shards, 2 NATs, an alarm topic,
    a privacy policy with its key's secret."""
    return synthesize(
        tmp_path_factory.mktemp("cdk.other"),
        {
            "stack_name": OTHER_STACK,
            "shard_count": 4,
            "nat_gateways": 2,
            "alarm_topic_arn": "arn:aws:sns:eu-west-1:123456789012:oncall",
            "privacy_policy": PRIVACY_POLICY,
            "privacy_key_secret": PRIVACY_SECRET,
        },
    )
