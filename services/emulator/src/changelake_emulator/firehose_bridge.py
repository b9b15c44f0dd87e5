"""Kinesis → Firehose (with the transform Lambda) → S3: what moto's Firehose does not do.

moto's Firehose writes direct PUTs to S3 at once; it has no Kinesis source, no Lambda
processor, no dynamic partitioning. This bridge stands in for all three, faithfully to the
contract in docs/aws-behaviour.md:

* it reads the stream with its own iterators, one ``GetRecords`` per shard per poll interval
  (default 1 s, like Firehose), well inside the 5 calls/s per shard a consumer shares;
* it buffers by size and interval, then invokes the transform handler *in process* with the
  real event shape (``invocationId``, ``deliveryStreamArn``, ``sourceKinesisStreamArn``,
  ``region``, ``records[]`` with ``kinesisRecordMetadata``), retrying a raising handler three
  times like Firehose;
* ``Ok`` records are concatenated as returned and written under the prefix expression
  evaluated with the Lambda's ``metadata.partitionKeys``; ``Dropped`` records disappear;
  ``ProcessingFailed`` records and every contract violation (missing or duplicated recordId,
  bad result, response over 6 MB, handler error) go to the error output prefix as Firehose's
  JSON error records (``errorCode``, ``errorMessage``, ``rawData`` base64 of the *original*
  data, ``attemptsMade``, timestamps, ``lambdaArn``).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import logging
import multiprocessing
import os
import pickle
import re
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from changelake.timeutil import datetime_to_us

log = logging.getLogger(__name__)

Handler = Callable[[Mapping[str, Any], Any], Any]

LAMBDA_PAYLOAD_LIMIT = 6 * 1024 * 1024
# A Lambda processor takes at most 3 MB per invocation (BufferSizeInMBs 0.2..3).
INVOCATION_DATA_LIMIT = 3 * 1024 * 1024
GET_RECORDS_LIMIT = 10_000
HANDLER_RETRIES = 3

PROCESSING_FAILED = "processing-failed"
PARTITIONING_FAILED = "partitioning-failed"

_EXPR_RE = re.compile(r"!\{([A-Za-z]+):([^}]*)\}")
_JAVA_DATE_RE = re.compile(r"yyyy|MM|dd|HH|mm|ss")
_JAVA_TO_STRFTIME = {"yyyy": "%Y", "MM": "%m", "dd": "%d", "HH": "%H", "mm": "%M", "ss": "%S"}


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """One Kinesis record as Firehose buffered it."""

    record_id: str
    data: bytes
    arrival_ms: int
    shard_id: str
    sequence_number: str
    partition_key: str


@dataclass(frozen=True, slots=True)
class Delivered:
    """An ``Ok`` record: the bytes the Lambda returned and its partition keys."""

    source: SourceRecord
    data: bytes
    partition_keys: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Failed:
    """A record bound for the error output prefix."""

    source: SourceRecord
    error_code: str
    error_message: str
    output_type: str = PROCESSING_FAILED


class PrefixError(ValueError):
    """A prefix expression that cannot be evaluated for a record (missing partition key)."""


def evaluate_prefix(
    expression: str,
    *,
    now: datetime,
    partition_keys: Mapping[str, str] | None = None,
    error_output_type: str | None = None,
) -> str:
    """Evaluate a Firehose S3 prefix expression (``!{namespace:value}``) for one record."""

    def substitute(match: re.Match[str]) -> str:
        namespace, value = match[1], match[2]
        if namespace == "partitionKeyFromLambda":
            if partition_keys is None or value not in partition_keys:
                raise PrefixError(f"partition key {value!r} not supplied by the Lambda")
            return str(partition_keys[value])
        if namespace == "timestamp":
            fmt = _JAVA_DATE_RE.sub(lambda m: _JAVA_TO_STRFTIME[m[0]], value)
            return now.astimezone(UTC).strftime(fmt)
        if namespace == "firehose" and value == "error-output-type":
            if error_output_type is None:
                raise PrefixError("error-output-type outside the error prefix")
            return error_output_type
        if namespace == "firehose" and value == "random-string":
            return uuid.uuid4().hex[:11]
        raise PrefixError(f"unsupported prefix expression !{{{namespace}:{value}}}")

    return _EXPR_RE.sub(substitute, expression)


def object_name(delivery_stream: str, now: datetime) -> str:
    """Firehose's object name: ``<stream>-<version>-<YYYY-MM-DD-HH-MM-SS>-<random>``."""
    return f"{delivery_stream}-1-{now.astimezone(UTC):%Y-%m-%d-%H-%M-%S}-{uuid.uuid4()}"


