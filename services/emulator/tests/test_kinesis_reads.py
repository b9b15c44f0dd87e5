"""The emulator's indexed Kinesis shard reads return exactly what moto's own scan returns."""

from __future__ import annotations

import random

import pytest
from changelake_emulator import kinesis_reads
from moto.kinesis import models

pytestmark = pytest.mark.unit

ORIGINAL_GET_RECORDS = models.Shard.get_records
ORIGINAL_MIN = models.Shard.get_min_sequence_number
ORIGINAL_MAX = models.Shard.get_max_sequence_number


def _shard(sequences: list[int]) -> models.Shard:
    shard = models.Shard(0, 0, 2**128 - 1)
    for n, sequence in enumerate(sequences):
        record = models.Record(f"pk{n}", b"data", sequence, None)
        record.created_at = 1_000.0 + n * 0.25
        shard.records[sequence] = record
    return shard


def _as_tuple(result: tuple[list[models.Record], int, int]) -> tuple[list[int], int, int]:
    records, last, millis = result
    return [r.sequence_number for r in records], int(last), millis


def test_indexed_reads_equal_moto_for_every_position_and_limit() -> None:
    rng = random.Random(7)
    sequences = sorted(rng.sample(range(1, 10_000), 300))  # increasing, with gaps (resharding)
    shard = _shard(sequences)
    positions = [0, *rng.sample(sequences, 40), sequences[-1], sequences[-1] + 5]
    for position in positions:
        for limit in (None, 1, 7, 10_000):  # Kinesis' Limit is 1..10,000 (or absent)
            expected = _as_tuple(ORIGINAL_GET_RECORDS(shard, str(position), limit))
            actual = _as_tuple(kinesis_reads.get_records(shard, str(position), limit))
            assert actual == expected, (position, limit)
    assert kinesis_reads.get_min_sequence_number(shard) == ORIGINAL_MIN(shard) == sequences[0]
    assert kinesis_reads.get_max_sequence_number(shard) == ORIGINAL_MAX(shard) == sequences[-1]


def test_indexed_reads_follow_records_appended_between_reads() -> None:
    shard = _shard([1, 2, 3])
    assert _as_tuple(kinesis_reads.get_records(shard, "0", None))[0] == [1, 2, 3]

    for sequence in (8, 9, 15):
        record = models.Record("pk", b"d", sequence, None)
        shard.records[sequence] = record

    assert _as_tuple(kinesis_reads.get_records(shard, "2", 3)) == _as_tuple(
        ORIGINAL_GET_RECORDS(shard, "2", 3)
    )
    assert _as_tuple(kinesis_reads.get_records(shard, "9", None))[:2] == ([15], 15)
    assert kinesis_reads.get_max_sequence_number(shard) == 15


def test_empty_shard_reads_like_moto() -> None:
    shard = _shard([])

    assert _as_tuple(kinesis_reads.get_records(shard, "41", 10)) == ([], 41, 0)
    assert _as_tuple(ORIGINAL_GET_RECORDS(shard, "41", 10)) == ([], 41, 0)
    assert kinesis_reads.get_min_sequence_number(shard) == 0
    assert kinesis_reads.get_max_sequence_number(shard) == 0
