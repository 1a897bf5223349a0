"""The hand-written naive Bayes has River's maths: same probabilities on a real stream."""

import itertools
import math
from typing import Any

from river import naive_bayes

from models.nb import MultinomialNB
from models.online import OnlineModel
from stream.pipeline.cleaning import CleanPost, clean_event
from stream.tools.data import tweets_stream


def cleaned(event: dict[str, Any]) -> CleanPost:
    """A post of the tweets stream, validated and cleaned (all of them are valid)."""
    clean = clean_event(event)
    assert isinstance(clean, CleanPost)
    return clean


def test_same_predictions_as_river_on_real_tweets():
    ours, stock = MultinomialNB(alpha=0.1), naive_bayes.MultinomialNB(alpha=0.1)
    featurizer = OnlineModel(hash_bits=16).featurizer
    compared = 0
    for event in itertools.islice(tweets_stream(), 1500):
        x = featurizer.transform_one(cleaned(event))
        p_ours, p_stock = ours.predict_proba_one(x), stock.predict_proba_one(x)
        assert p_ours.keys() == p_stock.keys()
        for c in p_ours:
            assert math.isclose(p_ours[c], p_stock[c], rel_tol=1e-9, abs_tol=1e-12)
        if p_ours:
            assert ours.predict_one(x) == stock.predict_one(x)  # type: ignore[arg-type]  # River: dict[Hashable, Any]
            compared += 1
        ours.learn_one(x, event["interest"])
        stock.learn_one(x, event["interest"])
    assert compared == 1499


def test_probabilities_sum_to_one_and_new_classes_appear():
    m = MultinomialNB()
    m.learn_one({1: 1.0}, "a")
    m.learn_one({2: 1.0}, "b")
    m.learn_one({3: 2.0}, "c")  # a class that appears mid-stream
    p = m.predict_proba_one({3: 1.0, 99: 1.0})
    assert set(p) == {"a", "b", "c"} and max(p, key=p.__getitem__) == "c"
    assert math.isclose(sum(p.values()), 1.0)


def test_every_model_predicts_a_batch_as_one_at_a_time():
    """A worker predicts each batch at once: whatever STREAM_MODEL names, River's own models
    included (their predict_proba_many wants pandas, which is not installed)."""
    from models.factory import BASELINES, CANDIDATES

    posts = [cleaned(e) for e in tweets_stream()[:120]]
    for name in {**CANDIDATES, **BASELINES}:
        model = OnlineModel(name, hash_bits=14)
        xs = [model.features(c) for c in posts]
        assert model.predict_many(xs[:3]) == [{}, {}, {}], name
        for x, c in zip(xs[:100], posts[:100], strict=True):
            assert c.post.interest is not None
            model.learn(x, c.post.interest, None)
        many, one = model.predict_many(xs[100:]), [model.predict(x) for x in xs[100:]]
        assert [max(p, key=p.__getitem__) for p in many] == [max(p, key=p.__getitem__) for p in one], name
        assert all(math.isclose(a[k], b[k], abs_tol=1e-9) for a, b in zip(many, one, strict=True) for k in a), name
