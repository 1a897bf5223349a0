"""The online interest model the worker runs: featurize, predict first, learn when a label is known,
and adapt when the audience drifts.

>>> from types import SimpleNamespace as Doc
>>> m = OnlineModel("nb", hash_bits=12)
>>> post = Doc(text="brady and the patriots win", hashtags=(), engagement=(),
...            post=Doc(platform="twitter", lang="en"))
>>> x = m.features(post)
>>> m.predict(x)
{}
>>> m.learn(x, "sports", predicted=None)
>>> m.predict(x), m.version
({'sports': 1.0}, 1)
"""

from __future__ import annotations

from typing import Any

from models.drift import ClassCentroids, ClassDrift
from models.factory import make_classifier
from models.features import PostFeaturizer
from models.replay import ReplayBuffer

Features = dict[int, float]
BROAD_DRIFT_LABELS = 1000
"""Drifts of half the known classes within this many labels are taken as a change of all of them."""


class OnlineModel:
    """A featurizer, a River classifier, a version that counts the labels learned, a small replay of
    the classes a burst keeps away (:class:`models.replay.ReplayBuffer`), and drift adaptation per
    class (:class:`models.drift.ClassDrift`): when the error of a known class rises and its recent posts
    look like another class's (:class:`models.drift.ClassCentroids`), that class alone is unlearned and
    learned again from its new labels. A new class, a burst of one class, a class the model forgot
    during a burst of others and a class's new sub-topic are no drift.

    Parameters
    ----------
    name
        A name from :data:`models.factory.CANDIDATES`.
    hash_bits
        Size of the hashed feature space (``2**hash_bits``).
    adapt
        React to drift; ``False`` keeps what was learned for ever (the reference without adaptation).
    """

    def __init__(self, name: str = "nb", hash_bits: int = 20, adapt: bool = True):
        self.name = name
        self.featurizer = PostFeaturizer(hash_bits=hash_bits)
        self.classifier = make_classifier(name, hash_bits)
        if hasattr(self.classifier, "reserve"):  # fixed-size weights: allocated now, not mid-stream
            self.classifier.reserve()
        self.version = 0
        self.classes: set[str] = set()
        self.adapt = adapt
        self.class_drift = ClassDrift()
        self.centroids = ClassCentroids()
        self.drifts = 0
        self.drifts_kept = 0  # rises of a class's error that were forgetting or a new sub-topic
        self.replay = ReplayBuffer() if hasattr(self.classifier, "rehearse_one") else None
        self._resets: dict[str, int] = {}  # the classes reset lately, and when (their version)
        self._background: Any = None  # learning since the first of them
        self._resets_since = 0

    def __setstate__(self, state: dict[str, Any]) -> None:
        for old in ("detector", "background", "background_labels"):  # checkpoints of 0.4 and before
            state.pop(old, None)
        defaults: dict[str, Any] = {"_resets": {}, "_background": None, "_resets_since": 0, "drifts_kept": 0}
        self.__dict__.update({**defaults, **state})
        if "centroids" not in state:  # checkpoints of 0.5 and before: no past to compare with yet
            self.centroids = ClassCentroids()
        classifier: Any = self.classifier
        if getattr(classifier, "nb_weight", None) == 0.0 or getattr(classifier, "burst_offset_rate", None) == 0.0:
            fresh: Any = make_classifier(self.name, self.featurizer.hash_bits)
            if classifier.nb_weight == 0.0 and fresh.nb_weight:  # an `arow` of 0.15 or before gains the counts
                classifier.count_features(fresh.nb_weight, fresh.nb_in_bursts)
            if classifier.burst_offset_rate == 0.0 and getattr(fresh, "burst_offset_rate", 0.0):  # and the offsets
                classifier.burst_offset_rate = fresh.burst_offset_rate
        if "class_drift" not in state:
            self.class_drift = ClassDrift()
            self.class_drift.learned.update(dict.fromkeys(self.classes, self.class_drift.established))
        if "replay" not in state:
            self.replay = ReplayBuffer() if hasattr(self.classifier, "rehearse_one") else None

    # -- replication (see models.delta) -----------------------------------------------------
    @property
    def replicable(self) -> bool:
        """Whether the classifier can send sparse deltas (the worker's own models; not River's)."""
        return hasattr(self.classifier, "take_delta")

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_tracked", None)  # a replication detail, not the model
        return state

    def track(self) -> None:
        """Remember from now on what learning changes (see :meth:`take_delta`)."""
        self.classifier.track()  # type: ignore[attr-defined]  # the worker's models (``replicable``)
        self._tracked = self.classifier

    def take_delta(self) -> dict[str, Any] | None:
        """What a replica needs to predict as this model does now, given the previous delta; ``None``
        when a delta cannot say it (the live classifier was replaced after a drift, or nothing was
        tracked): a whole snapshot is due.

        >>> learner, replica = OnlineModel("arow", hash_bits=8), OnlineModel("arow", hash_bits=8)
        >>> learner.track(); learner.learn({1: 1.0}, "a", None); learner.learn({2: 1.0}, "b", None)
        >>> replica.apply_delta(learner.take_delta())
        >>> replica.predict({2: 1.0}) == learner.predict({2: 1.0}), replica.version, sorted(replica.classes)
        (True, 2, ['a', 'b'])
        """
        if self.classifier is not getattr(self, "_tracked", None):
            return None
        return {
            "version": self.version,
            "classes": sorted(self.classes),
            "drifts": self.drifts,
            "classifier": self.classifier.take_delta(),
        }

    def apply_delta(self, delta: dict[str, Any]) -> None:
        """Take over a :meth:`take_delta` of the learner's model (on a read-only replica)."""
        self.version = int(delta["version"])
        self.classes = set(delta["classes"])
        self.drifts = int(delta["drifts"])
        self.classifier.apply_delta(delta["classifier"])  # type: ignore[attr-defined]

    def features(self, clean_post: Any) -> Features:
        return self.featurizer.transform_one(clean_post)

    def features_and_words(self, clean_post: Any) -> tuple[Features, int]:
        """:meth:`features`, and how many of them are the post's words (the first ones: see
        :meth:`models.features.PostFeaturizer.transform_words`)."""
        return self.featurizer.transform_words(clean_post)

    # River types a classifier's features as ``dict[Hashable, Any]`` and its labels as ``bool | str | int``:
    # no ``dict[int, float]`` is one (dict is invariant), and what a classifier taught only ``str`` labels
    # predicts is typed with all three. Hence the ignores on the calls below, on those lines only.

    def predict(self, x: Features) -> dict[str, float]:
        """Class probabilities (empty before the first label)."""
        return self.classifier.predict_proba_one(x)  # type: ignore[arg-type, return-value]

    def predict_many(self, xs: list[Features]) -> list[dict[str, float]]:
        """:meth:`predict` of each, at once where the classifier can: its ``predict_proba_many``
        over a list of dicts, when it says it takes one (``many_dicts``). River's own
        ``predict_proba_many`` takes a pandas DataFrame (mini-batches): those predict one at a time."""
        if getattr(self.classifier, "many_dicts", False):
            return self.classifier.predict_proba_many(xs)  # type: ignore[attr-defined]
        predict = self.classifier.predict_proba_one
        return [predict(x) for x in xs]  # type: ignore[arg-type, misc]

    def learn(self, x: Features, y: str, predicted: str | None) -> dict[str, Any] | None:
        """Learn one label; ``predicted`` is what the live model said before (``None``: no
        prediction to score). Returns a drift event when a class drifted (see :meth:`_unlearn`)."""
        replay = self.replay
        if replay is None:
            self.classifier.learn_one(x, y)  # type: ignore[arg-type]
        else:
            replay.add(self.classifier.learn_and_keep(x, y), y)  # type: ignore[attr-defined]
        background = self._background
        if background is not None:  # since the last class drift: the model if all classes turn out changed
            if self.version - self._resets_since > BROAD_DRIFT_LABELS:
                self._background = None
            else:
                background.learn_one(x, y)
        if replay is not None:
            bursting = replay.in_burst()
            if getattr(self.classifier, "uses_bursts", False):  # its replays and predictions change in bursts
                self.classifier.bursting = bursting  # type: ignore[attr-defined]
            for kept, c in replay.due(y, bursting):
                self.classifier.rehearse_one(kept, c)  # type: ignore[attr-defined]
        self.classes.add(y)
        self.version += 1
        if not self.adapt:
            return None
        self.centroids.add(x, y)
        error_before = self.class_drift.update(y, predicted)
        if error_before is None:
            return None
        if self.centroids.nearest(y) == y:  # its posts still look like its own: forgotten, or a new
            self.drifts_kept += 1  # sub-topic; learning them is the remedy, unlearning would lose it
            return None
        return self._unlearn([y] if predicted in (None, y) else [y, predicted], error_before)

    @property
    def error_rate(self) -> float:
        """The mean error rate of the known classes (over their drift detectors' windows)."""
        rates = [d.error_rate for d in self.class_drift.detectors.values()]
        return sum(rates) / len(rates) if rates else 0.0

    def _unlearn(self, changed: list[str], error_before: float) -> dict[str, Any]:
        """Forget the classes ``changed`` (the drifted one and the one it is now taken for: its
        meaning changed), each as its classifier can (``forget_class``); the others keep theirs."""
        y = changed[0]
        recent = self._resets
        recent.update(dict.fromkeys(changed, self.version))
        self._resets = {c: v for c, v in recent.items() if self.version - v <= BROAD_DRIFT_LABELS}
        forget = getattr(self.classifier, "forget_class", None)
        if 2 * len(self._resets) >= len(self.classes):  # most classes changed at once: all of them did
            changed = [y, *sorted(self.classes - {y})]
            self._resets = {}
            background = self._background
            self.classifier = (
                background if background is not None else make_classifier(self.name, self.featurizer.hash_bits)
            )
            self._background = None
            replaced_by = "background"
        elif forget is not None:
            if self._background is None:  # learns from now on, in case all classes changed
                self._background = make_classifier(self.name, self.featurizer.hash_bits)
                self._resets_since = self.version
                if hasattr(self._background, "reserve"):
                    self._background.reserve()
            for c in changed:
                forget(c)
            replaced_by = "class reset"
        else:  # River's stock models: a fresh one
            self.classifier = make_classifier(self.name, self.featurizer.hash_bits)
            replaced_by = "fresh"
        for c in changed:  # each starts again as a new class: its detector too
            self.class_drift.forget(c)
            self.centroids.forget(c)
            if self.replay is not None:
                self.replay.forget(c)
        self.__dict__.pop("_tracked", None)  # a delta cannot say it: a snapshot is due
        self.drifts += 1
        return {
            "type": "drift",
            "model": self.name,
            "version": self.version,
            "class": y,
            "classes": changed,
            "error_rate_before": error_before,
            "replaced_by": replaced_by,
        }
