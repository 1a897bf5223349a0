"""``interest-stream demo``: embedded broker + one worker process + a replay of real tweets.

Everything the summary shows is read back from Kafka: the worker's own figures from the
metrics topic, and the predictions and dead letters counted on their topics.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import orjson
from kafka import TopicPartition

from stream.clients import kafka_consumer
from stream.settings import PREFIX, Settings, settings_env
from stream.tools.broker import EmbeddedBroker, free_port, stop_process
from stream.tools.data import inject_faults, tweets_stream
from stream.tools.produce import Progress, produce
from stream.tools.report import write_png

log = logging.getLogger(__name__)


class DemoError(RuntimeError):
    """The demo could not complete; the message is one line."""


class WorkerProcess:
    """``interest-stream worker`` in a child process, logging to a file."""

    def __init__(self, settings: Settings, log_file: Path):
        self.settings = settings
        self.log_file = log_file
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        with open(self.log_file, "ab") as out:  # the child keeps its own copy of the handle
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "stream", "worker"],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=settings_env(self.settings),
            )
        return self

    def wait_ready(self, timeout: float = 90.0, learner: bool = False) -> None:
        """Block until the worker's ``/ready`` says it consumes its partitions (and, with ``learner``,
        that it holds the learner role and has caught up: a worker alone in its group takes it)."""
        url = f"http://{self.settings.web_host}:{self.settings.web_port}/ready"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise DemoError(f"the worker exited with code {self.proc.returncode}; see {self.log_file}")
            try:
                state = orjson.loads(urllib.request.urlopen(url, timeout=1).read())
                if not learner or state.get("learner"):
                    return
            except (OSError, orjson.JSONDecodeError):
                pass
            time.sleep(0.2)
        raise DemoError(f"the worker was not ready ({url}) within {timeout:.0f} s; see {self.log_file}")

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.proc is None:
            return None
        return stop_process(self.proc, timeout)

    def __enter__(self) -> WorkerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class TopicReader:
    """Reads a topic from the beginning, without a consumer group."""

    def __init__(self, settings: Settings, topic: str):
        self.consumer = kafka_consumer(
            settings,
            topic,
            group_id=None,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            consumer_timeout_ms=200,
            client_id=f"demo-reader-{topic}",
        )

        self.ends: dict[TopicPartition, int] = {}
        partitions = self.consumer.partitions_for_topic(topic) or set()
        if partitions:
            self.ends = self.consumer.end_offsets([TopicPartition(topic, p) for p in partitions])

    def caught_up(self) -> bool:
        """Read up to the end offsets the topic had when the reader started."""
        assigned = self.consumer.assignment()
        return all(tp in assigned and self.consumer.position(tp) >= end for tp, end in self.ends.items() if end)

    def poll(self) -> list[bytes]:
        batches = self.consumer.poll(timeout_ms=200, max_records=10_000)
        return [r.value for records in batches.values() for r in records]

    def close(self) -> None:
        self.consumer.close()


def wait_processed(
    settings: Settings,
    sent_posts: int,
    sent_feedback: int,
    timeout: float,
    progress: bool = True,
    since: float | None = None,
    collect: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Follow the metrics topic until the worker has seen every post and feedback sent and its
    counts stand still for one interval (records redelivered after a rebalance are counted too).
    Returns the last snapshot; every snapshot read is appended to ``collect``."""
    reader = TopicReader(settings, settings.topic_metrics)
    bar = Progress(sent_posts, "process", enabled=progress, start=since)
    last: dict[str, Any] = {}
    previous: dict[str, Any] | None = None
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            for value in reader.poll():
                record = orjson.loads(value)
                if record.get("type") != "metrics":
                    continue  # a drift event
                previous, last = last.get("counts"), record
                if collect is not None:
                    collect.append(last)
            counts = last.get("counts", {})
            done = counts.get("posts_in", 0)
            bar.update(done, f"predicted {counts.get('predicted', 0)}")
            if done >= sent_posts and counts.get("feedback_in", 0) >= sent_feedback and previous == counts:
                bar.close(done, f"predicted {counts.get('predicted', 0)}")
                return last
    finally:
        reader.close()
    raise DemoError(
        f"the worker did not process all {sent_posts} posts within {timeout:.0f} s "
        f"(last snapshot: {last.get('counts')})"
    )


