"""The training log and its learner: one model, learned once per cluster.

Predictors (the posts agent of every worker) do not learn. They send what learning needs to the
training topic, which has **one partition**, so it has one order: ``post`` records of labelled
examples (a post's id, the features it was predicted with, the predictions, its labels: inline, or
joined to a delayed label in the worker where the post waited, see :mod:`stream.pipeline.joiner`) and
``erase`` records.

The :class:`Learner` of the worker that holds the learner role applies that log in order, with time
taken from the records, so replaying the same log from a snapshot gives the same model (a learner that
takes over does exactly that). It learns each post id at most once, scores each label against the
prediction made before learning (prequential), adapts to drift, and hands the rows it changed to the
replicas as sparse deltas (:meth:`Learner.take_delta`). It still joins ``label`` records to unlabelled
``post`` records, as a training log of the earlier format holds them.

>>> from stream.pipeline.records import training_label, training_post
>>> from stream.settings import Settings
>>> a, b = Learner(Settings()), Learner(Settings())
>>> log = [training_post("p1", {1: 1.0}, None, "sports"), training_post("p2", {2: 1.0}, "sports", None),
...        training_label("p2", "travel"), training_post("p1", {1: 1.0}, "sports", "sports")]
>>> for offset, rec in enumerate(log):
...     _ = a.apply(offset, rec, timestamp_ms=0); _ = b.apply(offset, rec, timestamp_ms=0)
>>> a.model.version, a.model.predict({2: 1.0}) == b.model.predict({2: 1.0}), a.stats.outcomes["learned_duplicate"]
(2, True, 1)
"""

from __future__ import annotations

from typing import Any

import orjson

from models.codec import qualified_name
from models.metrics import Prequential
from models.online import OnlineModel
from models.sentiment import SentimentModel, lexicon_label
from stream.pipeline.events import LABEL
from stream.pipeline.joiner import Joiner, Pending, unpack_features
from stream.pipeline.privacy import erased_token
from stream.pipeline.records import decode_training
from stream.pipeline.state import RecentKeys, TTLStore
from stream.schemas import SCHEMA_VERSION
from stream.settings import Settings
from stream.stats import Stats


