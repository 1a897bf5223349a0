"""``interest-stream bench``: the pipeline as shipped, a naive Faust agent, the raw-client limit and
the framework floor, measured in the same run on the same events.

- **pipeline**: one ``interest-stream worker`` process as shipped (decode, validate, dedup, clean,
  featurize, predict interest and sentiment, training log and its learner process, audience partials
  and profiles, publish); with ``--layout split``, a ``posts`` worker and an ``aggregates`` worker
  (audience windows, triggers, profiles) instead;
- **naive**: ``stream.tools.bench_naive``, the textbook Faust agent: one event at a time, River's stock
  ``BagOfWords | MultinomialNB``, the lexicon, ``await topic.send()`` per event;
- **limit**: the worker's work in a plain aiokafka loop in this process (``getmany``, batches, sends
  without awaiting each): the processor, learning at once, the audience windows and the profiles, with
  the same outputs; no framework, no training topic, no internal topics, no tables;
- **floor**: ``stream.tools.bench_floor``, the worker's Faust app forwarding each post unchanged, a
  fetch at a time as the posts agent takes them: no work at all, so the most events/s any Faust
  pipeline set up like this gets;
- **peer**: ``stream.tools.bench_peer``, what a user would pick instead: a Quix Streams application
  (confluent-kafka underneath) with River's stock ``BagOfWords | MultinomialNB``, predict then learn
  per post, a regex cleaner, one prediction record per post (needs the ``dev`` extra; skipped without it).

Throughput is the output records over the span of their Kafka timestamps, with the input a backlog
consumed as fast as each can: preloaded for the others; for the pipeline, sent as fast as the load
generator can once the worker holds the learner role, so that its learner process learns every label
while the posts are predicted (the others learn each post in their loop). Latency is measured on the
pipeline afterwards, at a fixed offered load of half its throughput (sent by :func:`offer`), Kafka
timestamp of the post → Kafka timestamp of its prediction, with the CPU the worker, the broker and the
load generator use meanwhile.
CPU µs per event is the process's CPU time over the events (for the pipeline, every worker process's
and the learner process's); RSS is the process's peak (VmHWM; for the pipeline, the posts worker's,
the learner process and the aggregates worker apart). The
per-stage breakdown times the processor's steps in this process. With the embedded broker, each run
also reports the broker's CPU per output record over its span. A benchmark, not a test: the figures
move with the machine's load, so ``--repeat N`` runs the pipeline and the peer N times, each pipeline
run followed at once by a peer run, and reports every pair and their medians.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.util
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import orjson

from stream.clients import aio_consumer, aio_producer, kafka_consumer
from stream.settings import Settings, settings_env
from stream.tools.broker import EmbeddedBroker, free_port, stop_process
from stream.tools.demo import WorkerProcess
from stream.tools.produce import pace, produce

CLK_TCK = os.sysconf("SC_CLK_TCK")
LATENCY_SECONDS = 15  # length of the fixed-load phase


def unique(settings: Settings, tag: str) -> Settings:
    """Fresh topic names and group id, so that the three runs share nothing."""
    run = f"{tag}-{uuid.uuid4().hex[:6]}"
    topics = {
        f.name: f"bench.{f.name.removeprefix('topic_')}.{run}"
        for f in dataclasses.fields(Settings)
        if f.name.startswith("topic_")
    }
    # every run's worker runs every agent, whatever STREAM_ROLE says (the split pipeline sets the roles)
    return settings.replace(app_id=f"bench-{run}", web_port=free_port(), role="all", **topics)


def child_pids(pid: int, proc: Path = Path("/proc")) -> list[int]:
    """The live child processes of a process (a worker's learner process)."""
    found: list[int] = []
    for task in (proc / str(pid) / "task").glob("*/children"):
        try:
            found += [int(c) for c in task.read_text().split()]
        except OSError:  # the thread is gone
            continue
    return found


def proc_cpu(pid: int, children: bool = True, proc: Path = Path("/proc")) -> float:
    """CPU seconds (user + system) of a process so far, its child processes' included, live or ended
    (a worker that holds the learner role runs it in a child); with ``children=False``, the process's
    own alone."""
    total = 0.0
    for p in (pid, *child_pids(pid, proc)) if children else (pid,):
        try:
            fields = (proc / str(p) / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the child exited
            continue
        # utime, stime, and the ended children's (cutime, cstime) that the process has waited for
        total += sum(int(f) for f in fields[11 : 15 if children else 13]) / CLK_TCK
    return total


def proc_cpu_wait(pid: int, children: bool = True, proc: Path = Path("/proc")) -> float:
    """Seconds the live threads of a process (and of its child processes, with ``children``) have
    spent ready to run but waiting for a CPU, from each thread's ``schedstat``: it grows as the machine
    fills up. Threads that ended are not counted."""
    total = 0.0
    for p in (pid, *child_pids(pid, proc)) if children else (pid,):
        for stat in (proc / str(p) / "task").glob("*/schedstat"):
            try:
                total += int(stat.read_text().split()[1]) / 1e9  # running ns, waiting ns, time slices
            except (OSError, IndexError, ValueError):  # the thread ended
                continue
    return total


def cpu_usage(watched: Mapping[str, int]) -> dict[str, tuple[float, float]]:
    """CPU seconds so far and seconds spent waiting for a CPU (:func:`proc_cpu`, :func:`proc_cpu_wait`)
    of each watched process, and of this one as ``load`` (the load generator, without its children)."""
    return {
        **{name: (proc_cpu(pid), proc_cpu_wait(pid)) for name, pid in watched.items()},
        "load": (own_cpu(), proc_cpu_wait(os.getpid(), children=False)),
    }


class SpanCpu:
    """A process's CPU over a run's span, per output record: counted from when it is made, or from
    :meth:`start` (the span's first output). ``None`` without a pid (an external broker).

    >>> SpanCpu(None).per_record(10) is None
    True
    >>> cpu = SpanCpu(os.getpid()); cpu.start(); cpu.per_record(1) >= 0
    True
    """

    def __init__(self, pid: int | None, children: bool = True):
        self.pid = pid
        self.children = children  # False: the process's own CPU, not its child processes'
        self.at_start: float | None = None
        self.start()

    def start(self) -> None:
        if self.pid is not None:
            self.at_start = proc_cpu(self.pid, self.children)

    @staticmethod
    def start_all(*counters: SpanCpu) -> Callable[[], None]:
        """A callable that starts every counter (a span's first output starts them together)."""

        def start() -> None:
            for counter in counters:
                counter.start()

        return start

    def per_record(self, count: int) -> float | None:
        """µs of the process's CPU per record since the start (its child processes' included, unless
        made with ``children=False``)."""
        if self.pid is None or self.at_start is None:
            return None
        return (proc_cpu(self.pid, self.children) - self.at_start) / max(1, count) * 1e6


def proc_memory_mb(pid: int | str = "self", field: str = "VmHWM") -> float:
    """A memory figure of a process from ``/proc/PID/status``: ``VmHWM`` (peak RSS) or ``VmRSS`` (now)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


class Span:
    """Follows an output topic: count, first and last Kafka timestamps, and per-key timestamps."""

    def __init__(self, settings: Settings, topic: str, keep_prefix: bytes | None = None):
        self.consumer = kafka_consumer(
            settings,
            topic,
            group_id=None,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        self.count, self.first, self.last = 0, None, None
        self.keep_prefix = keep_prefix
        self.at: dict[bytes, int] = {}

    def poll(self) -> int:
        got = 0
        for records in self.consumer.poll(timeout_ms=200, max_records=20_000).values():
            for r in records:
                got += 1
                self.first = r.timestamp if self.first is None else min(self.first, r.timestamp)
                self.last = r.timestamp if self.last is None else max(self.last, r.timestamp)
                if self.keep_prefix is not None and r.key and r.key.startswith(self.keep_prefix):
                    self.at[r.key] = r.timestamp
        self.count += got
        return got

    def eps(self) -> float:
        if self.first is None or self.last is None or self.last <= self.first:
            return 0.0
        return (self.count - 1) / ((self.last - self.first) / 1000)

    def close(self) -> None:
        self.consumer.close()


class BenchError(RuntimeError):
    """A run of the benchmark failed; the message is one line."""


def follow(span: Span, want: int, timeout: float, on_first: Any = None, alive: Any = None) -> None:
    """Poll ``span`` until ``want`` records came, nothing new came for 10 s, or ``alive()`` is false."""
    deadline, quiet_since = time.monotonic() + timeout, time.monotonic()
    while span.count < want and time.monotonic() < deadline:
        if alive is not None and not alive():
            raise BenchError("a benchmark process exited early: see its log in the --out directory")
        if span.poll():
            quiet_since = time.monotonic()
            if on_first is not None:
                on_first()
                on_first = None
        elif span.count and time.monotonic() - quiet_since > 10:
            break


def settle(pid: int, idle_share: float = 0.2, timeout: float = 120.0) -> float:
    """Wait until the process uses under ``idle_share`` of a core over a second; returns the wait."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        before = proc_cpu(pid)
        time.sleep(1.0)
        if proc_cpu(pid) - before < idle_share:
            break
    return time.monotonic() - start


def relabel(
    events: Sequence[dict[str, Any]], prefix: str, start_ms: int, step_ms: float = 1000.0
) -> list[dict[str, Any]]:
    """Copies of ``events`` with new ids and times (so that they are not duplicates of the first ones),
    ``step_ms`` of event time apart."""
    return [
        {**e, "id": f"{prefix}{i}", "text": f"{e['text']} {prefix}{i}", "created_at": start_ms + int(i * step_ms)}
        for i, e in enumerate(events)
    ]


STAGES = (
    "decode+validate",
    "clean",
    "featurize",
    "predict interest",
    "sentiment",
    "learn (training log)",
    "publish (serialize)",
    "audience windows",
    "profiles",
)
"""The per-stage costs :func:`expected_outputs` measures, in pipeline order: the posts agent's work,
then the aggregating agents' (per post, over the partials and profile updates the posts gave)."""


def expected_outputs(settings: Settings, events: Sequence[dict[str, Any]]) -> tuple[int, dict[str, float]]:
    """How many predictions the events give (offline, same processor), and µs per event by stage."""
    from models.kernels import warm_up
    from models.sentiment import lexicon_scores
    from stream.pipeline.cleaning import CleanPost, clean_post
    from stream.pipeline.events import Post, parse_post
    from stream.pipeline.processor import Processor
    from stream.pipeline.records import score_batch, training_post

    warm_up()  # the learner's compiled updates, compiled (or loaded) before the clock starts
    proc = Processor(settings)
    raw = [orjson.dumps(e) for e in events]
    stages = dict.fromkeys(STAGES, 0.0)
    clock = time.perf_counter
    model, learner = proc.model, proc.learner
    sentiment_model = learner.sentiment
    n = offset = 0
    for i in range(0, len(raw), 32):  # in slices, as a worker predicts a batch before learning it
        t0 = clock()
        posts = [p for p in (parse_post(v) for v in raw[i : i + 32]) if isinstance(p, Post)]
        t1 = clock()
        pairs = [(p, c) for p, c in ((p, clean_post(p)) for p in posts) if isinstance(c, CleanPost)]
        t2 = clock()
        featured = [model.features_and_words(c) for _, c in pairs]
        xs, words = [x for x, _ in featured], [n for _, n in featured]
        t3 = clock()
        all_scores = model.predict_many(xs)
        tops, top_probas, _ = score_batch(all_scores)
        t4 = clock()
        lexes = [lexicon_scores(p.text) for p, _ in pairs]
        sentiments = sentiment_model.predict_many(xs, lexes, sentiment_model.interests_of(tops, top_probas), words)
        t5 = clock()
        for (post, _), x, n_words, top, lex, sentiment in zip(pairs, xs, words, tops, lexes, sentiments, strict=True):
            record = training_post(post.id, x, top, post.interest, lex, sentiment.label, post.sentiment, words=n_words)
            learner.apply(offset, record, post.created_at)
            offset += 1
        t6 = clock()
        for (post, _), scores, sentiment in zip(pairs, all_scores, sentiments, strict=True):
            orjson.dumps({"post_id": post.id, "scores": scores, "sentiment": sentiment.to_dict()})
        t7 = clock()
        dts = (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5, t7 - t6)
        for name, dt in zip(STAGES[: len(dts)], dts, strict=True):
            stages[name] += dt
        n += len(pairs)
    predicted, partials, updates = aggregating_inputs(settings, raw)
    t0 = clock()
    apply_partials(settings, partials)
    t1 = clock()
    apply_profile_updates(settings, updates)
    t2 = clock()
    stages["audience windows"], stages["profiles"] = t1 - t0, t2 - t1
    return predicted, {k: v / max(1, n) * 1e6 for k, v in stages.items()}


def aggregating_inputs(
    settings: Settings, raw: Sequence[bytes]
) -> tuple[int, list[tuple[int, bytes]], list[tuple[int, bytes]]]:
    """The count of predictions a worker publishes of the posts ``raw`` (the processor's own dedup
    included), and the records the aggregating agents get of them, ``(partition, value)``: partials and
    profile updates, drained every 1,024 posts (a worker drains every ``STREAM_AGGREGATE_INTERVAL``, 0.5
    s: 1,000 posts at 2,000 posts/s). Offline, learned at once: the profiles need the interest model's
    scores."""
    from stream.pipeline.processor import Processor
    from stream.pipeline.records import Message

    count = Processor(settings)
    predicted = 0
    partials: list[tuple[int, bytes]] = []
    updates: list[tuple[int, bytes]] = []
    for i in range(0, len(raw), 256):
        predicted += len(count.run_locally(count.process_posts([Message(v) for v in raw[i : i + 256]])).predictions)
        if (i + 256) % 1024 == 0 or i + 256 >= len(raw):
            drained = count.drain_aggregates()
            partials += drained.partials
            updates += drained.profile_updates
    return predicted, partials, updates


def apply_partials(settings: Settings, partials: Sequence[tuple[int, bytes]]) -> None:
    """What the audience agent does with ``audience.partials`` records (a dict as its table), the
    records it sends included."""
    from stream.audience.aggregator import Aggregator
    from stream.audience.rules import configured_rules

    aggregator = Aggregator.from_settings({}, settings, configured_rules(settings))
    for offset, (partition, value) in enumerate(partials):
        aggregator.on_record(partition, offset, value).keyed()


def apply_profile_updates(settings: Settings, updates: Sequence[tuple[int, bytes]]) -> None:
    """What the profiles agent does with ``user.updates`` records (a dict as its table)."""
    from stream.audience.profiles import ProfileBook

    book = ProfileBook.from_settings({}, settings, is_erased=lambda user: False)
    for offset, (_, value) in enumerate(updates):
        book.apply_record(value, offset)


def own_cpu() -> float:
    """CPU seconds of this process (all its threads), without its child processes."""
    t = os.times()
    return t.user + t.system


def offer(settings: Settings, events: Sequence[dict[str, Any]], rate: float | None) -> str:
    """Send ``events`` to the posts topic at ``rate`` posts/s (``None``: as fast as it can); returns
    the client used.

    The load generator shares the machine with the worker and the broker, so it should cost as little
    as it can: confluent-kafka (librdkafka, installed with the ``dev`` extra for the peer) spends a
    fraction of the CPU per post that kafka-python does (measured: 9-12 % of a core at 1,200 posts/s
    against 39-50 %). Without it, :func:`~stream.tools.produce.produce` sends them."""
    try:
        import confluent_kafka
    except ImportError:
        produce(settings, events, rate=rate, progress=False)
        return "kafka-python"
    from stream.clients import librdkafka_options

    failed: list[str] = []

    def delivered(err: Any, _msg: Any) -> None:
        if err is not None:
            failed.append(str(err))

    producer = confluent_kafka.Producer(
        {**librdkafka_options(settings), "linger.ms": 5, "enable.idempotence": False, "client.id": "bench-load"}
    )
    start = time.monotonic()
    for sent, event in enumerate(events, 1):
        key, value = str(event["id"]).encode(), orjson.dumps(event)
        while True:
            try:
                producer.produce(settings.topic_posts, key=key, value=value, on_delivery=delivered)
                break
            except BufferError:  # the client's queue is full (unpaced): wait for deliveries
                producer.poll(0.05)
        producer.poll(0)
        if rate is not None:
            pace(start, sent, rate)
    if producer.flush(60) or failed:
        raise BenchError(f"the posts were not all delivered to {settings.broker}: {failed[:1]}")
    return "confluent-kafka"


def bench_pipeline(
    settings: Settings,
    events: Sequence[dict[str, Any]],
    want: int,
    out_dir: Path,
    rate: float | None = None,
    broker_pid: int | None = None,
    layout: str = "single",
) -> dict[str, Any]:
    s = unique(settings, "pipeline")
    span = Span(s, s.topic_predictions, keep_prefix=b"lat")
    with ExitStack() as stack:
        aggregates = None
        if layout == "split":
            aggregates = stack.enter_context(
                WorkerProcess(s.replace(role="aggregates", web_port=free_port()), out_dir / "pipeline-aggregates.log")
            )
            s = s.replace(role="posts")
        worker = stack.enter_context(WorkerProcess(s, out_dir / "pipeline.log"))
        procs = [w for w in (worker, aggregates) if w is not None]
        # The backlog is sent once the worker holds the learner role and its learner process has
        # started: every label is then learned while the posts are predicted, as the other runs learn
        # each post in their loop. (Preloaded, the backlog was predicted while the learner process was
        # still starting, and the figure left most of the learning out: see docs/performance.md.)
        worker.wait_ready(learner=True)
        if aggregates is not None:
            aggregates.wait_ready()
        pids = [w.proc.pid for w in procs if w.proc is not None]
        pid = pids[0]
        pipeline_cpu = [SpanCpu(p) for p in pids]  # every worker process, with the learner process
        worker_alone = SpanCpu(pid, children=False)  # the posts' event loop and threads, not its learner process
        aggregates_cpu = pipeline_cpu[1:]
        broker_cpu = SpanCpu(broker_pid)
        result: dict[str, Any] = {"layout": layout, "backlog_client": offer(s, events, rate=None)}
        follow(
            span,
            want,
            timeout=600,
            on_first=SpanCpu.start_all(*pipeline_cpu, worker_alone, broker_cpu),  # CPU counted from the first output
            alive=lambda: all(w.proc is not None and w.proc.poll() is None for w in procs),
        )
        result.update(
            eps=span.eps(),
            events=span.count,
            cpu_us=sum_cpu(pipeline_cpu, span.count),
            worker_cpu_us=worker_alone.per_record(span.count),
            aggregates_cpu_us=sum_cpu(aggregates_cpu, span.count) if aggregates_cpu else None,
            broker_cpu_us=broker_cpu.per_record(span.count),
        )
        # latency at a fixed offered load of half the throughput, once the workers are idle again (the
        # audience, profile and learner agents finish the backlog after the last prediction)
        settled_from = time.monotonic()
        for p in pids:
            settle(p)
        result["settle_s"] = time.monotonic() - settled_from
        # The learner learns from the training log behind the predictions: its share of the backlog is
        # only done once the worker is idle again. CPU per post with it:
        result["cpu_us_settled"] = sum_cpu(pipeline_cpu, span.count)
        rate = rate or max(10.0, result["eps"] / 2)
        n_lat = int(rate * LATENCY_SECONDS)
        # Event time advances with the wall clock, as in a live stream. (The backlog, like the demo,
        # is a time-lapse: its tweets are a second of event time apart, so each post closes hundreds
        # of times more audience windows than a live post does.)
        late = relabel([events[i % len(events)] for i in range(n_lat)], "lat", 1_500_000_000_000, step_ms=1000.0 / rate)
        sent_at = Span(s, s.topic_posts, keep_prefix=b"lat")
        watched = {
            "worker": pid,
            **({"aggregates": pids[1]} if len(pids) > 1 else {}),
            **({"broker": broker_pid} if broker_pid else {}),
        }
        before, started = cpu_usage(watched), time.monotonic()
        result["load_client"] = offer(s, late, rate)
        took = time.monotonic() - started
        after = cpu_usage(watched)
        result["cpu_share"] = {k: (after[k][0] - ran) / took for k, (ran, _) in before.items()}
        result["cpu_wait"] = {k: (after[k][1] - waited) / took for k, (_, waited) in before.items()}
        follow(span, want + n_lat, timeout=120)
        follow(sent_at, len(events) + n_lat, timeout=60)
        delays = sorted(span.at[k] - sent_at.at[k] for k in span.at if k in sent_at.at)
        sent_at.close()
        stalls = [worker_metrics(w.settings.web_port)["loop_stalls"] for w in procs]
        result.update(
            loop_stalls=sum_or_none(stalls),
            rss_mb=proc_memory_mb(pid),
            learner_rss_mb=max((proc_memory_mb(c) for c in child_pids(pid)), default=None),
            aggregates_rss_mb=proc_memory_mb(pids[1]) if len(pids) > 1 else None,
            offered_eps=rate,
            p50_ms=delays[len(delays) // 2] if delays else None,
            p99_ms=delays[min(len(delays) - 1, int(len(delays) * 0.99))] if delays else None,
            latency_samples=len(delays),
        )
    span.close()
    return result


def sum_cpu(counters: Sequence[SpanCpu], count: int) -> float | None:
    """The CPU per record of several processes together (``None`` when any is unknown)."""
    each = [c.per_record(count) for c in counters]
    return None if any(x is None for x in each) else sum(x for x in each if x is not None)


def worker_metrics(port: int) -> dict[str, Any]:
    """Event-loop stalls (> 100 ms) and the longest lag the worker saw, from its /metrics."""
    import urllib.request

    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    except OSError:
        return {"loop_stalls": None}
    values = dict(line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#"))
    stalls = values.get("stream_event_loop_stalls_total")
    return {"loop_stalls": int(float(stalls)) if stalls is not None else None}


BENCH_AGENTS = ("naive", "floor", "peer")


def agent_module(name: str) -> str:
    """The module a bench agent runs as (``python -m``).

    >>> agent_module("naive")
    'stream.tools.bench_naive'
    """
    return f"{__package__}.bench_{name}"


def bench_agent(
    settings: Settings,
    events: Sequence[dict[str, Any]],
    want: int,
    out_dir: Path,
    name: str,
    broker_pid: int | None = None,
) -> dict[str, Any]:
    """Run ``python -m stream.bench_<name>`` (a Faust app publishing to ``BENCH_OUTPUT``) on the events;
    with ``broker_pid``, the broker's CPU per output record is measured over the same span."""
    s = unique(settings, name)
    output = f"bench.{name}-out.{uuid.uuid4().hex[:6]}"
    produce(s, events, progress=False)
    span = Span(s, output)
    with open(out_dir / f"{name}.log", "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", agent_module(name)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**settings_env(s), "BENCH_OUTPUT": output},
        )
    try:
        agent_cpu, broker_cpu = SpanCpu(proc.pid), SpanCpu(broker_pid)
        follow(
            span,
            want,
            timeout=900,
            on_first=SpanCpu.start_all(agent_cpu, broker_cpu),  # CPU counted from the first output
            alive=lambda: proc.poll() is None,
        )
        cpu_us, broker_us = agent_cpu.per_record(span.count), broker_cpu.per_record(span.count)
        rss = proc_memory_mb(proc.pid)
    finally:
        stop_process(proc, timeout=30)
        span.close()
    return {
        "eps": span.eps(),
        "events": span.count,
        "cpu_us": cpu_us,
        "broker_cpu_us": broker_us,
        "rss_mb": rss,
        "topic": output,
    }


async def _limit_loop(s: Settings, want: int, broker_pid: int | None = None) -> dict[str, Any]:
    """The worker's work in one plain loop: each fetch processed and learned at once, and, every
    ``STREAM_AGGREGATE_INTERVAL`` as in the worker, the audience windows closed and the profiles
    updated in this process (no internal topics, no tables), their records sent with the predictions."""
    from stream.audience.aggregator import Aggregator
    from stream.audience.profiles import ProfileBook
    from stream.audience.rules import configured_rules
    from stream.pipeline.processor import Processor
    from stream.pipeline.records import Message

    consumer = aio_consumer(
        s,
        s.topic_posts,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_wait_ms=50,
    )
    producer = aio_producer(s, linger_ms=5)
    await consumer.start()
    await producer.start()
    proc = Processor(s)
    aggregator = Aggregator.from_settings({}, s, configured_rules(s), proc.stats)
    book = ProfileBook.from_settings({}, s, proc.view.is_erased)
    aggregated = 0  # the offset of the next aggregates, per internal partition alike

    async def aggregate() -> None:
        nonlocal aggregated
        out = proc.drain_aggregates()
        for partition, value in out.partials:
            records, triggers = aggregator.on_record(partition, aggregated, value).keyed()
            for topic, keyed in ((s.topic_audience, records), (s.topic_triggers, triggers)):
                for key, record in keyed:
                    await producer.send(topic, record, key=key)
        for _, value in out.profile_updates:
            for key, profile in book.apply_record(value, aggregated):
                await producer.send(s.topic_profiles, profile, key=key)
        aggregated += 1

    done, started, cpu0 = 0, None, 0.0
    broker_cpu = SpanCpu(broker_pid)
    idle_since = next_aggregate = time.monotonic()
    try:
        while done < want and time.monotonic() - idle_since < 15:
            batches = await consumer.getmany(timeout_ms=200, max_records=2000)
            if not batches:
                continue
            idle_since = time.monotonic()
            if started is None:
                started, cpu0 = time.perf_counter(), time.process_time()
                broker_cpu.start()
            for records in batches.values():
                messages = [Message(r.value, r.key, r.topic, r.partition, r.offset, r.timestamp) for r in records]
                for i in range(0, len(messages), 256):
                    out = proc.run_locally(proc.process_posts(messages[i : i + 256]))
                    for key, value in out.predictions:
                        await producer.send(s.topic_predictions, value, key=key)
                    done += len(out.predictions)
            if time.monotonic() >= next_aggregate or done >= want:
                await aggregate()
                next_aggregate = time.monotonic() + s.aggregate_interval
        await producer.flush()
        seconds = time.perf_counter() - (started or time.perf_counter())
        return {
            "eps": done / seconds if seconds > 0 else 0.0,
            "events": done,
            "cpu_us": (time.process_time() - cpu0) / max(1, done) * 1e6,
            "broker_cpu_us": broker_cpu.per_record(done),
        }
    finally:
        await consumer.stop()
        await producer.stop()


def bench_limit(
    settings: Settings, events: Sequence[dict[str, Any]], want: int, broker_pid: int | None = None
) -> dict[str, Any]:
    s = unique(settings, "limit")
    produce(s, events, progress=False)
    before = proc_memory_mb()
    result = asyncio.run(_limit_loop(s, want, broker_pid))
    result["rss_mb"] = proc_memory_mb()
    result["rss_mb_before"] = before
    return result


def run_bench(
    settings: Settings,
    n_events: int,
    out_dir: Path,
    rate: float | None = None,
    repeat: int = 1,
    layout: str = "single",
) -> dict[str, Any]:
    """The runs on ``n_events`` demo tweets; returns the figures (also ``out_dir/bench.json``).
    Latency is measured at ``rate`` posts/s (default: half the pipeline's throughput). The pipeline
    runs in ``layout``: ``single``, one ``all`` worker; ``split``, a ``posts`` and an ``aggregates``
    worker (see ``STREAM_ROLE``).

    The pipeline and the peer run ``repeat`` times, one right after the other (on a shared host their
    speed moves by a fifth within minutes: each pair meets the same host); ``pairs`` lists every pair,
    and the headline figures are the medians (of an even number, the lower middle one: a figure some run
    gave); the pair whose speedup is the median gives ``pipeline``, ``peer``, ``p50_ms`` and ``p99_ms``."""
    from stream.tools.data import tweets_stream

    out_dir.mkdir(parents=True, exist_ok=True)
    base = tweets_stream()
    events = (
        base[:n_events]
        if n_events <= len(base)
        else [*base, *relabel([base[i % len(base)] for i in range(n_events - len(base))], "x", 1_600_000_000_000)]
    )
    want, stages = expected_outputs(settings, events)
    with_peer = importlib.util.find_spec("quixstreams") is not None
    with ExitStack() as stack:
        broker: EmbeddedBroker | None = None
        if settings.broker is None:
            broker = stack.enter_context(EmbeddedBroker(log_file=out_dir / "broker.log"))
            settings = settings.replace(broker=broker.bootstrap)
        settings = settings.replace(data_dir=str(out_dir / "data"))
        print(f"bench: {n_events} events ({want} predictions each run) on {settings.broker}", file=sys.stderr)
        broker_pid = broker.pid if broker else None
        limit = bench_limit(settings, events, want, broker_pid)
        print(f"bench: limit {limit['eps']:,.0f} events/s", file=sys.stderr)
        if not with_peer:
            print(
                "bench: peer skipped: Quix Streams is not installed (pip install 'interest-stream[dev]')",
                file=sys.stderr,
            )
        runs: list[tuple[dict[str, Any], dict[str, Any] | None]] = []
        for _ in range(repeat):
            pipeline = bench_pipeline(settings, events, want, out_dir, rate, broker_pid, layout)
            print(f"bench: pipeline {pipeline['eps']:,.0f} events/s", file=sys.stderr)
            peer = bench_agent(settings, events, len(events), out_dir, "peer", broker_pid) if with_peer else None
            if peer is not None:
                print(f"bench: peer {peer['eps']:,.0f} events/s", file=sys.stderr)
            runs.append((pipeline, peer))
        naive = bench_agent(settings, events, want, out_dir, "naive", broker_pid)
        print(f"bench: naive {naive['eps']:,.0f} events/s", file=sys.stderr)
        floor = bench_agent(settings, events, len(events), out_dir, "floor", broker_pid)
        print(f"bench: floor {floor['eps']:,.0f} events/s", file=sys.stderr)
    report = {
        "events": n_events,
        "predictions": want,
        "layout": layout,
        **summarize(runs, limit, naive, floor),
        "stages_us": stages,
    }
    (out_dir / "bench.json").write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    return report


def summarize(
    runs: Sequence[tuple[dict[str, Any], dict[str, Any] | None]],
    limit: dict[str, Any],
    naive: dict[str, Any],
    floor: dict[str, Any],
) -> dict[str, Any]:
    """The report's figures from the runs: each (pipeline, peer) pair (the peer ``None`` when skipped)
    and the runs made once. The medians are the lower middle ones of an even number: figures some run
    gave.

    >>> run = {"eps": 300.0, "cpu_us": 250.0, "p50_ms": 40, "p99_ms": 120, "offered_eps": 150.0, "rss_mb": 180.0}
    >>> other = {"eps": 100.0}
    >>> r = summarize([(run, {"eps": 200.0, "cpu_us": 1.0}), ({**run, "eps": 150.0}, {"eps": 100.0, "cpu_us": 1.0})],
    ...               other, other, other)
    >>> r["speedup_vs_peer"], r["pipeline_eps"], r["pipeline"]["eps"], r["fraction_of_limit"]
    (1.5, 150.0, 300.0, 1.5)
    """
    pairs = [pair_figures(pipeline, peer) for pipeline, peer in runs]
    pipeline, peer = runs[median_pair(pairs)]
    pipeline_eps = statistics.median_low(p["pipeline_eps"] for p in pairs)
    speedups = [p["speedup_vs_peer"] for p in pairs if p["speedup_vs_peer"] is not None]
    return {
        "repeat": len(pairs),
        "pipeline_eps": pipeline_eps,
        "naive_eps": naive["eps"],
        "limit_eps": limit["eps"],
        "floor_eps": floor["eps"],
        "peer_eps": statistics.median_low(p["peer_eps"] for p in pairs) if speedups else None,
        "speedup_vs_peer": statistics.median_low(speedups) if speedups else None,
        "speedup_vs_naive": pipeline_eps / naive["eps"] if naive["eps"] else None,
        "fraction_of_limit": pipeline_eps / limit["eps"] if limit["eps"] else None,
        "fraction_of_floor": pipeline_eps / floor["eps"] if floor["eps"] else None,
        "p50_ms": pipeline["p50_ms"],
        "p99_ms": pipeline["p99_ms"],
        "rss_mb": max(p["rss_mb"] for p in pairs),
        "loop_stalls": sum_or_none(p["loop_stalls"] for p in pairs),
        "pairs": pairs,
        "pipeline": pipeline,
        "naive": naive,
        "limit": limit,
        "floor": floor,
        "peer": peer,
    }


def pair_figures(pipeline: dict[str, Any], peer: dict[str, Any] | None) -> dict[str, Any]:
    """The figures of one pipeline run and the peer run after it.

    >>> pair_figures({"eps": 300.0, "cpu_us": 250.0, "p50_ms": 40, "p99_ms": 120, "offered_eps": 150.0,
    ...               "rss_mb": 180.0, "loop_stalls": 0}, {"eps": 200.0, "cpu_us": 260.0})["speedup_vs_peer"]
    1.5
    """
    return {
        "pipeline_eps": pipeline["eps"],
        "peer_eps": peer["eps"] if peer else None,
        "speedup_vs_peer": pipeline["eps"] / peer["eps"] if peer and peer["eps"] else None,
        "offered_eps": pipeline["offered_eps"],
        "p50_ms": pipeline["p50_ms"],
        "p99_ms": pipeline["p99_ms"],
        "cpu_us": pipeline["cpu_us"],
        "peer_cpu_us": peer["cpu_us"] if peer else None,
        "broker_cpu_us": pipeline.get("broker_cpu_us"),
        "rss_mb": pipeline["rss_mb"],
        "loop_stalls": pipeline.get("loop_stalls"),
    }


def median_pair(pairs: Sequence[Mapping[str, Any]]) -> int:
    """The index of the pair whose speedup is the median (the lower of the two middle ones), or whose
    pipeline throughput is, without a peer.

    >>> median_pair([{"speedup_vs_peer": 1.3}, {"speedup_vs_peer": 0.9}, {"speedup_vs_peer": 1.1}])
    2
    >>> median_pair([{"speedup_vs_peer": None, "pipeline_eps": e} for e in (5.0, 3.0, 4.0, 6.0)])
    2
    """
    key = "speedup_vs_peer" if all(p["speedup_vs_peer"] is not None for p in pairs) else "pipeline_eps"
    ranked = sorted(range(len(pairs)), key=lambda i: pairs[i][key])
    return ranked[(len(ranked) - 1) // 2]


def sum_or_none(values: Iterable[int | None]) -> int | None:
    """The sum, or ``None`` when any value is unknown.

    >>> sum_or_none([0, 2]), sum_or_none([1, None])
    (2, None)
    """
    total = 0
    for v in values:
        if v is None:
            return None
        total += v
    return total


def memory_run(
    settings: Settings,
    n_events: int,
    labelled: float = 0.3,
    reports: int = 10,
    audience: bool = False,
    distinct: bool = False,
) -> list[dict[str, Any]]:
    """RSS of the worker's processor and learner (offline, no Kafka) along a long stream: the demo
    tweets over and over, each pass with new ids and one extra word (so that nothing is dropped as a
    duplicate), ``labelled`` of them with their label, the rest never labelled (their features wait
    in the pending store until its capacity or TTL drops them). With ``audience``, the audience
    aggregator (a dict as its table) takes the partials too; with ``distinct``, each post also has a
    campaign and a hashtag of its own (a flood of one-off names; implies ``audience``). Returns the RSS
    every ``n_events / reports`` events, then after a :func:`gc.collect`."""
    import gc

    from stream.audience.aggregator import Aggregator
    from stream.audience.spikes import SpikeParams
    from stream.audience.windows import WindowSpec
    from stream.pipeline.processor import Processor
    from stream.pipeline.records import Message
    from stream.tools.data import tweets_stream

    base = tweets_stream()
    proc = Processor(settings)
    table: dict[str, Any] = {}
    aggregator = Aggregator(table, WindowSpec.from_settings(settings), SpikeParams(), (), proc.stats)
    offsets: dict[int, int] = {}
    audience = audience or distinct
    rows, step, batch = [], max(1, n_events // reports), []
    start = time.perf_counter()
    for i in range(n_events):
        e = base[i % len(base)]
        cycle = i // len(base)
        event = {
            **e,
            "id": f"m{i}",
            "text": f"{e['text']} v{cycle}",
            "created_at": e["created_at"] + cycle * 86_400_000,
        }
        if distinct:
            event["campaign"], event["hashtags"] = f"brand-{i}", [f"tag{i}"]
        if (i * 7919) % 1000 >= labelled * 1000:
            event.pop("interest", None)
            event.pop("sentiment", None)
        batch.append(Message(orjson.dumps(event)))
        if len(batch) == 32 or i == n_events - 1:
            proc.run_locally(proc.process_posts(batch))
            drained = proc.drain_aggregates()
            for partition, value in drained.partials if audience else ():
                offsets[partition] = offsets.get(partition, -1) + 1
                aggregator.on_record(partition, offsets[partition], value)
            batch = []
        if (i + 1) % step == 0 or i == n_events - 1:
            model = proc.model
            rows.append(
                {
                    "events": i + 1,
                    "rss_mb": proc_memory_mb(field="VmRSS"),
                    "pending": len(proc.joiner.pending),
                    "drifts": model.drifts,
                    "replayed": model.replay.replayed if model.replay is not None else 0,
                    "audience_rows": len(table),
                    "audience_series": len(proc.stats.audience.latest),
                    "seconds": time.perf_counter() - start,
                }
            )
            print(
                f"bench --memory: {i + 1:,} events, RSS {rows[-1]['rss_mb']:.0f} MB, "
                f"{rows[-1]['pending']:,} posts waiting for a label, {model.drifts} drifts"
                f"{f', {model.replay.replayed} posts replayed' if model.replay is not None else ''}",
                file=sys.stderr,
            )
    gc.collect()
    rows.append(
        {
            "events": n_events,
            "rss_mb": proc_memory_mb(field="VmRSS"),
            "pending": len(proc.joiner.pending),
            "after_gc": True,
            "seconds": time.perf_counter() - start,
        }
    )
    return rows


def format_memory(rows: list[dict[str, Any]]) -> str:
    """The RSS of :func:`memory_run` at its first report, its last, and after a garbage collection."""
    first, last, collected = rows[0], rows[-2], rows[-1]
    return (
        f"RSS after {first['events']:,} events: {first['rss_mb']:.0f} MB; after {last['events']:,}: "
        f"{last['rss_mb']:.0f} MB ({last['rss_mb'] / first['rss_mb'] - 1:+.0%}); after a garbage collection: "
        f"{collected['rss_mb']:.0f} MB; {last['events'] / last['seconds']:,.0f} events/s offline"
    )


def _maybe(value: float | None) -> str:
    """A figure rounded for the table, or ``-`` when it was not measured.

    >>> _maybe(12.6), _maybe(None)
    ('13', '-')
    """
    return "-" if value is None else f"{value:,.0f}"


def format_bench(r: dict[str, Any]) -> str:
    rows = [
        (
            "pipeline (posts + aggregates)" if r.get("layout") == "split" else "pipeline (worker as shipped)",
            r["pipeline"],
        ),
        ("naive Faust agent", r["naive"]),
        ("limit (plain aiokafka loop)", r["limit"]),
        ("floor (Faust, forward only)", r["floor"]),
        *([("peer (Quix Streams + River)", r["peer"])] if r.get("peer") else []),
    ]
    lines = [
        f"{'run':30} {'events/s':>9} {'CPU µs/event':>13} {'broker µs/event':>16} {'peak RSS MB':>12} {'outputs':>8}"
    ]
    lines += [
        f"{name:30} {x['eps']:9,.0f} {x['cpu_us']:13,.0f} {_maybe(x.get('broker_cpu_us')):>16} {x['rss_mb']:12.0f} "
        f"{x['events']:8d}"
        for name, x in rows
    ]
    p = r["pipeline"]
    split = r.get("layout") == "split"
    worker = "the posts worker" if split else "the worker process"
    pairs = r.get("pairs") or []
    if len(pairs) > 1:
        lines.append(f"the pipeline and the peer, {len(pairs)} pairs one after another (the table: the median pair):")
        lines += [
            f"  {i}: pipeline {x['pipeline_eps']:,.0f} posts/s ({x['cpu_us']:,.0f} µs/post), "
            + (
                f"peer {x['peer_eps']:,.0f} ({x['peer_cpu_us']:,.0f} µs/post), {x['speedup_vs_peer']:.2f}x; "
                if x["speedup_vs_peer"] is not None
                else ""
            )
            + f"p50 {x['p50_ms']} ms, p99 {x['p99_ms']} ms at {x['offered_eps']:,.0f} posts/s"
            for i, x in enumerate(pairs, 1)
        ]
    if r.get("speedup_vs_peer") is not None:
        median = f" (median of {len(pairs)} pairs)" if len(pairs) > 1 else ""
        lines.append(f"pipeline / peer: {r['speedup_vs_peer']:.2f}x{median}")
    lines.append(
        f"pipeline / naive: {r['speedup_vs_naive']:.2f}x    pipeline / limit: {r['fraction_of_limit']:.2f}"
        f"    pipeline / floor: {r['fraction_of_floor']:.2f}"
    )
    lines.append(
        f"pipeline latency at {p['offered_eps']:,.0f} posts/s offered, "
        f"post → prediction: p50 {p['p50_ms']} ms, p99 {p['p99_ms']} ms ({p['latency_samples']} posts; "
        f"{'the workers' if split else 'the worker'} needed {p['settle_s']:.0f} s after its last backlog prediction "
        "to go idle)"
    )
    if p.get("cpu_share"):
        shares = p["cpu_share"]
        lines.append(
            "CPU during the fixed load, in cores: "
            + ", ".join(f"{k} {v:.2f}" for k, v in shares.items())
            + f" (the worker's with its learner process; the load sent with {p['load_client']})"
        )
    if p.get("cpu_wait"):
        lines.append(
            "waiting for a CPU meanwhile (ready to run, none free), in cores: "
            + ", ".join(f"{k} {v:.2f}" for k, v in p["cpu_wait"].items())
        )
    if p.get("worker_cpu_us") is not None:
        aggregates = p.get("aggregates_cpu_us") or 0.0
        lines.append(
            f"pipeline CPU per post in the backlog: {worker} {p['worker_cpu_us']:,.0f} µs (its event loop "
            f"and client threads: the throughput's bound), its learner process "
            f"{p['cpu_us'] - p['worker_cpu_us'] - aggregates:,.0f} µs"
            + (f", the aggregates worker {aggregates:,.0f} µs" if p.get("aggregates_cpu_us") is not None else "")
        )
    lines.append(
        f"pipeline CPU per post with the learner caught up (it learns behind the predictions): "
        f"{p['cpu_us_settled']:,.0f} µs; event-loop stalls over 100 ms (backlog and fixed load): {p.get('loop_stalls')}"
    )
    lines.append(
        "per-stage cost in this process (µs/event): " + ", ".join(f"{k} {v:.0f}" for k, v in r["stages_us"].items())
    )
    lines.append(
        f"(the pipeline's RSS is {worker}'s; its learner process peaked at "
        f"{p.get('learner_rss_mb') or 0:.0f} MB"
        + (f", the aggregates worker at {p['aggregates_rss_mb']:.0f} MB" if p.get("aggregates_rss_mb") else "")
        + "; limit's RSS is this process's peak, broker clients and data included)"
    )
    return "\n".join(lines)
