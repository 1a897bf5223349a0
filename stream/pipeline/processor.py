"""The whole per-event logic of the stream, as plain code that needs no Kafka.

The Faust agents hand batches of raw records to :class:`Processor` and publish what it returns;
``interest-stream evaluate`` and the tests call it directly. Each record goes
decode → validate → deduplicate → clean → featurize → predict → training log (learned by the
:class:`~stream.pipeline.learner.Learner`); every rejection is a dead letter with a reason and the original bytes.
"""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from models.online import OnlineModel
from models.sentiment import lexicon_scores
from stream.audience.records import encode_erasures, encode_partials, encode_profile_updates
from stream.audience.windows import PostTuple, WindowSpec
from stream.pipeline.cleaning import CleanPost, clean_post, retweet_key
from stream.pipeline.events import Limits, Post, Rejected, parse_feedback, parse_post
from stream.pipeline.joiner import Joiner, Pending
from stream.pipeline.learner import Learner
from stream.pipeline.modelview import ModelView
from stream.pipeline.privacy import erased_token, parse_erasure, pseudonym
from stream.pipeline.records import (
    Message,
    dead_letter,
    prediction_record,
    score_batch,
    training_erase,
    training_post,
)
from stream.pipeline.state import HeavyHitters, RecentKeys
from stream.schemas import SCHEMA_VERSION
from stream.settings import Settings
from stream.stats import Stats

log = logging.getLogger(__name__)

Predictor = Learner | ModelView  # what the posts are predicted with: a learner's models, or a replica
ProfileEntries = dict[str, list[tuple[int, dict[str, float]]]]  # user → (event time ms, probabilities) a post

MISSING_VALUE = Rejected("missing_value", "null record")
MIN_DUPLICATE_WORDS = 3  # shorter texts ("thank you!") are common, not copies


@dataclass(slots=True)
class Outputs:
    """What one batch produces, as (key, value) bytes: records for the output topics and the training
    log, events for the metrics topic (a drift, with what was done about it); and, as (partition,
    value), the batch's partial audience aggregates and profile updates, one record per partition
    of the internal topics (see :func:`~stream.audience.records.route`)."""

    predictions: list[tuple[bytes, bytes]] = field(default_factory=list)
    dead_letters: list[tuple[bytes | None, bytes]] = field(default_factory=list)
    training: list[tuple[bytes, bytes]] = field(default_factory=list)
    events: list[bytes] = field(default_factory=list)
    partials: list[tuple[int, bytes]] = field(default_factory=list)
    profile_updates: list[tuple[int, bytes]] = field(default_factory=list)
    repartition: list[tuple[bytes, bytes]] = field(default_factory=list)  # labels sent on to their post's partition