def read_outputs(settings: Settings, expect_predictions: int) -> tuple[Counter[str], Counter[str]]:
    """Prediction post ids (with repeats) and dead letters by reason, read back from their topics."""
    predictions = read_records(settings, settings.topic_predictions, at_least=expect_predictions)
    letters = read_records(settings, settings.topic_dlq)
    return (
        Counter(r["post_id"] for r in predictions if r is not None),
        Counter(r["reason"] for r in letters if r is not None),
    )


def read_records(
    settings: Settings, topic: str, quiet_polls: int = 5, at_least: int = 0, keys: bool = False
) -> list[Any]:
    """Every record of ``topic`` as JSON (``None`` for a tombstone; ``(key, value)`` pairs with
    ``keys``), read up to the end the topic had at the call, and on until ``at_least`` came and the
    topic has been quiet for ``quiet_polls`` polls."""
    reader = TopicReader(settings, topic)
    records: list[Any] = []
    idle, deadline = 0, time.monotonic() + 60
    try:
        while (idle < quiet_polls or len(records) < at_least or not reader.caught_up()) and time.monotonic() < deadline:
            got = [m for batch in reader.consumer.poll(timeout_ms=200, max_records=10_000).values() for m in batch]
            idle = 0 if got else idle + 1
            for m in got:
                value = None if m.value is None else orjson.loads(m.value)
                records.append((m.key, value) if keys else value)
    finally:
        reader.close()
    return records


def audience_summary(settings: Settings) -> dict[str, Any]:
    """Triggers, spikes, windows and profiles read back from their topics."""
    triggers: dict[str, dict[str, Any]] = {}
    for t in read_records(settings, settings.topic_triggers):
        if t is not None:
            triggers.setdefault(t["id"], t)  # a redelivered trigger has the same id
    windows = spikes = 0
    sentiment: dict[str, list[float]] = {}
    for r in read_records(settings, settings.topic_audience):
        if r is None:
            continue
        if r["type"] == "spike":
            spikes += 1
            continue
        windows += 1
        if r["kind"] == "tumbling" and r["segment"].startswith("interest:") and r["mean_sentiment"] is not None:
            acc = sentiment.setdefault(r["segment"].split(":", 1)[1], [0.0, 0.0])
            acc[0] += r["mean_sentiment"] * r["volume"]
            acc[1] += r["volume"]
    profiles: dict[str, bool] = {}
    for r in read_records(settings, settings.topic_profiles):
        if r is not None:
            profiles[r["user_id"]] = True
    by_rule = Counter(t["rule"] for t in triggers.values())
    return {
        "triggers_fired": len(triggers),
        "triggers_by_rule": dict(by_rule),
        "triggers": sorted(triggers.values(), key=lambda t: t["window"]["end"]),
        "windows_published": windows,
        "spikes": spikes,
        "mean_sentiment_by_interest": {k: round(v[0] / v[1], 4) for k, v in sorted(sentiment.items()) if v[1]},
        "users_profiled": len(profiles),
    }


