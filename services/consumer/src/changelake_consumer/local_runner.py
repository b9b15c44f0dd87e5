"""The local shard runner: every shard of the stream, read over boto3 with the same core.

Used by ``changelake consumer run`` (default runner), ``changelake local up`` and the demo.
One coordinator thread lists the shards every ``shard_sync_s`` and starts one worker thread per
shard whose parents are finished (resharding: a parent is read to its end, flushed,
checkpointed and marked finished before any child starts — the KCL rule). Each worker polls at
most ``get_records_per_s`` times a second (Kinesis allows 5 reads/s per shard and Firehose, which
reads the same stream, uses about one), checkpoints in DynamoDB only what the core says is durable,
resumes from the checkpoint after a restart, and reports its lag (``MillisBehindLatest``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from functools import partial

from changelake.ports import CheckpointStore, Metrics, ObjectStore
from changelake.privacy import PrivacyPolicy

from changelake_consumer.ports import (
    IteratorExpiredError,
    LeaseItem,
    LeaseLostError,
    Page,
    ShardInfo,
    ShardLeases,
    ShardReader,
    ThrottledError,
)
from changelake_consumer.service import BatchPolicy, ShardProcessor
from changelake_consumer.settings import ConsumerSettings

log = logging.getLogger(__name__)

_MAX_THROTTLE_BACKOFF_S = 5.0


def quota(shards: int, workers: list[str], me: str) -> int:
    """How many of ``shards`` ready shards runner ``me`` should own among live ``workers``.

    Every runner computes the same split from the same set of live runners: the first
    ``shards % len(workers)`` runners by id own one more. The quotas add up to ``shards``.
    """
    ranked = sorted(set(workers) | {me})
    base, extra = divmod(shards, len(ranked))
    return base + (1 if ranked.index(me) < extra else 0)


class LocalConsumer:
    """A :class:`changelake_cli.services.BackgroundService` running every shard in threads."""

    name = "consumer"

    def __init__(
        self,
        settings: ConsumerSettings,
        reader: ShardReader,
        checkpoints: CheckpointStore,
        store: ObjectStore,
        metrics: Metrics,
        *,
        ensure_checkpoints: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        leases: ShardLeases | None = None,
        privacy: PrivacyPolicy | None = None,
    ) -> None:
        self.settings = settings
        self._privacy = privacy
        self._reader = reader
        self._checkpoints = checkpoints
        self._store = store
        self._metrics = metrics
        self._ensure = ensure_checkpoints
        self._clock = clock
        self._policy = BatchPolicy.from_settings(settings)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._coordinator: threading.Thread | None = None
        self._workers: dict[str, threading.Thread] = {}
        self._finished: set[str] = set()
        self._finished_end: dict[str, str | None] = {}
        self._beyond_reported: set[tuple[str, str]] = set()
        self._leases = leases
        self._seen: dict[tuple[bool, str], tuple[tuple[str | None, int], float]] = {}
        self._surplus: set[str] = set()
        self._closed: dict[str, ShardInfo] = {}
        self._lag: dict[str, int] = {}
        self.failure: BaseException | None = None
        self.history: list[tuple[str, str]] = []
        """("start"|"end", shard id) in the order they happened (resharding order, tests)."""

    # -- BackgroundService ---------------------------------------------------------------

    def start(self) -> None:
        """Create the checkpoint table if needed and start the coordinator thread."""
        if self._coordinator is not None:
            return
        if self._ensure is not None:
            self._ensure()
        self._coordinator = threading.Thread(
            target=self._coordinate, name="consumer-coordinator", daemon=True
        )
        self._coordinator.start()
        log.info(
            "consumer started",
            extra={"stream": self.settings.stream_name, "bucket": self.settings.lake_bucket},
        )

    def stop(self) -> None:
        """Stop every worker; each flushes its buffers and checkpoints before it exits."""
        self._stop.set()
        if self._coordinator is not None:
            self._coordinator.join(timeout=120)
        for thread in list(self._workers.values()):
            thread.join(timeout=120)
        if self._leases is not None:
            self._leases.retire()
        self._metrics.flush()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the runner stops (failure or :meth:`stop`); True if it stopped."""
        return self._stop.wait(timeout)

    @property
    def lag_ms(self) -> int:
        """Largest ``MillisBehindLatest`` over the shards being read (0 when idle)."""
        with self._lock:
            return max(self._lag.values(), default=0)

    # -- coordination --------------------------------------------------------------------

    def _coordinate(self) -> None:
        last_metrics = self._clock()
        try:
            while not self._stop.is_set():
                self._sync_shards()
                if self._clock() - last_metrics >= self.settings.metrics_flush_s:
                    self._metrics.flush()
                    last_metrics = self._clock()
                self._stop.wait(self._sync_interval())
        except Exception as exc:  # a broken coordinator must stop the whole consumer
            self._fail(exc)

    def _sync_interval(self) -> float:
        """Seconds between shard syncs; with leases, often enough for the heartbeat to show."""
        if self._leases is None:
            return self.settings.shard_sync_s
        return min(self.settings.shard_sync_s, self.settings.lease_timeout_s / 3)

    def _sync_shards(self) -> None:
        shards = self._reader.list_shards()
        listed = {s.shard_id for s in shards}
        with self._lock:
            for shard in shards:
                if shard.closed:
                    self._closed[shard.shard_id] = shard
        if self._leases is not None:
            self._sync_leased(self._leases, shards, listed)
            return
        for shard in shards:
            sid = shard.shard_id
            with self._lock:
                finished = sid in self._finished
                if sid in self._workers and not finished:
                    continue
            if not finished and self._checkpoints.is_finished(sid):
                end = self._checkpoints.finished_end(sid)
                with self._lock:
                    self._finished.add(sid)
                    self._finished_end[sid] = end
                finished = True
            if finished:
                self._check_end(shard)
                continue
            with self._lock:
                # Parents first (KCL's rule): a parent that is no longer listed has aged out.
                ready = all(p not in listed or p in self._finished for p in shard.parent_ids)
                if not ready or self._stop.is_set():
                    continue
                thread = self._start_worker(shard)
            thread.start()

    def _start_worker(self, shard: ShardInfo) -> threading.Thread:
        """Register a worker thread for the shard (under the lock); the caller starts it."""
        sid = shard.shard_id
        thread = threading.Thread(
            target=self._run_shard, args=(shard,), name=f"consumer-{sid}", daemon=True
        )
        self._workers[sid] = thread
        self.history.append(("start", sid))
        return thread

    def _sync_leased(self, leases: ShardLeases, shards: list[ShardInfo], listed: set[str]) -> None:
        """Own this runner's share of the ready shards (ADR 0017).

        Ready shards are the unfinished ones whose parents are finished. Each runner owns
        :func:`quota` of them among the live runners (heartbeat moved within the lease
        timeout); a runner over its quota releases the surplus after a final checkpoint, one
        under it takes free leases, and leases whose counter stood still for the lease timeout
        (a runner killed or stuck) with a conditional write on the counter it saw.
        """
        me = leases.worker_id or ""
        timeout = self.settings.lease_timeout_s
        leases.heartbeat()
        items = leases.scan()
        now = self._clock()
        live = [me]
        by_shard: dict[str, LeaseItem] = {}
        for item in items:
            key = (item.is_worker, item.shard_id)
            state = (item.owner, item.counter)
            seen = self._seen.get(key)
            if seen is None or seen[0] != state:
                self._seen[key] = seen = (state, now)
            fresh = now - seen[1] < timeout
            if item.is_worker:
                if fresh and item.shard_id != me:
                    live.append(item.shard_id)
                continue
            by_shard[item.shard_id] = item
            if item.finished:
                with self._lock:
                    if item.shard_id not in self._finished:
                        self._finished.add(item.shard_id)
                        self._finished_end[item.shard_id] = item.ending_sequence
        for shard in shards:
            if shard.shard_id in self._finished:
                self._check_end(shard)
        with self._lock:
            ready = [
                s
                for s in shards
                if s.shard_id not in self._finished
                and all(p not in listed or p in self._finished for p in s.parent_ids)
            ]
            mine = sorted(sid for sid in self._workers if sid not in self._finished)
        share = quota(len(ready), live, me)
        if len(mine) > share:
            with self._lock:
                self._surplus.update(mine[share:])
            return
        for shard in sorted(ready, key=lambda s: s.shard_id):
            if len(mine) >= share or self._stop.is_set():
                return
            sid = shard.shard_id
            with self._lock:
                if sid in self._workers:
                    continue
            lease = by_shard.get(sid)
            if lease is None or lease.owner is None:
                taken = leases.acquire(sid, None)
            elif lease.owner != me and now - self._seen[(False, sid)][1] >= timeout:
                log.warning(
                    "taking over an expired lease",
                    extra={"shard_id": sid, "previous_owner": lease.owner},
                )
                taken = leases.acquire(sid, lease)
            else:
                continue
            if taken:
                mine.append(sid)
                with self._lock:
                    thread = self._start_worker(shard)
                thread.start()

    def _check_end(self, shard: ShardInfo) -> None:
        """Loudly report records beyond the end a finished shard had when it finished.

        A closed shard's ending sequence number never moves in Kinesis; if it did, records
        were written to the shard after this consumer read it to its end, and nobody will
        read them (issue 18: moto routed writes to split parents). Error + metric, once per
        new end.
        """
        sid, ending = shard.shard_id, shard.ending_sequence
        with self._lock:
            recorded = self._finished_end.get(sid)
            if ending is None or recorded is None or int(ending) <= int(recorded):
                return
            if (sid, ending) in self._beyond_reported:
                return
            self._beyond_reported.add((sid, ending))
        log.error(
            "records beyond a finished shard's end: they were never read",
            extra={"shard_id": sid, "recorded_end": recorded, "ending_sequence": ending},
        )
        self._metrics.count("records_beyond_shard_end", 1, {"shard": sid})

    def _fail(self, exc: BaseException) -> None:
        log.error("consumer failed", exc_info=exc)
        with self._lock:
            if self.failure is None:
                self.failure = exc
        self._stop.set()

    # -- one shard -----------------------------------------------------------------------

    def _run_shard(self, shard: ShardInfo) -> None:
        sid = shard.shard_id
        # Children of a reshard start at their beginning so nothing between parent end and
        # child start is skipped; shards without a checkpoint start where the settings say.
        initial = "TRIM_HORIZON" if shard.parent_ids else self.settings.initial_position
        interval = 1.0 / self.settings.get_records_per_s
        throttle_backoff = interval
        renew_every = self.settings.lease_timeout_s / 3
        renewed = self._clock()
        processor: ShardProcessor | None = None
        try:
            saved = self._checkpoints.load(sid)
            processor = ShardProcessor(
                sid,
                self._store,
                self._metrics,
                self._policy,
                privacy=self._privacy,
                start_after=saved,
                # Write fencing (ADR 0043): renewing the lease right before a PUT proves this
                # runner still owns the shard and gives the PUT a whole lease timeout.
                fence=None if self._leases is None else partial(self._leases.renew, sid),
                clock=self._clock,
            )
            iterator: str | None = self._reader.iterator(sid, saved, initial)
            while not self._stop.is_set() and iterator is not None and not self._released(sid):
                started = self._clock()
                if self._leases is not None and started - renewed >= renew_every:
                    self._leases.renew(sid)
                    renewed = started
                try:
                    page = self._reader.get_records(sid, iterator, self.settings.get_records_limit)
                except IteratorExpiredError:
                    iterator = self._reader.iterator(sid, processor.last_sequence, initial)
                    continue
                except ThrottledError:
                    self._metrics.count("read_throttled", 1)
                    self._stop.wait(throttle_backoff)
                    throttle_backoff = min(throttle_backoff * 2, _MAX_THROTTLE_BACKOFF_S)
                    continue
                throttle_backoff = interval
                checkpoint = processor.process(page.records)
                if checkpoint is not None and checkpoint != saved:
                    self._checkpoints.save(sid, checkpoint)
                    saved = checkpoint
                with self._lock:
                    self._lag[sid] = page.millis_behind
                self._metrics.gauge("lag_ms", page.millis_behind, {"shard": sid})
                iterator = page.next_iterator
                if iterator is None or self._at_end(sid, page, processor.last_sequence):
                    saved = self._finish(sid, processor, saved)
                    return
                self._stop.wait(max(0.0, interval - (self._clock() - started)))
            checkpoint = processor.flush_all()  # shutdown requested: flush and checkpoint
            if checkpoint is not None and checkpoint != saved:
                self._checkpoints.save(sid, checkpoint)
            if self._leases is not None:
                self._leases.release(sid)
                log.info("lease released", extra={"shard_id": sid})
        except LeaseLostError:
            # Another runner owns the shard now: keep nothing, checkpoint nothing (the KCL's
            # rule); the new owner reads again from the last checkpoint.
            log.warning("lease lost", extra={"shard_id": sid})
            if processor is not None:
                processor.drop()
        except Exception as exc:  # WriteError and anything else: stop, never skip data
            self._fail(exc)
        finally:
            with self._lock:
                self._lag.pop(sid, None)
                if self._leases is not None and sid not in self._finished:
                    self._workers.pop(sid, None)  # free to be taken again (by anyone)
                    self._surplus.discard(sid)

    def _released(self, sid: str) -> bool:
        with self._lock:
            return sid in self._surplus

    def _at_end(self, sid: str, page: Page, last: str | None) -> bool:
        # Real Kinesis ends a closed shard with a null NextShardIterator; moto keeps returning
        # iterators, so a closed shard that answers an empty page past its last sequence
        # number is treated as ended too.
        if page.records:
            return False
        with self._lock:
            info = self._closed.get(sid)
        if info is None or info.ending_sequence is None:
            return False
        return last is None or int(info.ending_sequence) <= int(last)

    def _finish(self, sid: str, processor: ShardProcessor, saved: str | None) -> str | None:
        checkpoint = processor.flush_all()
        if checkpoint is not None and checkpoint != saved:
            self._checkpoints.save(sid, checkpoint)
        end = self._ending_sequence(sid, processor.last_sequence)
        self._checkpoints.mark_finished(sid, end)
        if self._leases is not None:
            self._leases.release(sid)
        with self._lock:
            self._finished.add(sid)
            self._finished_end[sid] = end
            self.history.append(("end", sid))
        log.info("shard finished", extra={"shard_id": sid, "ending_sequence": end})
        return checkpoint

    def _ending_sequence(self, sid: str, last: str | None) -> str | None:
        """The shard's ending sequence number now (fresh listing), at least the last one read."""
        listed = next((s for s in self._reader.list_shards() if s.shard_id == sid), None)
        ends = [int(v) for v in (listed.ending_sequence if listed else None, last) if v is not None]
        return str(max(ends)) if ends else None
