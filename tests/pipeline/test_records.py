"""A batch's scores as the processor uses them: the same top classes, interests and rounding as one post
at a time."""

import random
from typing import Any

import numpy as np
import pytest

from models.features import top_class
from models.sentiment import SentimentModel
from stream.pipeline.records import score_batch


def batches(seed: int) -> list[list[dict[str, Any]]]:
    """Random batches: the same classes in one order (the array path), orders that differ, empty
    dicts, ties, and float32 values."""
    rng = random.Random(seed)
    out = []
    for _ in range(300):
        classes = rng.sample("abcdefgh", rng.randint(1, 8))
        batch: list[dict[str, Any]] = [
            {c: rng.choice((0.25, 0.5, 0.95, rng.random())) for c in classes} for _ in range(rng.randint(1, 20))
        ]
        kind = rng.random()
        if kind < 0.2:
            batch.append(dict(reversed(list(batch[0].items()))))  # another order
        elif kind < 0.3:
            batch.append({})  # a model that knows no class yet
        elif kind < 0.4:
            batch = [{c: np.float32(p) for c, p in s.items()} for s in batch]
        out.append(batch)
    return out


@pytest.mark.parametrize("seed", [0, 1])
def test_a_batch_gives_each_posts_top_class_its_probability_and_rounding(seed):
    for batch in batches(seed):
        scored = score_batch(batch)
        assert scored.top == [top_class(s) for s in batch]
        assert scored.top_proba == [s[t] if t is not None else 0.0 for s, t in zip(batch, scored.top, strict=True)]
        assert scored.shown == [{c: round(float(p), 5) for c, p in s.items()} for s in batch]


@pytest.mark.parametrize("interest_words", [True, False])
def test_the_sentiment_models_interests_of_a_batch_are_those_of_each_post(interest_words):
    model = SentimentModel(interest_words=interest_words, interest_min_proba=0.95)
    for batch in batches(2):
        scored = score_batch(batch)
        assert model.interests_of(scored.top, scored.top_proba) == [model.interest_of(s) for s in batch]


def test_no_posts_no_scores():
    assert score_batch([]) == ([], [], [])