def build_report(
    snapshot: dict[str, Any],
    sent: Any,
    pred_ids: Counter[str],
    reasons: Counter[str],
    wall_s: float,
    audience: dict[str, Any] | None = None,
) -> dict[str, Any]:
    counts = snapshot.get("counts", {})
    quality = snapshot.get("quality", {})
    sentiment_q = snapshot.get("sentiment_quality", {})
    lexicon_q = snapshot.get("lexicon_quality", {})
    return {
        "events_in": counts.get("posts_in", 0),
        "posts_sent": sent.posts,
        "feedback_sent": sent.feedback,
        "cleaned": counts.get("predicted", 0),
        "dead_lettered": dict(snapshot.get("dead_letters", {})),
        "dead_letters_on_topic": dict(reasons),
        "duplicates_dropped": dict(snapshot.get("duplicates", {})),
        "predictions": counts.get("predicted", 0),
        "predictions_on_topic": sum(pred_ids.values()),
        "distinct_posts_predicted": len(pred_ids),
        "labels_learned": {
            "inline": counts.get("learned_inline", 0),
            "feedback": counts.get("learned_feedback", 0),
            "early_feedback": counts.get("feedback_early", 0),
        },
        "prequential": {k: quality.get(k) for k in ("n", "accuracy", "macro_f1", "kappa")},
        "rolling": quality.get("rolling", {}),
        "model": snapshot.get("model", {}),
        "predicted_interest": snapshot.get("predicted_interest", {}),
        "events_per_s": snapshot.get("events_per_s", 0.0),
        "latency_ms": snapshot.get("latency", {}),
        "sentiment": {
            "n": sentiment_q.get("n", 0),
            "accuracy": sentiment_q.get("accuracy", 0.0),
            "macro_f1": sentiment_q.get("macro_f1", 0.0),
            "lexicon_accuracy": lexicon_q.get("accuracy", 0.0),
            "lexicon_macro_f1": lexicon_q.get("macro_f1", 0.0),
            "predicted": snapshot.get("predicted_sentiment", {}),
        },
        "audience": audience or {},
        "wall_seconds": wall_s,
    }


def format_report(r: dict[str, Any]) -> str:
    q, roll, model = r["prequential"], r["rolling"], r["model"]
    rows = [
        ("posts sent (+ feedback)", f"{r['posts_sent']} (+{r['feedback_sent']})"),
        ("events in", r["events_in"]),
        ("cleaned and predicted", r["predictions"]),
        ("dead-lettered", ", ".join(f"{k} {v}" for k, v in sorted(r["dead_lettered"].items())) or "0"),
        ("duplicates dropped", ", ".join(f"{k} {v}" for k, v in sorted(r["duplicates_dropped"].items())) or "0"),
        ("predictions on topic (distinct)", f"{r['predictions_on_topic']} ({r['distinct_posts_predicted']})"),
        ("labels learned inline / feedback", f"{r['labels_learned']['inline']} / {r['labels_learned']['feedback']}"),
        ("prequential accuracy", f"{q['accuracy']:.4f}  (last {roll.get('window')}: {roll.get('accuracy', 0):.4f})"),
        ("prequential macro-F1", f"{q['macro_f1']:.4f}  (last {roll.get('window')}: {roll.get('macro_f1', 0):.4f})"),
        ("prequential kappa", f"{q['kappa']:.4f}  (last {roll.get('window')}: {roll.get('kappa', 0):.4f})"),
        (
            "model",
            f"{model.get('name')} v{model.get('version')}, classes {', '.join(model.get('classes', []))}",
        ),
        (
            "sentiment macro-F1 (lexicon)",
            f"{r['sentiment']['macro_f1']:.4f} ({r['sentiment']['lexicon_macro_f1']:.4f})"
            f"  on {r['sentiment']['n']} labels",
        ),
        (
            "mean sentiment by interest",
            ", ".join(f"{k} {v:+.2f}" for k, v in r["audience"].get("mean_sentiment_by_interest", {}).items()),
        ),
        (
            "windows / spikes published",
            f"{r['audience'].get('windows_published', 0)} / {r['audience'].get('spikes', 0)}",
        ),
        (
            "campaign triggers fired",
            f"{r['audience'].get('triggers_fired', 0)}  "
            + ", ".join(f"{k} {v}" for k, v in sorted(r["audience"].get("triggers_by_rule", {}).items())),
        ),
        ("users profiled", r["audience"].get("users_profiled", 0)),
        ("events/s (worker)", f"{r['events_per_s']:,.0f}"),
        ("latency p50 / p99 (ms)", f"{r['latency_ms'].get('p50_ms', 0):.0f} / {r['latency_ms'].get('p99_ms', 0):.0f}"),
        ("wall time (s)", f"{r['wall_seconds']:.1f}"),
    ]
    width = max(len(k) for k, _ in rows)
    line = "-" * (width + 50)
    fired = [
        f"  {t['rule']} -> {t['campaign']} on {t['segment']}, {t['window']['kind']} window ending "
        f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime(t['window']['end'] / 1000))} UTC: "
        + ", ".join(f"{k} {v}" for k, v in t["figures"].items())
        for t in r["audience"].get("triggers", [])[:12]
    ]
    more = len(r["audience"].get("triggers", [])) - len(fired)
    if fired:
        fired = ["campaign triggers (event time of the replayed tweets):", *fired] + (
            [f"  ... and {more} more"] if more > 0 else []
        )
    return "\n".join([line, *(f"{k:<{width}}  {v}" for k, v in rows), *fired, line])


