"""The online interest model the worker runs: featurize, predict first, learn when a label is known.

>>> from stream.cleaning import clean_post
>>> from stream.events import Post
>>> m = OnlineModel("nb", hash_bits=12)
>>> post = clean_post(Post(id="1", user_id="u", text="Brady and the Patriots win", created_at=0))
>>> x = m.features(post)
>>> m.predict(x)
{}
>>> m.learn(x, "sports")
>>> m.predict(x), m.version
({'sports': 1.0}, 1)
"""
from __future__ import annotations

from typing import Any, Hashable

from models.factory import make_classifier
from models.features import PostFeaturizer

Features = dict[int, float]


class OnlineModel:
    """A featurizer, a River classifier and a version that counts the labels learned.

    Parameters
    ----------
    name
        A name from :data:`models.factory.CANDIDATES`.
    hash_bits
        Size of the hashed feature space (``2**hash_bits``).
    """

    def __init__(self, name: str = "nb", hash_bits: int = 20):
        self.name = name
        self.featurizer = PostFeaturizer(hash_bits=hash_bits)
        self.classifier = make_classifier(name)
        self.version = 0
        self.classes: set[Hashable] = set()

    def features(self, clean_post: Any) -> Features:
        return self.featurizer.transform_one(clean_post)

    def predict(self, x: Features) -> dict[Hashable, float]:
        """Class probabilities (empty before the first label)."""
        return self.classifier.predict_proba_one(x)

    def learn(self, x: Features, y: Hashable) -> None:
        self.classifier.learn_one(x, y)
        self.classes.add(y)
        self.version += 1
