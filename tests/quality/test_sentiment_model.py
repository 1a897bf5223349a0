"""The sentiment model's quality claim on real tweets (docs/sentiment.md)."""

import itertools

from models.sentiment import SentimentModel
from stream.tools import sentiment_splits
from stream.tools.data import tweets_stream


def _real_examples(n):
    return sentiment_splits.prepare(itertools.islice(tweets_stream(), n))


def test_beats_the_lexicon_prequentially_on_real_tweets():
    examples = _real_examples(4000)
    lexicon = sentiment_splits.lexicon_figures(examples)
    model = sentiment_splits.prequential(examples, SentimentModel())
    assert model["n"] == lexicon["n"] == len(examples)
    assert model["macro_f1"] > lexicon["macro_f1"] + 0.05
