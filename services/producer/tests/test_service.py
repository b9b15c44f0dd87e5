"""The produce loop against an in-memory writer: counts, batching, ordering, pacing."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
import pytest
from changelake_producer.generator import Mix, Operation
from changelake_producer.service import TableMissingError, produce

pytestmark = pytest.mark.unit


class FakeWriter:
    """Applies operations to a dict and records the calls."""

    def __init__(self, missing: bool = False) -> None:
        self.items: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, list[Operation]]] = []
        self.missing = missing

    def check(self) -> None:
        if self.missing:
            raise TableMissingError("no table")

    def write_batch(self, operations: Sequence[Operation]) -> None:
        assert 1 <= len(operations) <= 25
        assert len({op.pk for op in operations}) == len(operations)
        self.calls.append(("batch", list(operations)))
        for op in operations:
            if op.kind == "insert":
                self.items[op.pk] = dict(op.item or {})
            else:
                del self.items[op.pk]

    def update(self, operation: Operation) -> None:
        assert operation.pk in self.items
        self.calls.append(("update", [operation]))
        self.items[operation.pk].update(operation.changes or {})


class FakeClock:
    """A clock that only moves when slept."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept += seconds
        self.now += seconds


def test_produce_writes_exactly_count_changes_when_count_given() -> None:
    writer = FakeWriter()
    summary = produce(writer, count=300, mix=Mix(0.5, 0.3, 0.2), seed=4, keep_operations=True)
    assert summary.total == 300
    assert sum(len(ops) for _, ops in writer.calls) == 300
    assert (summary.inserts, summary.updates, summary.deletes) == (
        sum(op.kind == "insert" for op in summary.operations),
        sum(op.kind == "update" for op in summary.operations),
        sum(op.kind == "delete" for op in summary.operations),
    )
    # The table ends exactly as the generator believes: live pks and their images.
    assert sorted(writer.items) == summary.live_pks
    last = {op.pk: op for op in summary.operations}
    for pk, item in writer.items.items():
        assert item == last[pk].item


def test_produce_keeps_generation_order_when_writing() -> None:
    writer = FakeWriter()
    summary = produce(writer, count=200, seed=9, keep_operations=True)
    written = [op for _, ops in writer.calls for op in ops]
    assert written == summary.operations


def test_produce_paces_to_rate_when_rate_given() -> None:
    clock = FakeClock()
    summary = produce(FakeWriter(), count=100, rate=50, seed=1, clock=clock, sleep=clock.sleep)
    # 100 changes at 50/s: the last batch starts near 2 s; the clock only moved by sleeping.
    assert 1.7 <= clock.slept <= 2.0
    assert summary.elapsed_s == pytest.approx(clock.slept)


def test_produce_stops_after_duration_when_duration_given() -> None:
    clock = FakeClock()
    summary = produce(FakeWriter(), duration=1.0, rate=20, seed=1, clock=clock, sleep=clock.sleep)
    assert summary.total == 20


def test_produce_uses_small_batches_when_rate_is_low() -> None:
    writer = FakeWriter()
    clock = FakeClock()
    produce(writer, count=20, rate=10, mix=Mix(1, 0, 0), seed=1, clock=clock, sleep=clock.sleep)
    assert all(len(ops) <= 2 for _, ops in writer.calls)


def test_produce_raises_table_missing_when_writer_says_so() -> None:
    with pytest.raises(TableMissingError):
        produce(FakeWriter(missing=True), count=1)


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"count": -1}, {"count": 1, "rate": 0}, {"count": 1, "batch_size": 26}],
)
def test_produce_rejects_bad_arguments(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"count|rate|batch_size|duration"):
        produce(FakeWriter(), **kwargs)


def test_summary_to_dict_lists_live_pks() -> None:
    summary = produce(FakeWriter(), count=10, mix=Mix(1, 0, 0), seed=2)
    out = summary.to_dict()
    assert out["total"] == 10
    assert out["live"] == 10
    assert out["live_pks"] == summary.live_pks
    assert "live_pks" not in summary.to_dict(with_pks=False)


def test_rich_progress_draws_on_the_given_console_when_producing() -> None:
    import io

    from changelake_producer.progress import RichProgress
    from rich.console import Console

    buffer = io.StringIO()
    bar = RichProgress(console=Console(file=buffer, force_terminal=False, width=100))
    produce(FakeWriter(), count=30, seed=1, progress=bar)
    assert "30/30" in buffer.getvalue()


def test_log_progress_logs_start_periodic_figures_and_end(caplog: pytest.LogCaptureFixture) -> None:
    """A container's log shows the run: a start line, figures every interval, a final line."""
    import logging

    from changelake_producer.progress import LogProgress

    now = [100.0]
    progress = LogProgress(interval_s=10.0, clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="changelake_producer"):
        progress.start(None)
        for _ in range(25):  # 25 batches of 4 changes, one every 1.0 s
            now[0] += 1.0
            progress.advance(4)
        progress.stop()
    records = [r for r in caplog.records if r.name == "changelake_producer"]
    assert [r.getMessage() for r in records] == [
        "producing",
        "produced so far",
        "produced so far",
        "produced",
    ]
    first, second, last = records[1], records[2], records[3]
    assert (first.written, first.elapsed_s, first.changes_per_s) == (40, 10.0, 4.0)  # type: ignore[attr-defined]
    assert (second.written, second.elapsed_s) == (80, 20.0)  # type: ignore[attr-defined]
    assert (last.written, last.total, last.elapsed_s) == (100, None, 25.0)  # type: ignore[attr-defined]


def test_producer_task_logs_progress_while_writing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`python -m changelake_producer` passes log progress to the run (the container's log)."""
    import changelake_producer.__main__ as task
    from changelake_producer.progress import LogProgress
    from changelake_producer.service import ProduceSummary

    seen: dict[str, Any] = {}

    def fake_produce(tables: list[str], **kwargs: object) -> dict[str, ProduceSummary]:
        seen.update(kwargs, tables=tables)
        return {t: produce(FakeWriter(), count=3, seed=1) for t in tables}

    monkeypatch.setattr(task, "produce_tables", fake_produce)
    monkeypatch.setenv("CHANGELAKE_PRODUCER_COUNT", "3")
    monkeypatch.setenv("CHANGELAKE_TABLES", "persons,orders")
    assert task.main() == 0
    assert seen["tables"] == ("persons", "orders")
    assert isinstance(seen["progress"]("orders"), LogProgress)
    lines = [orjson.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(line["table"], line["total"]) for line in lines] == [("persons", 3), ("orders", 3)]


def test_producer_task_exits_0_on_sigterm(tmp_path: Any) -> None:
    """SIGTERM (ECS stop-task, `docker stop`) ends the run at once with exit code 0."""
    import os
    import signal
    import socket
    import subprocess
    import sys

    # An endpoint that accepts the connection and never answers: the producer is then inside
    # its first request (its handler installed) when the signal comes.
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.settimeout(60)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CHANGELAKE_", "AWS_"))}
        env.update(
            CHANGELAKE_PRODUCER_DURATION_S="600",
            AWS_ENDPOINT_URL=f"http://127.0.0.1:{server.getsockname()[1]}",
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
        )
        proc = subprocess.Popen(
            [sys.executable, "-m", "changelake_producer"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        connection, _ = server.accept()
        with connection:
            proc.send_signal(signal.SIGTERM)
            _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "stopped by a signal" in err
