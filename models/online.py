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

from models.drift import DriftDetector
from models.factory import make_classifier
from models.features import PostFeaturizer

Features = dict[int, float]


class OnlineModel:
    """A featurizer, a River classifier, a version that counts the labels learned, and drift
    adaptation: a rise of the prequential error starts a background model (warning), and a
    confirmed rise (drift) puts the background model live.

    Parameters
    ----------
    name
        A name from :data:`models.factory.CANDIDATES`.
    hash_bits
        Size of the hashed feature space (``2**hash_bits``).
    adapt
        React to drift; ``False`` keeps one model for ever (the reference without adaptation).
    """

    def __init__(self, name: str = "nb", hash_bits: int = 20, adapt: bool = True):
        self.name = name
        self.featurizer = PostFeaturizer(hash_bits=hash_bits)
        self.classifier = make_classifier(name)
        if hasattr(self.classifier, "reserve"):  # fixed-size weights: allocated now, not mid-stream
            self.classifier.reserve()
        self.version = 0
        self.classes: set[str] = set()
        self.adapt = adapt
        self.detector = DriftDetector()
        self.background: Any = None
        self.background_labels = 0
        self.drifts = 0

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
        prediction to score). Returns a drift event when the live model was replaced."""
        self.classifier.learn_one(x, y)  # type: ignore[arg-type]
        self.classes.add(y)
        self.version += 1
        if not self.adapt or predicted is None:
            return None
        if self.background is not None:
            self.background.learn_one(x, y)
            self.background_labels += 1
        error_before = self.detector.error_rate
        state = self.detector.update(predicted != y)
        if state == "warning" and self.background is None:
            self.background = make_classifier(self.name)
            self.background_labels = 0
        elif state == "drift":
            return self._replace(error_before)
        return None

    def _replace(self, error_before: float) -> dict[str, Any]:
        replaced_by = "background" if self.background is not None else "fresh"
        self.classifier = self.background if self.background is not None else make_classifier(self.name)
        event = {
            "type": "drift",
            "model": self.name,
            "version": self.version,
            "error_rate_before": error_before,
            "replaced_by": replaced_by,
            "background_labels": self.background_labels,
        }
        self.background = None
        self.background_labels = 0
        self.drifts += 1
        return event
