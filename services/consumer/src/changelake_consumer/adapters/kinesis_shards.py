"""Kinesis adapter of the local runner: list shards, open iterators, read pages of records."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError
from changelake.adapters import aws
from changelake.events import Position
from changelake.timeutil import datetime_to_us

from changelake_consumer.ports import IteratorExpiredError, Page, ShardInfo, ThrottledError

if TYPE_CHECKING:
    from mypy_boto3_kinesis import KinesisClient


class KinesisShardReader:
    """Reads one stream's shards through boto3 (endpoint from ``AWS_ENDPOINT_URL``)."""

    def __init__(self, stream_name: str, client: KinesisClient | None = None) -> None:
        self.stream_name = stream_name
        self._client = client or aws.kinesis()

    def list_shards(self) -> list[ShardInfo]:
        """Every shard of the stream, open and closed (paginated)."""
        shards: list[ShardInfo] = []
        kwargs: dict[str, Any] = {"StreamName": self.stream_name}
        while True:
            resp = self._client.list_shards(**kwargs)
            for shard in resp["Shards"]:
                parents = tuple(
                    p for p in (shard.get("ParentShardId"), shard.get("AdjacentParentShardId")) if p
                )
                ending = shard["SequenceNumberRange"].get("EndingSequenceNumber")
                shards.append(ShardInfo(shard["ShardId"], parents, ending))
            token = resp.get("NextToken")
            if not token:
                return shards
            kwargs = {"NextToken": token}

    def iterator(self, shard_id: str, after: str | None, initial_position: str) -> str:
        """An iterator just after ``after``, or at ``initial_position`` without a checkpoint."""
        if after is not None:
            resp = self._client.get_shard_iterator(
                StreamName=self.stream_name,
                ShardId=shard_id,
                ShardIteratorType="AFTER_SEQUENCE_NUMBER",
                StartingSequenceNumber=after,
            )
        else:
            resp = self._client.get_shard_iterator(
                StreamName=self.stream_name,
                ShardId=shard_id,
                ShardIteratorType=initial_position,  # type: ignore[arg-type]
            )
        return resp["ShardIterator"]

    def get_records(self, shard_id: str, iterator: str, limit: int) -> Page:
        """One GetRecords call; raises :class:`IteratorExpiredError` / :class:`ThrottledError`."""
        try:
            resp = self._client.get_records(ShardIterator=iterator, Limit=limit)
        except ClientError as exc:
            code = aws.error_code(exc)
            if code == "ExpiredIteratorException":
                raise IteratorExpiredError(str(exc)) from exc
            if code == "ProvisionedThroughputExceededException":
                raise ThrottledError(str(exc)) from exc
            raise
        records = [
            (
                bytes(r["Data"]),
                Position(
                    shard_id,
                    r["SequenceNumber"],
                    datetime_to_us(r["ApproximateArrivalTimestamp"])
                    if r.get("ApproximateArrivalTimestamp") is not None
                    else None,
                ),
            )
            for r in resp["Records"]
        ]
        return Page(records, resp.get("NextShardIterator"), int(resp.get("MillisBehindLatest", 0)))
