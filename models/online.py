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