class Learner:
    """Applies training-log records in offset order; everything it holds is checkpointed.

    Parameters
    ----------
    settings
        Model choice, capacities and TTLs.
    model, sentiment
        The interest and sentiment models to train (fresh ones from ``settings`` if not given).
    learn
        ``False`` scores labels but does not learn (frozen evaluation).
    stats
        Where the counters go (shared with the predictor in a worker).
    """

    def __init__(
        self,
        settings: Settings,
        model: OnlineModel | None = None,
        learn: bool = True,
        stats: Stats | None = None,
        sentiment: SentimentModel | None = None,
    ):
        self.settings = settings
        self.model = model or OnlineModel(settings.model, settings.hash_bits, adapt=settings.drift_adapt)
        self._configure_replay()
        self.learning = learn
        self.stats = stats or Stats(top_segments=settings.top_segments)
        self.quality = Prequential(settings.rolling_window)
        self.pending: TTLStore[Pending] = TTLStore(settings.feedback_ttl, settings.feedback_capacity)
        self.early: TTLStore[tuple[str | None, str | None]] = TTLStore(
            settings.feedback_ttl, settings.feedback_capacity
        )
        self.learned = RecentKeys(settings.dedup_capacity)
        self.sentiment = sentiment or SentimentModel(warmup=settings.sentiment_warmup)
        self.sentiment_quality = Prequential(settings.rolling_window)
        self.lexicon_quality = Prequential(settings.rolling_window)  # the lexicon alone, for comparison
        self.erased: set[str] = set()
        self.offset = -1  # the last training-log offset applied
        self.last_record_ms: int | None = None
        self._new_erased: list[str] | None = None  # erasures since the last delta, when tracking

    # -- replication: sparse deltas for the read-only replicas (see models.delta) ------------
    def track(self) -> None:
        """Remember from now on what learning changes, for :meth:`take_delta`."""
        self.model.track()
        self.sentiment.track()
        self._new_erased = []

    def take_delta(self) -> dict[str, Any] | None:
        """What a replica that applied the previous delta needs to predict as this learner does now:
        the changed rows of both models, the erasures, the training offset and the figures. ``None``
        when a delta cannot say it (the interest model was replaced after a drift): a snapshot is due,
        and tracking starts again with :meth:`track`."""
        model = self.model.take_delta()
        if model is None:
            return None
        erased, self._new_erased = self._new_erased or [], []
        return {
            "model": model,
            "sentiment": self.sentiment.take_delta(),
            "erased": erased,
            "offset": self.offset,
            "figures": self.figures(),
        }

    def figures(self) -> dict[str, Any]:
        """The model's figures as the metrics snapshot publishes them (JSON-ready)."""
        model = self.model
        return {
            "quality": self.quality.snapshot(),
            "sentiment_quality": self.sentiment_quality.snapshot(),
            "lexicon_quality": self.lexicon_quality.snapshot(),
            "model": {
                "name": model.name,
                "version": model.version,
                "n_classes": len(model.classes),
                "drifts": model.drifts,
                "error_rate": model.error_rate,
                "classes": sorted(map(str, model.classes)),
                "training_offset": self.offset,
            },
        }

    def is_erased(self, user: str) -> bool:
        """Whether ``user`` (a pseudonym as published) asked to be erased."""
        return bool(self.erased) and erased_token(user) in self.erased

    def apply(self, offset: int, value: bytes, timestamp_ms: int) -> bytes | None:
        """Apply one record; returns a drift event (JSON) when the model was replaced. Records at or
        below the last offset applied are skipped (a replay after a checkpoint)."""
        if offset <= self.offset:
            return None
        self.offset = offset
        self.last_record_ms = timestamp_ms
        now = timestamp_ms / 1000.0
        rec = decode_training(value)
        if rec is None:
            self.stats.outcomes["training_malformed"] += 1
            return None
        if rec.kind == "erase":
            self.erased.add(rec.user)
            if self._new_erased is not None:
                self._new_erased.append(rec.user)
            self.stats.outcomes["erasures_applied"] += 1
            return None
        post_id, label, sentiment = rec.post_id, rec.label, rec.sentiment
        if rec.kind == "post":
            pending = Pending(rec.features or {}, rec.predicted, rec.lex, rec.sentiment_predicted, rec.words)
            if label is not None or sentiment is not None:
                return self._learn(post_id, pending, label, sentiment, "feedback" if rec.joined else "inline")
        # the earlier log format: unlabelled posts and delayed labels, joined here
        join = Joiner(self.settings.feedback_ttl, self.settings.feedback_capacity, self.pending, self.early)
        joined = join.post(post_id, pending, now) if rec.kind == "post" else join.label(post_id, label, sentiment, now)
        if joined is None:
            if rec.kind == "label":
                self.stats.outcomes["feedback_early"] += 1
            return None
        return self._learn(post_id, joined.pending, joined.label, joined.sentiment, "feedback")

    def _learn(
        self, post_id: str, pending: Pending, label: str | None, sentiment: str | None, source: str
    ) -> bytes | None:
        if post_id in self.learned:
            self.stats.outcomes["learned_duplicate"] += 1  # a post re-predicted after a crash
            return None
        self.learned.add(post_id)
        x = unpack_features(pending.features)
        lex = pending.lexicon()
        if sentiment is not None and lex is not None:
            self.sentiment_quality.update(sentiment, pending.sentiment_predicted)
            self.lexicon_quality.update(sentiment, lexicon_label(lex[0]))
            if self.learning:
                self.sentiment.learn(x, lex, sentiment, label, pending.words)  # the interest label, when known
                self.stats.outcomes["learned_sentiment"] += 1
        if label is None:
            return None
        classes = self.model.classes
        if label not in classes and (len(classes) >= self.settings.max_classes or not LABEL.fullmatch(label)):
            # the predictors dead-letter such labels; one that got past them (another worker admitted a
            # new class at the same time, an old log) never grows the model beyond its bound
            self.stats.outcomes["labels_refused"] += 1
            return None
        self.quality.update(label, pending.predicted)
        if not self.learning:
            return None
        event = self.model.learn(x, label, pending.predicted)
        self.stats.outcomes["learned_" + source] += 1
        if event is None:
            return None
        self.stats.drifts += 1
        return orjson.dumps(
            {**event, "at": self.last_record_ms, "offset": self.offset, "schema_version": SCHEMA_VERSION}
        )

    # -- checkpoints ------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """Everything that must survive a restart."""
        return {"format": self.STATE_FORMAT, **{key: getattr(self, key) for key in self.STATE_KEYS}}

    STATE_FORMAT = 4  # raised when the checkpointed classes change shape (4: snapshots in parts, deltas)

    STATE_KEYS = (
        "model",
        "quality",
        "pending",
        "early",
        "learned",
        "offset",
        "last_record_ms",
        "sentiment",
        "sentiment_quality",
        "lexicon_quality",
        "erased",
    )

    def restore(self, state: dict[str, Any]) -> None:
        """Take over a checkpointed :meth:`state`; a state from another version of the learner (keys
        missing) raises ``ValueError`` and changes nothing."""
        missing = [k for k in self.STATE_KEYS if k not in state]
        if missing:
            raise ValueError(f"checkpoint lacks {', '.join(missing)} (written by another version)")
        if state.get("format") != self.STATE_FORMAT:
            raise ValueError(f"checkpoint format {state.get('format')}, this version reads {self.STATE_FORMAT}")
        if state["model"].name != self.settings.model:
            raise ValueError(
                f"checkpoint holds model {state['model'].name!r}, STREAM_MODEL asks for {self.settings.model!r}"
            )
        for key in self.STATE_KEYS:
            setattr(self, key, state[key])
        self.model.adapt = self.settings.drift_adapt  # as set now, whatever the checkpoint learned with
        self._configure_replay()

    def _configure_replay(self) -> None:
        """The replays per label in bursts as ``STREAM_BURST_REPLAYS`` says now, whatever a checkpoint
        learned with."""
        if self.model.replay is not None:
            self.model.replay.burst_rate = self.settings.burst_replays

    def reset(self) -> None:
        """Forget everything learned: the state of a fresh learner with the same settings."""
        fresh = Learner(self.settings, learn=self.learning, stats=self.stats)
        for key in self.STATE_KEYS:
            setattr(self, key, getattr(fresh, key))
        if self._new_erased is not None:
            self.track()

    def metadata(self) -> dict[str, Any]:
        """What a checkpoint says about itself."""
        q = self.quality.snapshot()
        return {
            "version": self.model.version,
            "offset": self.offset,
            "model": self.model.name,
            "labels_learned": self.model.version,
            "last_record_ms": self.last_record_ms,
            "accuracy": q["accuracy"],
            "macro_f1": q["macro_f1"],
            "kappa": q["kappa"],
        }


