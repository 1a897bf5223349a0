"""Label vocabularies shared by the models and the stream, defined once."""

SENTIMENTS = ("negative", "neutral", "positive")
"""The sentiment classes, in the fixed order of the sentiment model's columns."""
