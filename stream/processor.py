"""The whole per-event logic of the stream, as plain code that needs no Kafka.

The Faust agents hand batches of raw records to :class:`Processor` and publish what it returns;
``interest-stream evaluate`` and the tests call it directly. Each record goes
decode → validate → deduplicate → clean → featurize → predict → learn (label known) or wait for
feedback; every rejection is a dead letter with a reason and the original bytes.
"""
from __future__ import annotations

import base64
import time
import zlib
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import orjson

from models.evaluation import Prequential
from models.features import top_class
from models.online import Features, OnlineModel
from stream.cleaning import CleanPost, clean_post, retweet_key
from stream.events import Feedback, Post, Rejected, parse_feedback, parse_post
from stream.metrics import Stats
from stream.settings import Settings
from stream.state import RecentKeys, TTLStore

MIN_DUPLICATE_WORDS = 3  # shorter texts ("thank you!") are common, not copies


@dataclass(frozen=True, slots=True)
class Message:
    """A raw record as it came from Kafka."""

    value: bytes | None
    key: bytes | None = None
    topic: str = ""
    partition: int = -1
    offset: int = -1
    timestamp_ms: int | None = None


@dataclass(slots=True)
class Outputs:
    """What one batch produces: records for the output topics, as (key, value) bytes, and events
    for the metrics topic (a drift, with what was done about it)."""

    predictions: list[tuple[bytes, bytes]] = field(default_factory=list)
    dead_letters: list[tuple[bytes | None, bytes]] = field(default_factory=list)
    events: list[bytes] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Pending:
    """What a post left behind for its delayed label: features and the prediction made."""

    features: Features
    predicted: str | None


def dead_letter(msg: Message, rejected: Rejected, now: float) -> bytes:
    """The dead-letter record: reason, detail, source position and the original bytes.

    >>> rec = orjson.loads(dead_letter(Message(b"{oops", topic="t", partition=1, offset=7),
    ...                                Rejected("malformed_json", "x"), now=0))
    >>> rec["reason"], rec["source"], base64.b64decode(rec["original_b64"])
    ('malformed_json', {'topic': 't', 'partition': 1, 'offset': 7, 'timestamp_ms': None}, b'{oops')
    """
    value = msg.value or b""
    return orjson.dumps({
        "reason": rejected.reason,
        "detail": rejected.detail,
        "source": {"topic": msg.topic, "partition": msg.partition, "offset": msg.offset,
                   "timestamp_ms": msg.timestamp_ms},
        "original_b64": base64.b64encode(value).decode("ascii"),
        "failed_at": int(now * 1000),
    })


def prediction_record(post: Post, clean: CleanPost, scores: dict[Any, float], version: int,
                      now: float) -> dict[str, Any]:
    """The body of an ``interest.predictions`` event."""
    return {
        "post_id": post.id,
        "user_id": post.user_id,
        "interest": top_class(scores),
        "scores": {str(c): round(p, 5) for c, p in scores.items()},
        "model_version": version,
        "hashtags": list(clean.hashtags),
        "platform": post.platform,
        "campaign": post.campaign,
        "created_at": post.created_at,
        "processed_at": int(now * 1000),
    }


