"""Replay post events into the input topic (kafka-python), with rate limiting and progress."""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TextIO

import orjson
from kafka import KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from stream.clients import kafka_admin, kafka_producer
from stream.settings import Settings
from stream.tools.broker import BrokerError
from stream.tools.data import with_feedback
from stream.worker.topics import TOPIC_CONFIGS, topic_config

log = logging.getLogger(__name__)


class Progress:
    """A progress bar on a terminal, a line every 10 % elsewhere (logs stay readable)."""

    def __init__(
        self, total: int | None, label: str, out: TextIO = sys.stderr, enabled: bool = True, start: float | None = None
    ):
        self.total = total
        self.label = label
        self.out = out
        self.enabled = enabled
        self.tty = out.isatty()
        self.start = time.monotonic() if start is None else start  # rates count from here
        self._last = 0.0
        self._last_decile = -1

    def update(self, done: int, extra: str = "", force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        rate = done / max(now - self.start, 1e-9)
        frac = done / self.total if self.total else 0.0
        if self.tty:
            if not force and now - self._last < 0.1:
                return
            self._last = now
            bar = "#" * int(frac * 30)
            total = f"/{self.total}" if self.total else ""
            self.out.write(f"\r{self.label} [{bar:<30}] {done}{total} {rate:,.0f}/s {extra}  ")
            self.out.flush()
        else:
            decile = int(frac * 10)
            if force or decile > self._last_decile:
                self._last_decile = decile
                self.out.write(f"{self.label}: {done}/{self.total or '?'} ({rate:,.0f}/s) {extra}\n")
                self.out.flush()

    def close(self, done: int, extra: str = "") -> None:
        self.update(done, extra, force=True)
        if self.enabled and self.tty:
            self.out.write("\n")


def ensure_topics(settings: Settings, names: Iterable[str], partitions: int | None = None) -> None:
    """Create the topics that do not exist yet (with the configured partitions)."""
    admin = kafka_admin(settings, client_id="interest-stream-admin")
    try:
        existing = set(admin.list_topics())
        configs = {getattr(settings, f): topic_config(settings, f) for f in TOPIC_CONFIGS}
        new = [
            NewTopic(n, partitions or settings.partitions, settings.replication, topic_configs=configs.get(n, {}))
            for n in dict.fromkeys(names)
            if n not in existing
        ]
        if new:
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(new)
    finally:
        admin.close()


def make_producer(settings: Settings) -> KafkaProducer:
    return kafka_producer(
        settings,
        linger_ms=5,
        batch_size=256 * 1024,
        client_id="interest-stream-producer",
    )


def pace(start: float, sent: int, rate: float) -> None:
    """Sleep until the next post is due: ``sent`` posts at ``rate`` per second since ``start``
    (``time.monotonic``)."""
    ahead = sent / rate - (time.monotonic() - start)
    if ahead > 0:
        time.sleep(ahead)


@dataclass
class Sent:
    posts: int = 0
    feedback: int = 0
    seconds: float = 0.0
    failed: int = 0  # records the broker did not take (after the client's retries)
    error: str | None = None  # the first of their errors

    def undelivered(self, exc: BaseException) -> None:
        """A send's error callback: count the record, keep the first error."""
        self.failed += 1
        if self.error is None:
            name, text = type(exc).__name__, str(exc)
            self.error = text if text.startswith(name) else f"{name}: {text}"  # Kafka errors name themselves


def produce(
    settings: Settings,
    events: Iterable[dict[str, Any] | bytes],
    *,
    rate: float | None = None,
    limit: int | None = None,
    feedback_fraction: float = 0.0,
    feedback_delay: int = 200,
    progress: bool = True,
    total: int | None = None,
) -> Sent:
    """Send ``events`` (dicts are JSON-encoded, bytes sent as they are) to the posts topic, keyed
    by post id; with ``feedback_fraction``, that share of labels goes to the feedback topic later.
    Raises :class:`~stream.tools.broker.BrokerError` (one line) if the broker did not take every record."""
    try:
        ensure_topics(settings, [settings.topic_posts, settings.topic_feedback])
        producer = make_producer(settings)
    except KafkaError as exc:
        raise BrokerError(f"cannot reach the broker at {settings.broker}: {exc}") from None
    sent = Sent()
    bar = Progress(min(total, limit) if total and limit else (limit or total), "produce", enabled=progress)
    start = time.monotonic()

    def capped() -> Iterable[dict[str, Any] | bytes]:
        for i, e in enumerate(events):
            if limit is not None and i >= limit:
                return
            yield e

    try:
        for kind, event in with_feedback(capped(), feedback_fraction, feedback_delay):
            if isinstance(event, bytes):
                key, value = None, event
            else:
                ident = event.get("post_id" if kind == "feedback" else "id")
                key = str(ident).encode() if ident is not None else None
                value = orjson.dumps(event)
            topic = settings.topic_feedback if kind == "feedback" else settings.topic_posts
            producer.send(topic, key=key, value=value).add_errback(sent.undelivered)
            if kind == "feedback":
                sent.feedback += 1
                continue
            sent.posts += 1
            bar.update(sent.posts)
            if rate:
                pace(start, sent.posts, rate)
        producer.flush()
    except KafkaError as exc:
        raise BrokerError(f"could not produce to {settings.broker}: {exc}") from None
    finally:
        producer.close()
    sent.seconds = time.monotonic() - start
    bar.close(sent.posts, f"(+{sent.feedback} feedback)")
    if sent.failed:
        raise BrokerError(
            f"{sent.failed} of {sent.posts + sent.feedback} records were not delivered to {settings.broker} "
            f"({sent.error})"
        )
    return sent