EXAMPLE_RULES = Path(__file__).resolve().parents[2] / "ops" / "triggers" / "rules.toml"
REPLAY_LATENESS_S = 300  # the replay compresses ~400 s of event time into a second


def demo_overrides(settings: Settings, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """What the demo changes unless the user set it: the example trigger rules, and an allowed
    lateness that suits a replay (posts from different partitions are minutes of event time apart)."""
    env = os.environ if env is None else env
    changes: dict[str, Any] = {}
    if settings.trigger_rules is None and EXAMPLE_RULES.exists():
        changes["trigger_rules"] = str(EXAMPLE_RULES)
    if PREFIX + "WINDOW_LATENESS" not in env:
        changes["window_lateness"] = REPLAY_LATENESS_S
    return changes


def run_demo(
    settings: Settings,
    events: int | None,
    out_dir: Path,
    rate: float | None = 400.0,
    fault_rate: float = 0.005,
    feedback_fraction: float = 0.3,
    progress: bool = True,
    keep: bool = False,
) -> dict[str, Any]:
    """Run the whole demo; returns the report, also written to ``out_dir/report.json`` and drawn in
    ``out_dir/report.png``. With ``keep``, the broker and worker stay up (live page) until Ctrl-C."""
    settings = settings.replace(role="all")  # one worker runs every agent, whatever STREAM_ROLE says
    out_dir.mkdir(parents=True, exist_ok=True)
    wall = time.monotonic()
    stream = tweets_stream()[:events] if events else tweets_stream()
    with ExitStack() as stack:
        if settings.broker is None:
            broker = stack.enter_context(EmbeddedBroker(log_file=out_dir / "broker.log"))
            settings = settings.replace(broker=broker.bootstrap)
            print(f"embedded broker on {broker.bootstrap}", file=sys.stderr)
        else:  # a shared cluster: fresh topic and group names for this run
            run = uuid.uuid4().hex[:8]
            settings = settings.replace(
                app_id=f"{settings.app_id}-demo-{run}",
                **{
                    f.name: f"{getattr(settings, f.name)}.demo-{run}"
                    for f in dataclasses.fields(settings)
                    if f.name.startswith("topic_")
                },
            )
        settings = settings.replace(
            web_port=free_port(),
            metrics_interval=1.0,
            data_dir=str(out_dir / "worker-data"),
            **demo_overrides(settings),
        )
        worker = stack.enter_context(WorkerProcess(settings, out_dir / "worker.log"))
        worker.wait_ready(learner=True)
        web = f"http://{settings.web_host}:{settings.web_port}"
        print(
            f"live page: {web}/live   Prometheus metrics: {web}/metrics   (worker log: {out_dir / 'worker.log'})",
            file=sys.stderr,
        )
        started = time.monotonic()
        sent = produce(
            settings,
            inject_faults(stream, fault_rate),
            rate=rate,
            feedback_fraction=feedback_fraction,
            progress=progress,
            total=len(stream),
        )
        snapshots: list[dict[str, Any]] = []
        snapshot = wait_processed(
            settings, sent.posts, sent.feedback, timeout=300, progress=progress, since=started, collect=snapshots
        )
        pred_ids, reasons = read_outputs(settings, snapshot["counts"].get("predicted", 0))
        report = build_report(snapshot, sent, pred_ids, reasons, time.monotonic() - wall, audience_summary(settings))
        (out_dir / "report.json").write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
        write_png(snapshots, report, out_dir / "report.png")
        if keep:
            print(format_report(report))
            print(f"replay done; the live page stays up at {web}/live until Ctrl-C", file=sys.stderr)
            try:
                while worker.proc is not None and worker.proc.poll() is None:
                    time.sleep(1)
            except KeyboardInterrupt:
                pass
    return report
