"""The KCL lease fence of the record processor (ADR 0043) on a moto DynamoDB over real HTTP."""

from __future__ import annotations

from typing import Any

import pytest
from changelake_consumer.adapters.kcl_lease import KclLeaseFence
from changelake_consumer.ports import LeaseLostError

pytestmark = pytest.mark.aws

SHARD = "shardId-000000000001"


def test_the_lease_owner_may_write_and_no_other_worker(kcl_lease_table: Any) -> None:
    kcl_lease_table.put(SHARD, leaseOwner="worker-a")
    KclLeaseFence(kcl_lease_table.name, SHARD, "worker-a")()
    with pytest.raises(LeaseLostError, match="held by 'worker-a', not 'worker-b'"):
        KclLeaseFence(kcl_lease_table.name, SHARD, "worker-b")()


def test_during_a_graceful_hand_off_the_checkpoint_owner_may_still_write(
    kcl_lease_table: Any,
) -> None:
    # KCL 3 hands a lease over gracefully: leaseOwner is already the next worker, the current one
    # (checkpointOwner) flushes and checkpoints first; the next one starts only after that
    kcl_lease_table.put(SHARD, leaseOwner="worker-b", checkpointOwner="worker-a")
    KclLeaseFence(kcl_lease_table.name, SHARD, "worker-a")()
    with pytest.raises(LeaseLostError):
        KclLeaseFence(kcl_lease_table.name, SHARD, "worker-b")()


def test_no_lease_or_no_owner_means_no_write(kcl_lease_table: Any) -> None:
    with pytest.raises(LeaseLostError, match="held by None"):
        KclLeaseFence(kcl_lease_table.name, SHARD, "worker-a")()
    kcl_lease_table.put(SHARD)  # a lease nobody holds
    with pytest.raises(LeaseLostError):
        KclLeaseFence(kcl_lease_table.name, SHARD, "worker-a")()
