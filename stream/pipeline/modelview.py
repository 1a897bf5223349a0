"""A worker's read-only model replica: what its posts are predicted with.

One worker in the cluster learns (see :mod:`stream.pipeline.learner`); every worker that predicts
(``STREAM_ROLE`` ``all`` or ``posts``) predicts with a :class:`ModelView` kept current from what the
learner publishes on the model topic: a snapshot (the learner's whole state, of which the view keeps
the two models and the erasures), then sparse deltas (the rows of weights, document frequencies and
calibration that changed, see :mod:`models.delta`).
A view holds no learner state: no prequential metrics (their figures come with each delta), no
waiting labels, no learned post ids.

A worker that predicts nothing (``STREAM_ROLE=aggregates``) holds a view without the interest model
(``predicts=False``): its profiles agent reads the erasures alone, and the model's arrays are about
100 MB at the default ``STREAM_HASH_BITS``.

Snapshots and deltas carry the learner's ``epoch``: a learner that takes over, or one whose model
was replaced after a drift, starts a new epoch with a snapshot. A view applies the deltas of its
own epoch only, and loads a snapshot of another epoch: a delta never patches a model it was not
taken from.

>>> import copy
>>> from stream.pipeline.learner import Learner
>>> from stream.pipeline.records import training_erase, training_post
>>> from stream.settings import Settings
>>> settings = Settings(hash_bits=10)
>>> learner, view = Learner(settings), ModelView(settings)
>>> view.load(copy.deepcopy(learner.state()), epoch="e1")  # a worker decodes it from the model topic
>>> learner.track()
>>> _ = learner.apply(0, training_post("p1", {1: 1.0}, None, "sports"), timestamp_ms=0)
>>> _ = learner.apply(1, training_post("p2", {2: 1.0}, None, "travel"), timestamp_ms=0)
>>> view.apply(learner.take_delta(), epoch="e1")
True
>>> view.model.predict({2: 1.0}) == learner.model.predict({2: 1.0}), view.model.version, view.offset
(True, 2, 1)
>>> view.apply(learner.take_delta(), epoch="another")   # not the epoch of its snapshot: skipped
False
>>> erasures = ModelView(settings, predicts=False)  # an aggregates worker's
>>> erasures.load(copy.deepcopy(learner.state()), epoch="e1")
>>> _ = learner.apply(2, training_erase(erased_token("u1")), timestamp_ms=0)
>>> erasures.apply(learner.take_delta(), epoch="e1"), erasures.is_erased("u1"), erasures.offset
(True, True, 2)
>>> erasures.model.version, erasures.figures()["model"]["version"]  # the learner's version: in its figures
(0, 2)
"""

from __future__ import annotations

from typing import Any

from models.codec import attribute_buffers, object_arrays
from models.metrics import Prequential
from models.online import OnlineModel
from models.sentiment import SentimentModel
from stream.pipeline.privacy import erased_token
from stream.settings import Settings