class Processor:
    """Predict-then-learn over batches of raw records, with bounded state.

    Parameters
    ----------
    settings
        The stream's settings (model, capacities, TTLs).
    model
        The online model; a fresh one from ``settings`` if not given.
    learn
        ``False`` freezes the model (evaluation on unseen data).
    clock
        Seconds since the epoch; injectable for tests.
    """

    def __init__(self, settings: Settings, model: OnlineModel | None = None, learn: bool = True,
                 clock: Callable[[], float] = time.time):
        self.settings = settings
        self.model = model or OnlineModel(settings.model, settings.hash_bits, adapt=settings.drift_adapt)
        self.learning = learn
        self.clock = clock
        self.stats = Stats(clock)
        self.quality = Prequential(settings.rolling_window)
        self.seen_ids = RecentKeys(settings.dedup_capacity)
        self.seen_texts = RecentKeys(settings.dedup_capacity)
        self.pending: TTLStore[Pending] = TTLStore(settings.feedback_ttl, settings.feedback_capacity)
        # Labels that overtook their post (topics are consumed independently): held for the post.
        self.early: TTLStore[str] = TTLStore(settings.feedback_ttl, settings.feedback_capacity)

    # -- the steps -------------------------------------------------------------------------
    def _duplicate(self, post: Post, clean: CleanPost) -> str | None:
        if post.id in self.seen_ids:
            return "id"
        key = retweet_key(clean.text)
        if key.count(" ") + 1 >= MIN_DUPLICATE_WORDS:
            fingerprint = zlib.crc32(key.encode("utf-8", "surrogatepass")) ^ (len(key) << 32)
            if not self.seen_texts.add(fingerprint):
                return "text"
        self.seen_ids.add(post.id)
        return None

    def _learn(self, out: Outputs, x: Features, label: str, predicted: str | None, source: str) -> None:
        self.quality.update(label, predicted)
        if not self.learning:
            return
        event = self.model.learn(x, label, predicted)
        self.stats.outcomes["learned_" + source] += 1
        if event is not None:
            self.stats.drifts += 1
            event["at"] = int(self.clock() * 1000)
            out.events.append(orjson.dumps(event))

    def process_posts(self, messages: Sequence[Message]) -> Outputs:
        """Run a batch of raw post records through the pipeline."""
        out = Outputs()
        now = self.clock()
        stats = self.stats
        stats.saw_events(len(messages), now)
        max_chars = self.settings.max_text_chars
        for msg in messages:
            post = parse_post(msg.value) if msg.value is not None else Rejected("missing_value", "null record")
            if isinstance(post, Rejected):
                self._reject(out, msg, post, now)
                continue
            clean = clean_post(post, max_chars)
            if isinstance(clean, Rejected):
                self._reject(out, msg, clean, now)
                continue
            kind = self._duplicate(post, clean)
            if kind is not None:
                stats.duplicates[kind] += 1
                stats.outcomes["duplicates"] += 1
                continue
            x = self.model.features(clean)
            scores = self.model.predict(x)
            predicted = top_class(scores)
            version = self.model.version  # the model that made this prediction
            if post.interest is not None:
                self._learn(out, x, post.interest, predicted, "inline")
            elif (label := self.early.pop(post.id, now)) is not None:
                self._learn(out, x, label, predicted, "feedback")
            else:
                self.pending.put(post.id, Pending(x, predicted), now)
            record = prediction_record(post, clean, scores, version, now)
            out.predictions.append((post.id.encode(), orjson.dumps(record)))
            stats.outcomes["predicted"] += 1
            stats.predicted_interest[str(predicted)] += 1
            if msg.timestamp_ms is not None:
                stats.latency.observe(max(0.0, now - msg.timestamp_ms / 1000.0))
        return out

    def process_feedback(self, messages: Sequence[Message]) -> Outputs:
        """Join delayed labels to the features their post was predicted with, and learn."""
        out = Outputs()
        now = self.clock()
        for msg in messages:
            self.stats.outcomes["feedback_in"] += 1
            fb = parse_feedback(msg.value) if msg.value is not None else Rejected("missing_value", "null record")
            if isinstance(fb, Rejected):
                self._reject(out, msg, fb, now)
                continue
            self.apply_feedback(out, fb, now)
        return out

    def apply_feedback(self, out: Outputs, fb: Feedback, now: float) -> bool:
        """Learn from one delayed label; ``False`` if its post has not been seen (yet)."""
        if fb.interest is None:
            return False  # a sentiment-only label: nothing for the interest model
        pending = self.pending.pop(fb.post_id, now)
        if pending is None:
            self.early.put(fb.post_id, fb.interest, now)
            self.stats.outcomes["feedback_early"] += 1
            return False
        self._learn(out, pending.features, fb.interest, pending.predicted, "feedback")
        return True

    def _reject(self, out: Outputs, msg: Message, rejected: Rejected, now: float) -> None:
        self.stats.dead_letters[rejected.reason] += 1
        self.stats.outcomes["dead_lettered"] += 1
        out.dead_letters.append((msg.key, dead_letter(msg, rejected, now)))

    # -- reporting ------------------------------------------------------------------------
    def gauges(self) -> list[tuple[str, str, float]]:
        """(name, help, value) of the model's gauges for Prometheus."""
        q = self.quality.snapshot()
        return [
            ("model_version", "Labels the model has learned.", float(self.model.version)),
            ("model_classes", "Interest classes the model knows.", float(len(self.model.classes))),
            ("prequential_accuracy", "Prequential accuracy since start.", q["accuracy"]),
            ("prequential_macro_f1", "Prequential macro-F1 since start.", q["macro_f1"]),
            ("prequential_kappa", "Prequential Cohen's kappa since start.", q["kappa"]),
            ("rolling_accuracy", "Prequential accuracy over the rolling window.", q["rolling"]["accuracy"]),
            ("rolling_macro_f1", "Prequential macro-F1 over the rolling window.", q["rolling"]["macro_f1"]),
            ("rolling_kappa", "Prequential kappa over the rolling window.", q["rolling"]["kappa"]),
            ("model_drifts", "Drifts this worker's model adapted to (since start).", float(self.model.drifts)),
            ("model_error_rate", "Error rate over the drift detector's window.", self.model.detector.error_rate),
            ("pending_labels", "Posts whose features wait for a delayed label.", float(len(self.pending))),
            ("labels_expired", "Posts whose delayed label never came within the TTL.", float(self.pending.expired)),
            ("early_labels", "Delayed labels waiting for their post.", float(len(self.early))),
            ("early_labels_expired", "Delayed labels whose post never came within the TTL.", float(self.early.expired)),
        ]

    def snapshot(self) -> dict[str, Any]:
        """The figures published on the metrics topic (JSON-ready)."""
        snap = {"type": "metrics", **self.stats.snapshot()}
        snap["quality"] = self.quality.snapshot()
        snap["model"] = {"name": self.model.name, "version": self.model.version, "n_classes": len(self.model.classes),
                         "drifts": self.model.drifts, "error_rate": self.model.detector.error_rate,
                         "classes": sorted(map(str, self.model.classes))}
        snap["pending_labels"] = len(self.pending)
        snap["labels_expired"] = self.pending.expired
        snap["early_labels"] = len(self.early)
        snap["early_labels_expired"] = self.early.expired
        snap["at"] = int(self.clock() * 1000)
        return snap