def firehose_event(
    records: Sequence[SourceRecord],
    *,
    invocation_id: str,
    delivery_stream_arn: str,
    source_stream_arn: str,
    region: str,
) -> dict[str, Any]:
    """The transformation event exactly as Firehose sends it for a Kinesis source."""
    return {
        "invocationId": invocation_id,
        "sourceKinesisStreamArn": source_stream_arn,
        "deliveryStreamArn": delivery_stream_arn,
        "region": region,
        "records": [
            {
                "recordId": r.record_id,
                "approximateArrivalTimestamp": r.arrival_ms,
                "data": base64.b64encode(r.data).decode("ascii"),
                "kinesisRecordMetadata": {
                    "sequenceNumber": r.sequence_number,
                    "subsequenceNumber": 0,
                    "partitionKey": r.partition_key,
                    "shardId": r.shard_id,
                    "approximateArrivalTimestamp": r.arrival_ms,
                },
            }
            for r in records
        ],
    }


def interpret_response(
    batch: Sequence[SourceRecord], response: Any
) -> tuple[list[Delivered], list[Failed]]:
    """Apply Firehose's rules to a handler response: who is delivered, who fails and why."""
    try:
        size = len(orjson.dumps(response))
    except TypeError as exc:
        return [], [Failed(r, "Lambda.JsonProcessingException", str(exc)) for r in batch]
    if size > LAMBDA_PAYLOAD_LIMIT:
        message = f"The Lambda response is {size} bytes, over the 6 MB limit."
        return [], [Failed(r, "Lambda.ResponseSizeExceeded", message) for r in batch]
    out = response.get("records") if isinstance(response, Mapping) else None
    if not isinstance(out, list):
        message = "The Lambda response has no records array."
        return [], [Failed(r, "Lambda.InvalidReturnFormat", message) for r in batch]
    by_id: dict[str, list[Any]] = defaultdict(list)
    for entry in out:
        if isinstance(entry, Mapping) and isinstance(entry.get("recordId"), str):
            by_id[entry["recordId"]].append(entry)
    delivered: list[Delivered] = []
    failed: list[Failed] = []
    for record in batch:
        entries = by_id.get(record.record_id, [])
        if not entries:
            failed.append(
                Failed(record, "Lambda.MissingRecordId", "The record was not returned by Lambda.")
            )
            continue
        if len(entries) > 1:
            failed.append(
                Failed(record, "Lambda.DuplicatedRecordId", "The recordId was returned twice.")
            )
            continue
        outcome = _one_outcome(record, entries[0])
        if isinstance(outcome, Delivered):
            delivered.append(outcome)
        elif isinstance(outcome, Failed):
            failed.append(outcome)
    return delivered, failed


def _one_outcome(record: SourceRecord, entry: Mapping[str, Any]) -> Delivered | Failed | None:
    result = entry.get("result")
    if result == "Dropped":
        return None
    if result == "ProcessingFailed":
        return Failed(
            record, "Lambda.ProcessingFailedStatus", "ProcessingFailed status set for record"
        )
    if result != "Ok":
        return Failed(
            record,
            "Lambda.InvalidReturnFormat",
            "The result field must be one of Ok, Dropped or ProcessingFailed.",
        )
    try:
        data = base64.b64decode(entry.get("data", ""), validate=True)
    except (binascii.Error, ValueError, TypeError):
        return Failed(record, "Lambda.InvalidReturnFormat", "The data field is not base64.")
    metadata = entry.get("metadata") or {}
    keys = metadata.get("partitionKeys") if isinstance(metadata, Mapping) else None
    return Delivered(record, data, dict(keys) if isinstance(keys, Mapping) else {})


class _LambdaLogReasons(logging.Handler):
    """The reasons the transform logged per recordId during one invocation.

    On AWS a ProcessingFailed record's error line has Firehose's fixed ``errorMessage`` and the
    reason is only in the Lambda's CloudWatch log (one ``record ProcessingFailed`` line with
    ``recordId`` and ``reason`` per record). The emulator runs the Lambda in-process, so it
    reads that log and appends the reason to the error line's message: what an operator would
    otherwise join by hand (docs/adr/0019).
    """

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.by_id: dict[str, str] = {}

    def emit(self, record: logging.LogRecord) -> None:
        record_id, reason = getattr(record, "recordId", None), getattr(record, "reason", None)
        if isinstance(record_id, str) and isinstance(reason, str):
            self.by_id[record_id] = reason

    def __enter__(self) -> _LambdaLogReasons:
        logging.getLogger().addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger().removeHandler(self)


