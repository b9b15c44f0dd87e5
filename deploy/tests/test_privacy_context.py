"""The ``privacy_policy`` / ``privacy_key_secret`` context (README "Privacy", ADR 0027).

Set: the consumer and the transform get the policy and the key's secret in their environment,
and only their roles may read that one secret. Unset (the default stack): nothing of it.
"""

from __future__ import annotations

from changelake_deploy import contract
from test_stack import allowed, container, image_function, task_role

from conftest import PRIVACY_POLICY, PRIVACY_SECRET, Synth


def _transform_env(synth: Synth) -> dict[str, str]:
    _, function = image_function(synth, "Transform")
    return dict(function["Properties"]["Environment"]["Variables"])


def _consumer_env(synth: Synth) -> dict[str, str]:
    return {e["Name"]: e["Value"] for e in container(synth, "ConsumerTask")["Environment"]}


def test_privacy_context_reaches_consumer_and_transform_with_read_access_to_the_key(
    synth: Synth, other: Synth
) -> None:
    for env in (_consumer_env(other), _transform_env(other)):
        assert env["CHANGELAKE_PRIVACY_POLICY"] == PRIVACY_POLICY
        assert env["CHANGELAKE_PRIVACY_KEY_SECRET"] == PRIVACY_SECRET
    _, function = image_function(other, "Transform")
    transform_role = function["Properties"]["Role"]["Fn::GetAtt"][0]
    for role in (task_role(other, "ConsumerTask"), transform_role):
        assert allowed(other, role)["secretsmanager:GetSecretValue"] == [PRIVACY_SECRET]
    # No other service reads the key; the default stack has no policy at all.
    catalog = allowed(other, task_role(other, "CatalogTask"))
    assert "secretsmanager:GetSecretValue" not in catalog
    for env in (_consumer_env(synth), _transform_env(synth)):
        assert not set(contract.PRIVACY_ENVIRONMENT) & set(env)
    assert "secretsmanager:GetSecretValue" not in allowed(synth, task_role(synth, "ConsumerTask"))