class Processor:
    """Decode, validate, deduplicate, clean, featurize and predict over batches of raw records.

    Learning is the :class:`~stream.pipeline.learner.Learner`'s: the processor appends what it needs to the
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

    def __init__(
        self,
        settings: Settings,
        learner: Learner | None = None,
        clock: Callable[[], float] = time.time,
        view: ModelView | None = None,
    ):
        self.settings = settings
        self.clock = clock
        self.stats = learner.stats if learner is not None else Stats(clock, settings.top_segments)
        # A worker predicts with a read-only view of the cluster's model and has no learner; the
        # offline tools and the tests learn in-process (``run_locally``) and predict with the learner.
        self._learner = learner if learner is not None or view is not None else Learner(settings, stats=self.stats)
        self.view: Predictor = view if view is not None else self._learner  # type: ignore[assignment]
        self.joiner = Joiner(settings.feedback_ttl, settings.feedback_capacity)
        self.seen_ids = RecentKeys(settings.dedup_capacity)
        self.seen_texts = RecentKeys(settings.dedup_capacity)
        self.window_spec = WindowSpec.from_settings(settings)
        self.limits = Limits.from_settings(settings)
        # campaigns and hashtags come from the input: the audience segments they get are bounded
        self.campaigns = HeavyHitters(settings.max_segments, settings.segment_min_posts)
        self.hashtags = HeavyHitters(settings.max_segments, settings.segment_min_posts)
        self._local_offset = -1
        # post id → partition of the posts topic (the producer's): set by a worker, whose labels must
        # reach the partition of their post; None offline
        self.route: Callable[[str], int] | None = None
        # what the posts since the last drain_aggregates() add to the audience windows and profiles
        self._audience: list[PostTuple] = []
        self._profiles: ProfileEntries = {}

    @property
    def model(self) -> OnlineModel:
        return self.view.model

    @property
    def learner(self) -> Learner:
        """The in-process learner (offline tools, tests); a worker's processor has none."""
        if self._learner is None:
            raise RuntimeError("this processor predicts with a replica of the cluster's model: it has no learner")
        return self._learner

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
        settings = self.settings
        max_chars, key, cold_labels = settings.max_text_chars, settings.pseudonym_key, settings.cold_labels
        view, joiner = self.view, self.joiner
        model, sentiment_model, erased = view.model, view.sentiment, view.erased
        audience, profiles = self._audience, self._profiles
        limits, now_ms = self.limits, int(now * 1000)
        ready = []  # posts that passed validation, cleaning and de-duplication, with their features
        for msg in messages:
            try:
                post = parse_post(msg.value, limits, now_ms) if msg.value is not None else MISSING_VALUE
                if isinstance(post, Rejected):
                    self._reject(out, msg, post, now)
                    continue
                if self._new_class_refused(post.interest):
                    self._reject(out, msg, Rejected("too_many_classes", self._cap_detail(post.interest)), now)
                    continue
                user = pseudonym(post.user_id, key)
                if erased and view.is_erased(user):
                    stats.outcomes["erased_user_skipped"] += 1
                    continue
                clean = clean_post(post, max_chars, limits)
                if isinstance(clean, Rejected):
                    self._reject(out, msg, clean, now)
                    continue
                kind = self._duplicate(post, clean)
                if kind is not None:
                    stats.duplicates[kind] += 1
                    stats.outcomes["duplicates"] += 1
                    continue
                if msg.key != post.id.encode():  # its delayed label, keyed by post id, may not find it
                    stats.outcomes["posts_not_keyed_by_id"] += 1
                ready.append((msg, post, clean, user, *model.features_and_words(clean)))
            except Exception as exc:  # a bug must cost one post (dead-lettered), never the batch
                log.exception("a post could not be processed; it goes to the dead-letter topic")
                self._reject(out, msg, Rejected("internal_error", f"{type(exc).__name__}: {exc}"[:200]), now)
        # The whole batch is predicted at once: the model learns only after (from the training log).
        xs = [x for *_, x, _ in ready]
        tops, top_probas, all_shown = score_batch(model.predict_many(xs))
        lexes = [lexicon_scores(post.text) for _, post, *_ in ready]
        sentiments = sentiment_model.predict_many(
            xs, lexes, sentiment_model.interests_of(tops, top_probas), [n for *_, n in ready]
        )
        for (msg, post, clean, user, x, words), predicted, shown, lex, sentiment in zip(
            ready, tops, all_shown, lexes, sentiments, strict=True
        ):
            post_key = post.id.encode()
            if post.interest is not None or post.sentiment is not None:
                example = training_post(
                    post.id, x, predicted, post.interest, lex, sentiment.label, post.sentiment, words=words
                )
                out.training.append((post_key, example))
            else:  # waits here for its delayed label (the feedback of this partition comes here)
                joined = joiner.post(post.id, Pending(x, predicted, lex, sentiment.label, words), now)
                if joined is not None:
                    out.training.append((post_key, joined.record()))
            record = prediction_record(post, clean, predicted, shown, model.version, now, sentiment, user, cold_labels)
            out.predictions.append((post_key, orjson.dumps(record)))
            campaign = post.campaign if post.campaign is None or self.campaigns.admit(post.campaign) else None
            tags = clean.hashtags
            if tags:
                admit = self.hashtags.admit
                tags = tuple(tag for tag in tags if admit(tag))
            audience.append((post.created_at, sentiment.score, sentiment.label, predicted, campaign, tags))
            if shown:  # the probabilities the record shows (a dict nothing changes: the record is already made)
                profiles.setdefault(user, []).append((post.created_at, shown))
            stats.outcomes["predicted"] += 1
            stats.predicted_interest[str(predicted)] += 1
            stats.predicted_sentiment[sentiment.label] += 1
            if msg.timestamp_ms is not None:
                stats.latency.observe(max(0.0, now - msg.timestamp_ms / 1000.0))
        return out

    def drain_aggregates(self) -> Outputs:
        """The partial audience aggregates and profile updates of the posts processed since the last
        call, one record per partition of the internal topics. A worker calls it every
        ``STREAM_AGGREGATE_INTERVAL`` and before each offset commit, so that the aggregating agents
        handle a few records per interval, whatever the size of the batches of predictions."""
        return self.encode_aggregates(*self.take_aggregates())

    def take_aggregates(self) -> tuple[list[PostTuple], ProfileEntries]:
        """What the posts processed since the last call add to the audience windows and the profiles
        (their audience entries, and their profile entries by user), forgotten here."""
        taken = self._audience, self._profiles
        self._audience, self._profiles = [], {}
        return taken

    def encode_aggregates(self, audience: Sequence[PostTuple], profiles: ProfileEntries) -> Outputs:
        """:meth:`take_aggregates`'s entries as the records of the internal topics, one per partition."""
        out = Outputs()
        n = self.settings.partitions
        limit = self.settings.max_message_bytes // 2  # room for the split to stay below the producer's limit
        out.partials = encode_partials(audience, self.window_spec, n, limit)
        out.profile_updates = encode_profile_updates(profiles, n, limit)
        return out

    def process_feedback(self, messages: Sequence[Message]) -> Outputs:
        """Validate delayed labels and append them to the training log."""
        out = Outputs()
        now = self.clock()
        for msg in messages:
            self.stats.outcomes["feedback_in"] += 1
            fb = parse_feedback(msg.value, self.limits) if msg.value is not None else MISSING_VALUE
            if isinstance(fb, Rejected):
                self._reject(out, msg, fb, now)
            elif self._new_class_refused(fb.interest):
                self._reject(out, msg, Rejected("too_many_classes", self._cap_detail(fb.interest)), now)
            elif self.route is not None and msg.partition is not None and self.route(fb.post_id) != msg.partition:
                # keyed by something else: its post waits on another partition, maybe in another worker
                self.stats.outcomes["feedback_repartitioned"] += 1
                out.repartition.append((fb.post_id.encode(), msg.value))  # type: ignore[arg-type]
            else:
                joined = self.joiner.label(fb.post_id, fb.interest, fb.sentiment, now)
                if joined is None:
                    self.stats.outcomes["feedback_early"] += 1
                else:
                    out.training.append((fb.post_id.encode(), joined.record()))
        return out

    def process_erasures(self, messages: Sequence[Message]) -> Outputs:
        """Erasure requests: every worker ignores the user from now on (training log), and the
        user's profile is deleted (profile update keyed by the user's pseudonym)."""
        out = Outputs()
        now = self.clock()
        key = self.settings.pseudonym_key
        erase: list[str] = []
        for msg in messages:
            user_id = parse_erasure(msg.value, self.limits)
            if isinstance(user_id, Rejected):
                self._reject(out, msg, user_id, now)
                continue
            self.stats.outcomes["erasure_requests"] += 1
            user = pseudonym(user_id, key)
            out.training.append((b"erase", training_erase(erased_token(user))))
            erase.append(user)
        out.profile_updates = encode_erasures(erase, self.settings.partitions)
        return out

    def run_locally(self, out: Outputs) -> Outputs:
        """Apply ``out.training`` to the learner at once (no Kafka); drift events go to ``out.events``."""
        learner = self.learner
        now_ms = int(self.clock() * 1000)
        for _, value in out.training:
            self._local_offset += 1
            event = learner.apply(self._local_offset, value, now_ms)
            if event is not None:
                out.events.append(event)
        return out

    def _new_class_refused(self, label: str | None) -> bool:
        """Whether ``label`` is a new interest the model has no room for (``STREAM_MAX_CLASSES``)."""
        classes = self.view.model.classes
        return label is not None and label not in classes and len(classes) >= self.settings.max_classes

    def _cap_detail(self, label: str | None) -> str:
        return (
            f"interest {label!r} would be class {len(self.view.model.classes) + 1}, STREAM_MAX_CLASSES is "
            f"{self.settings.max_classes}"
        )

    def _reject(self, out: Outputs, msg: Message, rejected: Rejected, now: float) -> None:
        settings = self.settings
        self.stats.dead_letters[rejected.reason] += 1
        self.stats.outcomes["dead_lettered"] += 1
        letter = dead_letter(msg, rejected, now, settings.pseudonym_key, settings.dlq_original_bytes)
        out.dead_letters.append((msg.key[: settings.max_id_chars] if msg.key else msg.key, letter))

    # -- reporting ------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """The figures published on the metrics topic (JSON-ready)."""
        snap = {"type": "metrics", **self.stats.snapshot(), **self.view.figures(), "schema_version": SCHEMA_VERSION}
        pending, early = self.joiner.pending, self.joiner.early
        snap["pending_labels"] = len(pending)
        snap["labels_expired"] = pending.expired
        snap["early_labels"] = len(early)
        snap["early_labels_expired"] = early.expired
        snap["at"] = int(self.clock() * 1000)
        return snap