def annotate(failed: Failed, reasons: Mapping[str, str]) -> Failed:
    """A ProcessingFailed record's error message with the reason the Lambda logged for it."""
    reason = reasons.get(failed.source.record_id)
    if reason is None or failed.error_code != "Lambda.ProcessingFailedStatus":
        return failed
    return dataclasses.replace(failed, error_message=f"{failed.error_message}: {reason}")


def run_transform(
    handler: Handler, event: Mapping[str, Any], context: Any
) -> tuple[Any, dict[str, str]]:
    """One invocation: the handler's response and the reasons it logged per recordId.

    Module-level so a process pool can run it (``transform_process``, ADR 0047).
    """
    with _LambdaLogReasons() as reasons:
        response = handler(event, context)
    return response, reasons.by_id


def _run_in_environment(
    environment: Mapping[str, str], handler: Handler, event: Mapping[str, Any], context: Any
) -> tuple[Any, dict[str, str]]:
    """:func:`run_transform` in a worker process, under the caller's environment of the moment
    (the transform reads its settings and privacy policy from there)."""
    if os.environ != environment:
        os.environ.clear()
        os.environ.update(environment)
    response, reasons = run_transform(handler, event, context)
    try:  # one bytes object crosses the pipe: cheaper to load than to unpickle the dicts
        return _JsonResponse(orjson.dumps(response)), reasons
    except TypeError:  # not JSON: as it is (interpret_response judges it)
        return response, reasons


@dataclass(frozen=True, slots=True)
class _JsonResponse:
    """A handler response the worker wrote as JSON."""

    body: bytes


def _warm_up() -> None:
    """Nothing: the first task a new transform process runs, so it is ready when needed."""