class ModelView:
    """The interest and sentiment models, the erasures and the learner's figures, as of the last
    snapshot and delta applied.

    Parameters
    ----------
    settings
        The model's name, hash bits and sentiment warm-up: a fresh view predicts as a fresh learner.
    predicts
        ``False``: the view of a worker that predicts nothing keeps the erasures, the sentiment model,
        the training offset and the learner's figures, but not the interest model: ``model`` stays a
        fresh one with the fewest rows (``PLACEHOLDER_BITS``), and snapshots and deltas of it are not
        read (see :meth:`unread`).
    """

    def __init__(self, settings: Settings, predicts: bool = True):
        self.settings = settings
        self.predicts = predicts
        bits = settings.hash_bits if predicts else PLACEHOLDER_BITS
        self.model = _for_prediction(OnlineModel(settings.model, bits, adapt=False))
        self.sentiment = SentimentModel(warmup=settings.sentiment_warmup)
        self.erased: set[str] = set()
        self.epoch: str | None = None  # of the snapshot loaded; None: a fresh model
        self.offset = -1  # the training-log offset the learner had applied
        self.applied_at_ms: int | None = None  # learner's clock when it took the last delta applied
        self._figures: dict[str, Any] | None = None

    def is_erased(self, user: str) -> bool:
        """Whether ``user`` (a pseudonym as published) asked to be erased."""
        return bool(self.erased) and erased_token(user) in self.erased

    def load(self, state: dict[str, Any], epoch: str, figures: dict[str, Any] | None = None) -> None:
        """Take the models and erasures of a learner's snapshot (:meth:`Learner.state`, as decoded from
        the model topic: the view owns them from now on and drops what only learning reads); raises
        ``ValueError`` (changing nothing) for a snapshot of another model than ``STREAM_MODEL``."""
        model = state["model"]
        if model.name != self.settings.model:
            raise ValueError(f"snapshot holds model {model.name!r}, STREAM_MODEL asks for {self.settings.model!r}")
        if self.predicts:
            self.model = _for_prediction(model)
        elif figures is None:  # the version and classes of the model it drops (a snapshot carries them)
            figures = _fresh_figures(model, self.settings.rolling_window, int(state["offset"]))
        self.sentiment, self.erased = state["sentiment"], set(state["erased"])
        self.offset, self.epoch, self._figures = int(state["offset"]), epoch, figures

    def apply(self, delta: dict[str, Any], epoch: str) -> bool:
        """Apply a learner's :meth:`~stream.pipeline.learner.Learner.take_delta` taken in ``epoch``;
        ``False`` (nothing changed) unless this view holds the snapshot of that epoch: a learner
        always writes a snapshot before its first delta."""
        if epoch != self.epoch:
            return False
        if self.predicts:
            self.model.apply_delta(delta["model"])
        self.sentiment.apply_delta(delta["sentiment"])
        self.erased.update(delta["erased"])
        self.offset = int(delta["offset"])
        self._figures = delta.get("figures")
        return True

    def unread(self, document: Any) -> set[int]:
        """The buffers of a learner's snapshot (its :mod:`models.codec` document) that this view drops
        as soon as it has them: :func:`models.persistence.load` need not keep them. A view that
        predicts drops what only learning reads (:func:`unread_by_replica`), one that does not the
        interest model's arrays (:func:`models.codec.object_arrays`)."""
        return unread_by_replica(document) if self.predicts else object_arrays(document, {INTEREST_MODEL})

    def figures(self) -> dict[str, Any]:
        """The learner's figures as of the last delta (see ``Learner.figures``); a fresh model's
        before any."""
        if self._figures is not None:
            return self._figures
        return _fresh_figures(self.model, self.settings.rolling_window, self.offset)


def _fresh_figures(model: OnlineModel, rolling_window: int, offset: int) -> dict[str, Any]:
    """A model's figures without the learner's quality figures (none yet)."""
    empty = Prequential(rolling_window).snapshot()
    return {
        "quality": empty,
        "sentiment_quality": empty,
        "lexicon_quality": empty,
        "model": {
            "name": model.name,
            "version": model.version,
            "n_classes": len(model.classes),
            "drifts": model.drifts,
            "error_rate": 0.0,
            "classes": sorted(map(str, model.classes)),
            "training_offset": offset,
        },
    }


PLACEHOLDER_BITS = 1  # the interest model of a view that predicts nothing: two rows
INTEREST_MODEL = "models.online.OnlineModel"  # its class, as a snapshot's document names it

# What _for_prediction drops, as (class, attribute) in a snapshot's document: see unread_by_replica.
LEARNING_ONLY = frozenset(
    {
        (INTEREST_MODEL, "replay"),
        (INTEREST_MODEL, "_background"),
        (INTEREST_MODEL, "centroids"),
        ("models.arow.AROWClassifier", "_var_buf"),
    }
)


def unread_by_replica(document: Any) -> set[int]:
    """The buffers of a learner's snapshot (its :mod:`models.codec` document) that a replica drops
    as soon as it has them (:func:`_for_prediction`): :func:`models.persistence.load` need not
    keep them. AROW's variances alone are as large as its weights.

    >>> from models.codec import encode
    >>> from stream.pipeline.learner import CHECKPOINT_CLASSES, Learner
    >>> learner = Learner(Settings(hash_bits=10))
    >>> doc, buffers = encode(learner.state(), CHECKPOINT_CLASSES)
    >>> [buffers[i].nbytes for i in sorted(unread_by_replica(doc))]  # 2^10 rows, room for 8 classes
    [32768]
    """
    return attribute_buffers(document, LEARNING_ONLY)


def _for_prediction(model: OnlineModel) -> OnlineModel:
    """``model`` without what only learning reads: the replayed posts, AROW's variances (see
    :data:`LEARNING_ONLY`)."""
    model.replay = None
    model._background = None
    model.centroids = None  # type: ignore[assignment]
    if hasattr(model.classifier, "for_prediction"):
        model.classifier.for_prediction()
    return model