def _checkpoint_classes() -> dict[str, type]:
    """The classes a checkpoint of the learner may hold (:mod:`models.codec`): the worker's own models
    (``arow``, ``nb`` and their balanced forms), the sentiment model, the metrics, the bounded stores.
    River's stock candidates (``river-nb``, ``logreg``, ``softmax``, ``pa``) hold functions and are not
    checkpointed: a worker running one rebuilds it from the training log when it starts."""
    from river._river_rust import drift as rust_drift  # ADWIN's window, restored by its own __setstate__

    from models.arow import AROWClassifier
    from models.drift import ADWIN, ClassCentroids, ClassDrift, DriftDetector
    from models.features import PostFeaturizer
    from models.metrics import Confusion
    from models.nb import MultinomialNB
    from models.replay import ReplayBuffer
    from models.sentiment import SentimentClassifier

    classes = [
        OnlineModel,
        PostFeaturizer,
        AROWClassifier,
        MultinomialNB,
        DriftDetector,
        ClassDrift,
        ClassCentroids,
        ReplayBuffer,
        ADWIN,
        rust_drift.AdaptiveWindowing,
        SentimentModel,
        SentimentClassifier,
        Prequential,
        Confusion,
        TTLStore,
        RecentKeys,
        Pending,
    ]
    # models.drift.ADWIN is a copy of River's, written under River's name: checkpoints of 0.7 and
    # before hold River's class, and workers of 0.7 read this version's checkpoints (a rolling upgrade)
    return {qualified_name(c): c for c in classes if c is not ADWIN} | {"river.drift.adwin.ADWIN": ADWIN}


CHECKPOINT_CLASSES = _checkpoint_classes()