class TransformProcess:
    """The transform Lambda in its own process, like Lambda's own sandbox (ADR 0047).

    In the emulator's process the transform took 15 % of its GIL time at 1,560 changes/s:
    time the moto server could not serve DynamoDB, Kinesis or S3. One spawned worker (no fork:
    the emulator's process has threads and locks) runs :func:`run_transform`; the handler must
    be picklable (a module-level function). Each invocation carries this process' environment,
    so the handler sees what it would see in process. If the worker dies, the invocation
    raises (a function error, which Firehose retries) and the next one gets a new worker.
    """

    def __init__(self, handler: Handler) -> None:
        try:
            pickle.dumps(handler)
        except Exception as exc:
            raise ValueError(
                f"transform_process needs a picklable (module-level) handler: {exc}"
            ) from exc
        self._handler = handler
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None

    def _executor(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                context = multiprocessing.get_context("spawn")
                self._pool = ProcessPoolExecutor(max_workers=1, mp_context=context)
            return self._pool

    def start(self) -> None:
        """Start the worker now (its interpreter and imports), without waiting for it."""
        self._executor().submit(_warm_up)

    def __call__(self, event: Mapping[str, Any], context: Any) -> tuple[Any, dict[str, str]]:
        pool = self._executor()
        try:
            environment = dict(os.environ)
            task = pool.submit(_run_in_environment, environment, self._handler, event, context)
            response, reasons = task.result()
        except BrokenProcessPool:
            with self._lock:
                if self._pool is pool:
                    self._pool = None
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        if isinstance(response, _JsonResponse):
            response = orjson.loads(response.body)
        return response, reasons

    def stop(self) -> None:
        """Stop the worker (after its current invocation); idempotent."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def error_line(failed: Failed, *, attempts: int, ending_ms: int, lambda_arn: str) -> bytes:
    """One Firehose error record (processing-failed format), newline-terminated."""
    doc = {
        "attemptsMade": attempts,
        "arrivalTimestamp": failed.source.arrival_ms,
        "errorCode": failed.error_code,
        "errorMessage": failed.error_message,
        "attemptEndingTimestamp": ending_ms,
        "rawData": base64.b64encode(failed.source.data).decode("ascii"),
        "lambdaArn": lambda_arn,
    }
    return orjson.dumps(doc) + b"\n"


@dataclass(slots=True)
class _Context:
    """The bits of a Lambda context object a handler may touch."""

    function_name: str
    aws_request_id: str
    invoked_function_arn: str

    def get_remaining_time_in_millis(self) -> int:
        """Firehose gives its processor Lambda up to 5 minutes; report a generous budget."""
        return 300_000


class FirehoseBridge:
    """Background thread: Kinesis stream → transform handler → S3 raw and error prefixes."""

    name = "firehose"

    def __init__(
        self,
        *,
        kinesis: Any,
        s3: Any,
        handler: Handler,
        stream_name: str,
        delivery_stream: str,
        bucket: str,
        region: str,
        prefix: str,
        error_prefix: str,
        lambda_arn: str,
        buffer_seconds: float = 1.0,
        buffer_mb: float = 1.0,
        poll_seconds: float = 1.0,
        transform_process: bool = False,
    ) -> None:
        self._kinesis, self._s3, self._handler = kinesis, s3, handler
        # transform_process: the handler runs in a process of its own (TransformProcess).
        self._transform_process = TransformProcess(handler) if transform_process else None
        self.stream_name, self.delivery_stream, self.bucket = stream_name, delivery_stream, bucket
        self.region, self.prefix, self.error_prefix = region, prefix, error_prefix
        self.lambda_arn = lambda_arn
        self.buffer_seconds, self.buffer_bytes = buffer_seconds, int(buffer_mb * 1024 * 1024)
        self.poll_seconds = poll_seconds
        self._iterators: dict[str, str | None] = {}
        self._shard_index: dict[str, int] = {}
        self._buffer: list[SourceRecord] = []
        self._buffered_bytes = 0
        self._buffer_since: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._stream_arn = ""
        self._delivery_arn = (
            f"arn:aws:firehose:{region}:{lambda_arn.split(':')[4]}:deliverystream/{delivery_stream}"
        )
        self.get_records_calls = 0
        self.records_read = 0
        self.records_ok = 0
        self.records_failed = 0
        self.records_dropped = 0
        self.invocations = 0
        self.objects_written = 0
        self.errors = 0

    def start(self) -> None:
        """Take LATEST iterators on every open shard now, then poll in a thread."""
        summary = self._kinesis.describe_stream_summary(StreamName=self.stream_name)
        self._stream_arn = summary["StreamDescriptionSummary"]["StreamARN"]
        self._discover_shards("LATEST")
        if self._transform_process is not None:
            self._transform_process.start()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Poll once more, deliver everything buffered, stop the thread; idempotent."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
            self._thread = None
        if self._transform_process is not None:
            self._transform_process.stop()

    def _discover_shards(self, iterator_type: str) -> None:
        shards = self._kinesis.list_shards(StreamName=self.stream_name)["Shards"]
        for shard in shards:
            shard_id = shard["ShardId"]
            if shard_id in self._iterators:
                continue
            self._shard_index[shard_id] = len(self._shard_index)
            self._iterators[shard_id] = self._kinesis.get_shard_iterator(
                StreamName=self.stream_name, ShardId=shard_id, ShardIteratorType=iterator_type
            )["ShardIterator"]

    def _run(self) -> None:
        while True:
            stopping = self._stop.is_set()
            started = time.monotonic()
            try:
                self._poll_all()
                if stopping or self._due():
                    self._flush()
            except Exception:  # the bridge keeps running, like the managed service would
                self.errors += 1
                log.exception("firehose bridge cycle failed")
            if stopping:
                return
            self._stop.wait(max(0.0, self.poll_seconds - (time.monotonic() - started)))

    def _poll_all(self) -> None:
        for shard_id, iterator in list(self._iterators.items()):
            if iterator is None:
                continue
            resp = self._kinesis.get_records(ShardIterator=iterator, Limit=GET_RECORDS_LIMIT)
            self.get_records_calls += 1
            self._iterators[shard_id] = resp.get("NextShardIterator")
            for rec in resp.get("Records", []):
                self._buffer_record(shard_id, rec)
        if any(it is None for it in self._iterators.values()):
            self._discover_shards("TRIM_HORIZON")  # a closed shard: follow its children

    def _buffer_record(self, shard_id: str, rec: Mapping[str, Any]) -> None:
        seq = str(rec["SequenceNumber"])
        arrival = rec.get("ApproximateArrivalTimestamp")
        if isinstance(arrival, datetime):  # boto3's parsed answer
            arrival_ms = datetime_to_us(arrival) // 1000
        elif isinstance(arrival, int | float):  # the wire's epoch seconds (in-process reads)
            arrival_ms = round(arrival * 1000)
        else:
            arrival_ms = int(time.time() * 1000)
        raw = rec["Data"]
        # boto3 gives bytes; in-process reads give the base64 text of the wire (ADR 0047).
        data = base64.b64decode(raw) if isinstance(raw, str) else bytes(raw)
        source = SourceRecord(
            record_id=f"{seq}{self._shard_index[shard_id]:06d}000000",
            data=data,
            arrival_ms=arrival_ms,
            shard_id=shard_id,
            sequence_number=seq,
            partition_key=str(rec.get("PartitionKey", "")),
        )
        with self._lock:
            if self._buffer_since is None:
                self._buffer_since = time.monotonic()
            self._buffer.append(source)
            self._buffered_bytes += len(data)
            self.records_read += 1

    def _due(self) -> bool:
        with self._lock:
            if not self._buffer:
                return False
            assert self._buffer_since is not None
            return (
                self._buffered_bytes >= self.buffer_bytes
                or time.monotonic() - self._buffer_since >= self.buffer_seconds
            )

    def _flush(self) -> None:
        with self._lock:
            batch, self._buffer = self._buffer, []
            self._buffered_bytes, self._buffer_since = 0, None
        if not batch:
            return
        delivered: list[Delivered] = []
        failed: list[tuple[Failed, int]] = []
        for chunk in _chunks(batch, INVOCATION_DATA_LIMIT):
            ok, bad, attempts = self._invoke(chunk)
            delivered.extend(ok)
            failed.extend((f, attempts) for f in bad)
        self._write(delivered, failed)

    def _invoke(self, chunk: list[SourceRecord]) -> tuple[list[Delivered], list[Failed], int]:
        invocation_id = str(uuid.uuid4())
        event = firehose_event(
            chunk,
            invocation_id=invocation_id,
            delivery_stream_arn=self._delivery_arn,
            source_stream_arn=self._stream_arn,
            region=self.region,
        )
        context = _Context("changelake-transform", invocation_id, self.lambda_arn)
        last_error = ""
        for attempt in range(1, HANDLER_RETRIES + 2):
            self.invocations += 1
            try:
                if self._transform_process is not None:
                    response, reasons = self._transform_process(event, context)
                else:
                    response, reasons = run_transform(self._handler, event, context)
            except Exception as exc:  # a function error: Firehose retries the invocation
                last_error = f"{type(exc).__name__}: {exc}"
                log.warning(
                    "transform handler failed", extra={"attempt": attempt, "error": last_error}
                )
                continue
            ok, bad = interpret_response(chunk, response)
            bad = [annotate(f, reasons) for f in bad]
            self.records_dropped += len(chunk) - len(ok) - len(bad)
            return ok, bad, attempt
        message = f"The Lambda function returned an error: {last_error}"
        return [], [Failed(r, "Lambda.FunctionError", message) for r in chunk], HANDLER_RETRIES + 1

    def _write(self, delivered: list[Delivered], failed: list[tuple[Failed, int]]) -> None:
        now = datetime.now(UTC)
        groups: dict[str, list[bytes]] = defaultdict(list)
        ok = 0
        for d in delivered:
            try:
                prefix = evaluate_prefix(self.prefix, now=now, partition_keys=d.partition_keys)
            except PrefixError as exc:
                failed.append(
                    (
                        Failed(
                            d.source,
                            "DynamicPartitioning.MetadataExtractionFailed",
                            str(exc),
                            PARTITIONING_FAILED,
                        ),
                        1,
                    )
                )
                continue
            groups[prefix].append(d.data)
            ok += 1
        ending_ms = datetime_to_us(now) // 1000
        for f, attempts in failed:
            prefix = evaluate_prefix(self.error_prefix, now=now, error_output_type=f.output_type)
            groups[prefix].append(
                error_line(f, attempts=attempts, ending_ms=ending_ms, lambda_arn=self.lambda_arn)
            )
        for prefix, parts in groups.items():
            key = prefix + object_name(self.delivery_stream, now)
            self._s3.put_object(Bucket=self.bucket, Key=key, Body=b"".join(parts))
            self.objects_written += 1
        self.records_ok += ok
        self.records_failed += len(failed)


def _chunks(batch: list[SourceRecord], limit: int) -> list[list[SourceRecord]]:
    chunks: list[list[SourceRecord]] = [[]]
    size = 0
    for record in batch:
        if chunks[-1] and size + len(record.data) > limit:
            chunks.append([])
            size = 0
        chunks[-1].append(record)
        size += len(record.data)
    return chunks
