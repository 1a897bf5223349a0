"""Everything of the worker that reaches below Faust's public API, pinned to one Faust version
(:data:`FAUST_VERSION`; ``pyproject.toml`` pins the same, and ``tests/worker/test_transport.py`` fails
when an upgrade changes what this module relies on). Faust's Kafka transport with these changes:
records delivered a fetch at a time, no input records handed on before a rebalance ends, partitions
without a committed offset read from the beginning, the consumer's fetch wait, fetches sized to the
load, end offsets checked against the log, and a hook before each offset commit; what the stall
watchdog reads and does; and tables whose changelog topic is not named after the app id.

- **A fetch at a time.** Faust turns every record into a message, runs it through its conductor,
  schema and channel queue, creates tasks to await it, and acknowledges it, one at a time: 170-270 µs
  per record measured in the bench's Faust floor, more than the posts' own work. For the topics named
  in ``InterestApp.batched_topics`` (the posts, feedback and erasure agents' inputs), the consumer
  instead hands Faust one :class:`RecordBatch` per partition and fetch: one Faust message whose value
  is the list of the records as :class:`~stream.pipeline.records.Message` (read with
  :class:`BatchSchema`), and whose offset is its last record's. When the agent acknowledges it,
  :class:`BatchMessage` acknowledges every offset it covers, as Faust would have one by one, so the
  commit covers the whole batch, and nothing of it before it is acknowledged. Faust's own checks
  around each message (flow control, rebalance generation, buffer pressure) now run per batch.

- **Nothing handed on before a rebalance ends.** At the end of a rebalance Faust's recovery resumes the
  input partitions, seeks them to their committed offsets, and only then resumes its flow control,
  which empties the agents' queues (it does so on every resume, and it has already resumed once for
  the tables' changelogs). A fetch that lands during the seek is handed on to an agent's queue, and
  the read offset and the client's position move past it; the resume then empties the queue, and
  nothing reads those records again until the next rebalance. Measured: in a failover test the
  survivor's posts partition 2 stayed committed at offset 145 while the client's position was at
  the end, 770, and 451 posts had no prediction (twice in 47 runs of the test). So while the app is
  rebalancing, the consumer asks the Kafka client for the tables' changelogs only (``_getmany``);
  the inputs' records wait in the client, or are fetched again after the seek.
- **No committed offset means the beginning.** After each rebalance Faust seeks the input partitions to
  their committed offsets, which also puts back what a fetch read but the rebalance kept from the agents
  (Faust drops a fetch whose generation changed). aiokafka seeks only to a committed offset above 0 and
  otherwise leaves the position where it was, so on a partition with nothing committed those records
  were lost, and a broker that came back empty left the worker at its old offsets, skipping every
  record written before them (measured: 100 posts on a restarted embedded broker, none read). Such
  partitions now go to the beginning (``consumer_auto_offset_reset="earliest"``) and Faust forgets the
  committed offset it remembered for them.
- Faust 0.15 hard-codes ``fetch_max_wait_ms=1500`` for its worker consumer. A broker holds a fetch
  until that wait runs out when there is little data, so at moderate load every post waits up to
  1.5 s before the worker sees it. :class:`InterestApp` uses ``STREAM_FETCH_WAIT_MS`` instead, and
  ``STREAM_FETCH_MIN_BYTES`` as the least data a fetch gathers within that wait (Faust leaves aiokafka's
  1 byte: under load every fetch then returns a few posts, and the worker and the broker pay a fetch's
  cost every few posts).
- **Fetches sized to the load.** With ``STREAM_FETCH_GATHER_MS`` set, the least data a fetch asks for
  follows the input rate (:class:`FetchGather`): about that many milliseconds of it, re-measured every
  half second from the bytes fetched of the batched topics (the worker's own aggregates come in
  bursts), so that under load the broker answers fewer, larger fetches and at low load a fetch still
  answers at the first record. It is set on aiokafka's fetcher, which reads ``_fetch_min_bytes`` into
  every fetch request it builds.
- Faust commits the input offsets of the events an agent has acknowledged. The posts agent sends
  the partial aggregates of its posts on a timer, not with each batch, so :class:`InterestApp` has a
  ``before_commit`` hook: right before the offsets to commit are taken, it drains what the acknowledged
  posts left (synchronously: no post is acknowledged in between), and the drained records are sent
  before the producer is flushed and the offsets committed; then the app's ``commit_guard`` (see
  :class:`~stream.worker.publisher.Publisher`) sends again whatever failed, and the commit waits until
  it is delivered. A post is never marked consumed before the records it caused are delivered.
- Faust restores a table by reading its changelog up to the end offsets the broker reports. The
  embedded broker (Tansu 0.6) reports the *base offset of the last record batch* instead of the
  offset after the last record (measured: 6 records at offsets 0-5 written in batches [0-3], [4-5]
  give an end offset of 4), so a restarted worker would lose the last changes of its tables.
  :func:`stream.clients.true_end_offsets` reads from the reported end on and moves it past any record
  found there; on Apache Kafka there is none and the answer is unchanged.
- **Stalled input partitions.** :meth:`BatchingConsumer.input_positions` and
  :meth:`BatchingConsumer.restart_fetch` serve the worker's stall watchdog
  (:class:`~stream.worker.stalls.StallWatch`, run in ``stream.worker.tasks``), and
  ``BatchingConsumer.fetched_at`` tells it whether Faust's fetch loop goes on asking for records. A
  partition's next offset is the client's position: the offset it hands Faust next, which moves when
  Faust takes the records, not when they are fetched (records fetched and never taken leave it where
  it was), and which moves past transaction markers, so that markers at a partition's end are not
  taken for records left to read. It is read from Faust's thread, as Faust reads the client's
  highwaters and assignment. Before the client has a position: one past Faust's read offset, or the
  partition's first offset. (Faust's read offset is the last offset it handed an agent, or after a
  seek the offset to read next, where one past it is one too many: that only delays a report.) The end
  offsets are the broker's own, one request, not checked as above: the embedded broker's may be a batch
  short, which also only delays a report. A restart makes Faust count the partition active again (not
  paused, not held back for a full buffer) and seeks the client to Faust's read offset through Faust's
  ``seek_wait`` (in the client's thread), which drops what the client fetched of the partition and did
  not deliver. Nothing is skipped; at most a record already handed on comes again.
- **Changelog topics named after the posts workers' group.** Faust names a table's changelog
  ``{app id}-{table}-changelog``. An ``aggregates`` worker's app id is its own consumer group
  (``STREAM_APP_ID-aggregates``), yet it must restore the tables an ``all`` worker of ``STREAM_APP_ID``
  wrote, so :class:`GroupTable` (the app's table class) names the changelog after
  ``InterestApp.changelog_group`` (``STREAM_APP_ID``) through Faust's ``Collection._changelog_topic_name``,
  and every other property of the topic stays Faust's own.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol, cast

import faust
import numpy as np
from aiokafka.partitioner import murmur2
from faust.exceptions import ProducerSendError
from faust.transport.consumer import ensure_TP
from faust.transport.drivers import aiokafka as driver
from faust.types.tuples import ConsumerMessage

from stream.clients import true_end_offsets
from stream.pipeline.records import Message
from stream.settings import ConfigError

FAUST_VERSION = "0.15.3"
"""The Faust release this module is written against (and ``pyproject.toml`` pins)."""
GATHER_PERIOD_S = 0.5  # how often the least bytes of a fetch follow the input rate
MAX_GATHER_BYTES = 1 << 20  # the most a fetch asks for: aiokafka's default bytes of one partition's fetch
REBALANCE_POLL_S = 0.05  # how often the fetch loop looks again while a rebalance holds the inputs back


class FaustVersionError(ConfigError):
    """The installed Faust is not the one this module is written against (a one-line error)."""


def check_faust_version(version: str | None = None) -> None:
    """Refuse (one line) a Faust release other than :data:`FAUST_VERSION`.

    >>> check_faust_version(FAUST_VERSION)
    >>> check_faust_version("0.16.0")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    stream.worker.transport.FaustVersionError: faust-streaming 0.16.0 is installed; the worker's ...
    """
    version = faust.__version__ if version is None else version
    if version != FAUST_VERSION:
        raise FaustVersionError(
            f"faust-streaming {version} is installed; the worker's transport is written for {FAUST_VERSION} "
            f"(pip install 'faust-streaming=={FAUST_VERSION}')"
        )


class FetchGather:
    """The least data (bytes) a fetch of the worker's inputs asks the broker for: what arrives in
    ``gather_s`` at the rate of the last ``period``, never under ``floor`` nor over ``cap``. A fetch
    still returns after the consumer's fetch wait whatever it has, so at low load it waits for a record
    or two, and under load the broker answers fewer, larger fetches.

    >>> g = FetchGather(0.01)
    >>> g.observe(5_000, now=0.0) is None  # the first period starts: what came before is not counted
    True
    >>> g.observe(300_000, now=0.25) is None  # within the period
    True
    >>> g.observe(300_000, now=0.5)  # 1.2 MB/s: 10 ms of it
    12000
    >>> g.observe(0, now=1.0)  # nothing came for half a second: the floor
    1
    >>> g.observe(10**9, now=1.5)  # never more than a fetch can bring
    1048576
    """

    def __init__(self, gather_s: float, floor: int = 1, period: float = GATHER_PERIOD_S, cap: int = MAX_GATHER_BYTES):
        self.gather_s, self.floor, self.period, self.cap = gather_s, floor, period, max(floor, cap)
        self._bytes = 0
        self._since: float | None = None

    def observe(self, fetched: int, now: float) -> int | None:
        """Count ``fetched`` bytes at ``now`` (seconds); once a period is over, the new least bytes."""
        if self._since is None:
            self._since = now
            return None
        self._bytes += fetched
        elapsed = now - self._since
        if elapsed < self.period:
            return None
        rate = self._bytes / elapsed
        self._bytes, self._since = 0, now
        return max(self.floor, min(int(rate * self.gather_s), self.cap))


class RecordBatch:
    """The records of one partition from one fetch, in the shape of the Kafka client's record, which
    Faust turns into one message (:meth:`BatchingConsumer._to_message`)."""

    __slots__ = ("first_offset", "offset", "partition", "serialized_value_size", "timestamp", "topic", "value")
    timestamp_type = 0
    headers: tuple[()] = ()
    key = None
    checksum = None
    serialized_key_size = 0

    def __init__(self, records: list[Any]) -> None:
        first, last = records[0], records[-1]
        self.topic, self.partition, self.offset, self.timestamp = (
            last.topic,
            last.partition,
            last.offset,
            last.timestamp,
        )
        self.first_offset = first.offset
        self.value = [Message(r.value, r.key, r.topic, r.partition, r.offset, r.timestamp) for r in records]
        self.serialized_value_size = sum(r.serialized_value_size for r in records)


class BatchMessage(ConsumerMessage):
    """Faust's message for a :class:`RecordBatch`: its value is the list of records, and acknowledging
    it acknowledges every offset from ``first_offset`` (the batch's first, or the one after the
    partition's last read, if there is a hole in between) to its last."""

    first_offset: int = -1

    def on_final_ack(self, consumer: Any) -> bool:
        if not consumer.ack(self):  # the last offset, through Faust's checks (acks enabled, not committed)
            return False
        if self.first_offset < self.offset:  # and the others, as Faust's ack would add each
            before = range(self.first_offset, self.offset)
            consumer._acked[self.tp].extend(before)
            consumer._acked_index[self.tp].update(before)
        return True


class BatchSchema(faust.Schema):
    """Reads a :class:`BatchMessage` as it is: no key, the list of records as the value."""

    def loads_key(self, app: Any, message: Any, *, loads: Any = None, serializer: Any = None) -> Any:
        return None

    def loads_value(self, app: Any, message: Any, *, loads: Any = None, serializer: Any = None) -> Any:
        return message.value


class BatchingConsumer(driver.Consumer):
    """Faust's aiokafka consumer, delivering the records of the app's ``batched_topics`` as one
    :class:`BatchMessage` per partition and fetch (see the module's docstring)."""

    _gather: FetchGather | None = None
    fetched_at: float | None = None  # when Faust's fetch loop last asked for records (time.monotonic())
    _positions: asyncio.Future[dict[Any, tuple[int, int]]] | None = None  # input_positions' request, once sent

    async def _wait_next_records(self, timeout: float) -> Any:
        records, active = await super()._wait_next_records(timeout)
        self.fetched_at = time.monotonic()
        batched: frozenset[str] = getattr(self.app, "batched_topics", frozenset())
        if records and batched:
            records = {tp: [RecordBatch(rs)] if rs and tp.topic in batched else rs for tp, rs in records.items()}
        if getattr(self.app, "fetch_gather_s", 0.0) > 0:
            self._follow_rate(records, batched)  # a batched partition's bytes are its RecordBatch's: summed once
        return records, active

    async def _getmany(self, active_partitions: set[Any] | None, timeout: float) -> Any:
        """Faust's fetch, asking only for the tables' changelogs while the app is rebalancing (see
        "Nothing handed on before a rebalance ends" in the module's docstring)."""
        if active_partitions and self.app.rebalancing:
            active_partitions = {tp for tp in active_partitions if self._is_changelog_tp(tp)}
            if not active_partitions:  # none at all would be every partition, to the Kafka client
                await asyncio.sleep(min(timeout, REBALANCE_POLL_S))
                return {}
        return await super()._getmany(active_partitions, timeout)

    def _follow_rate(self, records: Mapping[Any, Sequence[Any]] | None, inputs: frozenset[str]) -> None:
        """Count the bytes a fetch brought of the ``inputs`` topics (the posts, feedback and erasures: the
        worker's own aggregates come in bursts, twice a second); set the fetcher's least bytes when
        :class:`FetchGather` has new ones."""
        app = cast("InterestApp", self.app)
        if self._gather is None:
            self._gather = FetchGather(app.fetch_gather_s, app.fetch_min_bytes)
        fetched = 0
        if records:
            for tp, rs in records.items():
                if tp.topic in inputs:
                    fetched += sum(r.serialized_value_size for r in rs)
        least = self._gather.observe(fetched, time.monotonic())
        if least is not None:
            fetcher = self._fetcher()
            if fetcher is not None:
                fetcher._fetch_min_bytes = least  # read into each fetch request it builds
                app.fetch_min_bytes_now = least  # for /metrics

    def _to_message(self, tp: Any, record: Any) -> Any:
        if type(record) is not RecordBatch:
            return super()._to_message(tp, record)
        fields: tuple[Any, ...] = (
            record.topic,
            record.partition,
            record.offset,
            record.timestamp / 1000.0 if record.timestamp is not None else None,
            record.timestamp_type,
            record.headers,
            None,
            record.value,
            None,
            0,
            record.serialized_value_size,
            tp,
        )
        message = BatchMessage(*fields, generation_id=self.app.consumer_generation_id)  # type: ignore[misc]
        read = self._read_offset[tp]  # the last offset read before (or, after a seek, the next to read)
        message.first_offset = record.first_offset if read is None else min(record.first_offset, read + 1)
        # Faust's fetch loop takes the offsets between the one it read last and a message's as a gap;
        # the batch acknowledges them itself, and both at once would stop each commit at the overlap.
        self._read_offset[tp] = record.offset - 1
        return message

    async def input_positions(self, timeout: float) -> dict[Any, tuple[int, int]]:
        """For each partition the worker holds, but a table's changelog: the offset the client hands
        Faust next and the end offset the broker reports (see "Stalled input partitions" in the
        module's docstring). ``TimeoutError`` after ``timeout`` seconds without the broker's answer: the
        request goes on in the consumer's thread (until the client's request timeout), and the next
        call waits for it instead of sending another, so that requests to a broker that went away do
        not take up the thread's workers, which Faust's commits and seeks go through too."""
        request = self._positions
        if request is None or request.done():
            request = self._positions = asyncio.ensure_future(self._input_positions())
            request.add_done_callback(_retrieved)  # its error is the caller's, or nobody's once given up on
        return await asyncio.wait_for(asyncio.shield(request), timeout)

    async def on_stop(self) -> None:
        if self._positions is not None:
            self._positions.cancel()  # a request the watchdog gave up on may still wait for the broker
        await super().on_stop()

    async def _input_positions(self) -> dict[Any, tuple[int, int]]:
        held = [tp for tp in self.assignment() if not self._is_changelog_tp(tp)]
        if not held:
            return {}
        thread = cast(_ConsumerThread, self._thread)
        ends = await thread.reported_end_offsets(held)
        nexts: dict[Any, int | None] = {}
        for tp in held:
            position, read = self._client_position(tp), self._read_offset.get(tp)
            if position is not None:
                nexts[tp] = position
            else:  # before the client's first position: past what Faust read, or the beginning
                nexts[tp] = None if read is None else read + 1
        unread = [tp for tp, offset in nexts.items() if offset is None]
        if unread:
            nexts.update(await thread.earliest_offsets(*unread))
        return {
            tp: (offset, end)
            for tp, offset in nexts.items()
            if offset is not None and (end := ends.get(tp)) is not None
        }

    def _fetcher(self) -> Any:
        """aiokafka's fetcher (made by its consumer's ``start()``, in the consumer thread), or None."""
        client = getattr(self._thread, "_consumer", None)  # aiokafka's consumer, once the thread made it
        return getattr(client, "_fetcher", None)

    def _client_state(self, tp: Any) -> tuple[Any, Any]:
        """aiokafka's fetcher and its state of ``tp`` ((None, None) while the client holds none)."""
        fetcher = self._fetcher()
        subscription = fetcher._subscriptions.subscription if fetcher is not None else None
        assignment = subscription.assignment if subscription is not None else None
        state = assignment.state_value(tp) if assignment is not None else None
        return (fetcher, state) if state is not None else (None, None)

    def _client_position(self, tp: Any) -> int | None:
        """The client's position of ``tp`` (None while it has none), read from this thread: the client's
        thread may reset it between the check and the read."""
        _, state = self._client_state(tp)
        position = state._position if state is not None else None
        return position if isinstance(position, int) else None

    def fetch_state(self, tp: Any) -> str:
        """What Faust and the Kafka client hold of ``tp``, for a log line."""
        faust_side = (
            f"active={tp in (self._active_partitions or ())} paused={tp in self._paused_partitions} "
            f"buffered={tp in self._buffered_partitions} read={self._read_offset.get(tp)} "
            f"committed={self._committed_offset.get(tp)}"
        )
        fetcher, state = self._client_state(tp)
        if state is None:
            return f"{faust_side}; the client holds no state of it"
        return (
            f"{faust_side}; client: position={self._client_position(tp)} highwater={state.highwater} "
            f"paused={state.paused} fetched_undelivered={tp in fetcher._records}"
        )

    async def restart_fetch(self, tp: Any) -> int:
        """Fetch ``tp`` again from Faust's read offset (none yet: the beginning of the partition, where
        such a partition is read from): Faust counts it active (not paused, not held back), and the
        client, in its own thread, seeks there, which drops what it fetched of it and did not deliver.
        Returns that offset. Nothing is skipped; at most a record already handed on comes again."""
        offset = self._read_offset.get(tp)
        if offset is None:
            offset = (await self._thread.earliest_offsets(tp))[tp]
        self._buffered_partitions.discard(tp)
        self.resume_partitions([tp])
        await self.seek_wait({tp: offset})  # Faust's: through the client's thread; sets the read offset
        return offset

    async def seek_to_committed(self) -> Mapping[Any, int]:
        committed = await super().seek_to_committed()
        unset = [tp for tp, offset in committed.items() if not offset and not self._is_changelog_tp(tp)]
        if unset:
            if self.app.conf.consumer_auto_offset_reset == "earliest":
                await self._thread.seek_to_beginning(*unset)
            for tp in unset:
                self._committed_offset[ensure_TP(tp)] = None
        return committed


class _ConsumerThread(driver.AIOKafkaConsumerThread):
    fetch_max_wait_ms: int = 1500
    fetch_min_bytes: int = 1
    client_options: Mapping[str, Any] = {}

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = self.fetch_max_wait_ms  # both read by AIOKafkaConsumer.start()
        consumer._fetch_min_bytes = self.fetch_min_bytes
        return consumer

    async def reported_end_offsets(self, partitions: list[Any]) -> Mapping[Any, int]:
        """The end offsets the broker reports, unchecked (one request; see the module's docstring)."""
        return cast(Mapping[Any, int], await self.call_thread(super()._highwaters, partitions))

    async def _highwaters(self, partitions: list[Any]) -> Mapping[Any, int]:
        reported = await super()._highwaters(partitions)
        return await true_end_offsets(self.client_options, reported)


def _retrieved(request: asyncio.Future[Any]) -> None:
    """Mark the error of a finished request as read, so that asyncio does not log one that no caller
    waited for any more."""
    if not request.cancelled():
        request.exception()


def transport_class(
    fetch_max_wait_ms: int, client_options: Mapping[str, Any] | None = None, fetch_min_bytes: int = 1
) -> type[driver.Transport]:
    """The aiokafka transport of Faust, with a worker consumer whose fetches wait ``fetch_max_wait_ms``
    for ``fetch_min_bytes`` (or, with the app's ``fetch_gather_s``, for that long of the input at its
    recent rate: :class:`FetchGather`) and that checks the end offsets it is told (see the module's
    docstring) with a client built from ``client_options`` (bootstrap servers and the app's credentials)."""
    thread = type(
        "ConsumerThread",
        (_ConsumerThread,),
        {
            "fetch_max_wait_ms": fetch_max_wait_ms,
            "fetch_min_bytes": fetch_min_bytes,
            "client_options": dict(client_options or {}),
        },
    )

    class Consumer(BatchingConsumer):
        consumer_thread_class = thread

        def _new_consumer_thread(self) -> driver.AIOKafkaConsumerThread:
            return thread(self, loop=self.loop, beacon=self.beacon)

        async def _commit_tps(self, tps: Iterable[Any], start_new_transaction: bool) -> bool:
            # Faust's own, with the app's before_commit hook called before the offsets are taken.
            hook = getattr(self.app, "before_commit", None)
            drained = hook() if hook is not None else None  # drains now; sends when awaited
            commit_offsets = self._filter_committable_offsets(tps)
            if drained is not None:
                await drained
            if not commit_offsets:
                return False
            guard: CommitGuard | None = getattr(self.app, "commit_guard", None)
            if guard is not None and not await guard.delivery_gate():
                return False  # something these posts caused is not delivered yet: commit later
            try:
                await self._handle_attached(commit_offsets)
            except ProducerSendError as exc:
                await self.crash(exc)
                return False
            if guard is not None:
                guard.commit_started()  # a commit that hangs (a broker that lost the group) shows as a stall
            committed = False
            try:
                committed = await self._commit_offsets(commit_offsets, start_new_transaction=start_new_transaction)
            finally:
                if guard is not None:
                    guard.commit_result(committed)
            return committed

    return type("Transport", (driver.Transport,), {"Consumer": Consumer})


def kafka_producer(app: faust.App) -> Any:
    """The Kafka client (aiokafka's ``AIOKafkaProducer``) under the app's Faust producer, once the app
    has started it: :class:`~stream.worker.publisher.Publisher` hands it whole batches of records
    (``create_batch``/``send_batch``), which Faust's producer does not offer. Faust's ``flush`` flushes
    the same client."""
    return app.producer._ensure_producer()  # type: ignore[attr-defined]


class CommitGuard(Protocol):
    """What the consumer asks before and tells around each offset commit
    (:class:`~stream.worker.publisher.Publisher` is one)."""

    async def delivery_gate(self) -> bool: ...

    def commit_started(self) -> None: ...

    def commit_result(self, committed: bool) -> None: ...


class GroupTable(faust.Table):
    """A Faust table whose changelog topic is named after the app's ``changelog_group`` instead of its
    id (see the module's docstring); with no group it is Faust's own name."""

    def _changelog_topic_name(self) -> str:
        group = getattr(self.app, "changelog_group", None) or self.app.conf.id
        return f"{group}-{self.name}-changelog"


class InterestApp(faust.App):
    """A Faust app whose consumer fetch wait and size are settings (the size may follow the input rate),
    with checked end offsets and a hook called before each offset commit (see the module's docstring)."""

    fetch_max_wait_ms: int = 1500
    fetch_min_bytes: int = 1
    fetch_gather_s: float = 0.0
    fetch_min_bytes_now: int | None = None  # what the consumer's fetches ask for now (None: fetch_min_bytes)
    before_commit: Callable[[], Awaitable[Any] | None] | None = None
    commit_guard: CommitGuard | None = None
    batched_topics: frozenset[str] = frozenset()  # delivered a fetch at a time (see the module's docstring)
    changelog_group: str | None = None  # the tables' changelogs are named after it (None: the app id)

    def __init__(self, id: str, *, changelog_group: str | None = None, **options: Any):
        # set before any table exists: Faust names a table's changelog when the table is added
        self.changelog_group = changelog_group
        super().__init__(id, **options)

    def _new_transport(self) -> Any:
        servers = [f"{u.host}:{u.port}" for u in self.conf.broker_consumer]
        # the probe of end offsets connects as Faust's own clients do
        auth = driver.credentials_to_aiokafka_auth(self.conf.broker_credentials, self.conf.ssl_context)
        options = {"bootstrap_servers": servers, **auth}
        return transport_class(self.fetch_max_wait_ms, options, fetch_min_bytes=self.fetch_min_bytes)(
            self.conf.broker_consumer, self
        )


def key_partition(key: bytes, partitions: int) -> int:
    """The partition the Kafka clients' default partitioner (murmur2, as Java's) gives a record keyed
    by ``key`` on a topic of ``partitions`` partitions.

    >>> key_partition(b"p1", 4) == key_partition(b"p1", 4), 0 <= key_partition(b"x", 4) < 4
    (True, True)
    """
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def key_partitions(keys: Sequence[bytes], partitions: int) -> list[int]:
    """:func:`key_partition` of each key. Keys of one length (post ids mostly are) are hashed together
    in numpy's 32-bit arithmetic, which wraps as Java's does: 0.3 µs a key instead of 4.5 (256 post ids).

    >>> keys = [b"%018d" % i for i in range(40)] + [b"p1", b""]
    >>> key_partitions(keys, 4) == [key_partition(k, 4) for k in keys]
    True
    """
    out = [0] * len(keys)
    by_length: dict[int, list[int]] = {}
    for i, key in enumerate(keys):
        by_length.setdefault(len(key), []).append(i)
    for length, where in by_length.items():
        if len(where) < 8:  # too few for arrays to pay
            for i in where:
                out[i] = key_partition(keys[i], partitions)
            continue
        hashes = _murmur2_of_length([keys[i] for i in where], length)
        for i, p in zip(where, ((hashes & 0x7FFFFFFF) % partitions).tolist(), strict=True):
            out[i] = p
    return out


def _murmur2_of_length(keys: Sequence[bytes], length: int) -> np.ndarray:
    """aiokafka's ``murmur2`` (Java's) of keys that all have ``length`` bytes, as uint32."""
    raw = np.frombuffer(b"".join(keys), dtype=np.uint8).reshape(len(keys), length)
    m = np.uint32(0x5BD1E995)
    h = np.full(len(keys), 0x9747B28C ^ length, dtype=np.uint32)
    tail = length & ~3
    blocks = np.ascontiguousarray(raw[:, :tail]).view("<u4")
    for j in range(tail // 4):
        k = blocks[:, j] * m
        k ^= k >> np.uint32(24)
        k *= m
        h *= m
        h ^= k
    extra = length & 3
    if extra == 3:
        h ^= raw[:, tail + 2].astype(np.uint32) << np.uint32(16)
    if extra >= 2:
        h ^= raw[:, tail + 1].astype(np.uint32) << np.uint32(8)
    if extra:
        h ^= raw[:, tail].astype(np.uint32)
        h *= m
    h ^= h >> np.uint32(13)
    h *= m
    h ^= h >> np.uint32(15)
    return h


def partition_router(partitions: int) -> Callable[[str], int]:
    """The partition the Kafka clients' default partitioner (murmur2, as Java's) gives a record keyed
    by ``key`` on a topic of ``partitions`` partitions: where a post keyed by its id is, and so where
    its delayed label must go.

    >>> route = partition_router(4)
    >>> route("p1") == key_partition(b"p1", 4)
    True
    """

    def route(key: str) -> int:
        return key_partition(key.encode(), partitions)

    return route
