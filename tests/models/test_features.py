"""The featurizer's hashed counts are the counts of its readable tokens, hashed with ``stable_hash``:
the same in every process, so that a learner's model and every worker's replica agree."""

from collections import Counter

from models.features import PostFeaturizer, stable_hash
from stream.pipeline.cleaning import CleanPost, clean_event
from stream.tools.data import tweets_stream


def test_hashed_counts_are_the_stable_hashes_of_the_tokens():
    featurizer = PostFeaturizer(hash_bits=12)  # small: collisions add up, as they must
    mask = (1 << 12) - 1
    for event in tweets_stream()[:500]:
        clean = clean_event(event)
        if not isinstance(clean, CleanPost):
            continue
        post = clean.post
        tokens = featurizer.tokens(clean.text, clean.hashtags, post.platform, post.lang, clean.engagement)
        expected = Counter(stable_hash(t, mask) for t in tokens)
        assert featurizer.transform_one(clean) == {h: float(n) for h, n in expected.items()}
