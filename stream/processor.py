"""The whole per-event logic of the stream, as plain code that needs no Kafka.

The Faust agents hand batches of raw records to :class:`Processor` and publish what it returns;
``interest-stream evaluate`` and the tests call it directly. Each record goes
decode → validate → deduplicate → clean → featurize → predict → training log (learned by the
:class:`~stream.learner.Learner`); every rejection is a dead letter with a reason and the original bytes.
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
from models.online import OnlineModel
from stream.cleaning import CleanPost, clean_post, retweet_key
from stream.events import Post, Rejected, parse_feedback, parse_post
from stream.learner import Learner, training_label, training_post
from stream.metrics import Stats
from stream.settings import Settings
from stream.state import RecentKeys

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
    """What one batch produces: records for the output topics and the training log, as (key, value)
    bytes, and events for the metrics topic (a drift, with what was done about it)."""

    predictions: list[tuple[bytes, bytes]] = field(default_factory=list)
    dead_letters: list[tuple[bytes | None, bytes]] = field(default_factory=list)
    training: list[tuple[bytes, bytes]] = field(default_factory=list)
    events: list[bytes] = field(default_factory=list)


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
    """Decode, validate, deduplicate, clean, featurize and predict over batches of raw records.

    Learning is the :class:`~stream.learner.Learner`'s: the processor appends what it needs to the
    training log (``Outputs.training``); the worker sends it through the one-partition training topic,
    :meth:`run_locally` (offline tools, tests) applies it at once.

    Parameters
    ----------
    settings
        The stream's settings (model, capacities, TTLs).
    learner
        Holds the model the predictions come from; a fresh one from ``settings`` if not given.
    clock
        Seconds since the epoch; injectable for tests.
    """

    def __init__(self, settings: Settings, learner: Learner | None = None,
                 clock: Callable[[], float] = time.time):
        self.settings = settings
        self.clock = clock
        self.stats = learner.stats if learner is not None else Stats(clock)
        self.learner = learner or Learner(settings, stats=self.stats)
        self.seen_ids = RecentKeys(settings.dedup_capacity)
        self.seen_texts = RecentKeys(settings.dedup_capacity)
        self._local_offset = -1

    @property
    def model(self) -> OnlineModel:
        return self.learner.model

    @property
    def quality(self) -> Prequential:
        return self.learner.quality

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

    def process_posts(self, messages: Sequence[Message]) -> Outputs:
        """Run a batch of raw post records through the pipeline."""
        out = Outputs()
        now = self.clock()
        stats = self.stats
        stats.saw_events(len(messages), now)
        max_chars = self.settings.max_text_chars
        model = self.model
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
            x = model.features(clean)
            scores = model.predict(x)
            predicted = top_class(scores)
            key = post.id.encode()
            out.training.append((key, training_post(post.id, x, predicted, post.interest)))
            record = prediction_record(post, clean, scores, model.version, now)
            out.predictions.append((key, orjson.dumps(record)))
            stats.outcomes["predicted"] += 1
            stats.predicted_interest[str(predicted)] += 1
            if msg.timestamp_ms is not None:
                stats.latency.observe(max(0.0, now - msg.timestamp_ms / 1000.0))
        return out

    def process_feedback(self, messages: Sequence[Message]) -> Outputs:
        """Validate delayed labels and append them to the training log."""
        out = Outputs()
        now = self.clock()
        for msg in messages:
            self.stats.outcomes["feedback_in"] += 1
            fb = parse_feedback(msg.value) if msg.value is not None else Rejected("missing_value", "null record")
            if isinstance(fb, Rejected):
                self._reject(out, msg, fb, now)
            elif fb.interest is not None:  # sentiment-only labels: nothing for the interest model
                out.training.append((fb.post_id.encode(), training_label(fb.post_id, fb.interest)))
        return out

    def run_locally(self, out: Outputs) -> Outputs:
        """Apply ``out.training`` to the learner at once (no Kafka); drift events go to ``out.events``."""
        now_ms = int(self.clock() * 1000)
        for _, value in out.training:
            self._local_offset += 1
            event = self.learner.apply(self._local_offset, value, now_ms)
            if event is not None:
                out.events.append(event)
        return out

    def _reject(self, out: Outputs, msg: Message, rejected: Rejected, now: float) -> None:
        self.stats.dead_letters[rejected.reason] += 1
        self.stats.outcomes["dead_lettered"] += 1
        out.dead_letters.append((msg.key, dead_letter(msg, rejected, now)))

    # -- reporting ------------------------------------------------------------------------
    def gauges(self) -> list[tuple[str, str, float]]:
        """(name, help, value) of the model's gauges for Prometheus."""
        q = self.quality.snapshot()
        learner = self.learner
        staleness = 0.0 if learner.last_record_ms is None else max(0.0, self.clock() - learner.last_record_ms / 1000)
        return [
            ("model_version", "Labels the model has learned.", float(self.model.version)),
            ("model_classes", "Interest classes the model knows.", float(len(self.model.classes))),
            ("model_drifts", "Drifts the model adapted to.", float(self.model.drifts)),
            ("model_error_rate", "Error rate over the drift detector's window.", self.model.detector.error_rate),
            ("training_offset", "Last offset of the training log applied to the model.", float(learner.offset)),
            ("training_record_age_seconds", "Age of the newest training record the model has applied.", staleness),
            ("prequential_accuracy", "Prequential accuracy since start.", q["accuracy"]),
            ("prequential_macro_f1", "Prequential macro-F1 since start.", q["macro_f1"]),
            ("prequential_kappa", "Prequential Cohen's kappa since start.", q["kappa"]),
            ("rolling_accuracy", "Prequential accuracy over the rolling window.", q["rolling"]["accuracy"]),
            ("rolling_macro_f1", "Prequential macro-F1 over the rolling window.", q["rolling"]["macro_f1"]),
            ("rolling_kappa", "Prequential kappa over the rolling window.", q["rolling"]["kappa"]),
            ("pending_labels", "Posts whose features wait for a delayed label.", float(len(learner.pending))),
            ("labels_expired", "Posts whose delayed label never came within the TTL.", float(learner.pending.expired)),
            ("early_labels", "Delayed labels waiting for their post.", float(len(learner.early))),
            ("early_labels_expired", "Delayed labels whose post never came within the TTL.", float(learner.early.expired)),
        ]

    def snapshot(self) -> dict[str, Any]:
        """The figures published on the metrics topic (JSON-ready)."""
        learner = self.learner
        snap = {"type": "metrics", **self.stats.snapshot()}
        snap["quality"] = self.quality.snapshot()
        snap["model"] = {"name": self.model.name, "version": self.model.version, "n_classes": len(self.model.classes),
                         "drifts": self.model.drifts, "error_rate": self.model.detector.error_rate,
                         "classes": sorted(map(str, self.model.classes)), "training_offset": learner.offset}
        snap["pending_labels"] = len(learner.pending)
        snap["labels_expired"] = learner.pending.expired
        snap["early_labels"] = len(learner.early)
        snap["early_labels_expired"] = learner.early.expired
        snap["at"] = int(self.clock() * 1000)
        return snap
