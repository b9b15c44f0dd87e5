"""The smoke test on a stack whose writers apply a privacy policy (ADR 0027).

Its own module: it needs its own local stack (moto's state is process-wide), started after
test_smoke.py's module-scoped one has stopped.
"""

from __future__ import annotations

import pytest
from changelake.adapters import aws
from changelake_cli import smoke
from changelake_cli.local_stack import LocalStack
from changelake_lake.query.current_check import compare
from changelake_lake.query.local_engine import LocalEngine
from changelake_producer import lambda_handler


@pytest.mark.e2e
def test_smoke_compares_through_the_privacy_policy_the_writers_apply() -> None:
    """Hashed and masked attributes: equal only when the Scan goes through the same policy."""
    from changelake.privacy import sample_policy

    policy_text = sample_policy("persons")
    with LocalStack(0, privacy_policy=policy_text) as local:
        privacy = local.privacy()
        assert privacy is not None
        assert privacy.covers("persons")
        local_outputs = smoke.StackOutputs("persons", "smoke-producer", "primary", "changelake")
        summary = smoke.run_smoke(
            "PrivacyStack",
            local_outputs,
            invoke=lambda _function, payload: lambda_handler.handler(dict(payload)),
            engine=LocalEngine("changelake"),
            ddb=aws.dynamodb(),
            count=20,
            timeout_s=90,
            poll_s=0.5,
            privacy=privacy,
            cleanup=False,
        )
        assert summary.equal, smoke.render(summary)
        # Without the policy the same lake differs on every item (clear vs hashed values).
        unredacted = compare(LocalEngine("changelake"), "persons", aws.dynamodb())
        assert len(unredacted.different) == 20
