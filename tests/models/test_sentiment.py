"""The sentiment model: lexicon thresholds, the cold-start blend, learning, checkpoints, batches (its
quality on real tweets is in tests/quality)."""

import io
import itertools
import json
import math
import pickle
import tarfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from river.checks import check_estimator

from models.features import PostFeaturizer, words_of
from models.labels import SENTIMENTS
from models.sentiment import (
    BIN_EDGES,
    FEW_POSTS,
    Sentiment,
    SentimentClassifier,
    SentimentModel,
    lex_from_list,
    lex_to_list,
    lexicon_features,
    lexicon_label,
    lexicon_matrix,
    lexicon_proba,
    lexicon_proba_matrix,
    lexicon_scores,
)
from stream.tools import data, sentiment_splits
from stream.tools.data import tweets_stream

POSITIVE = lexicon_scores("I love this, what a GREAT day :)")
NEGATIVE = lexicon_scores("Worst flight ever, I hate this airline")
NEUTRAL = lexicon_scores("The flight leaves at nine")


@pytest.mark.parametrize(
    ("compound", "label"),
    [
        (-1.0, "negative"),
        (-0.05, "negative"),
        (-0.0499, "neutral"),
        (0.0, "neutral"),
        (0.0499, "neutral"),
        (0.05, "positive"),
        (1.0, "positive"),
    ],
)
def test_lexicon_label_uses_vaders_thresholds(compound, label):
    assert lexicon_label(compound) == label


def test_lexicon_reads_the_raw_text():
    assert lexicon_label(POSITIVE[0]) == "positive"
    assert lexicon_label(NEGATIVE[0]) == "negative"
    assert lexicon_label(NEUTRAL[0]) == "neutral"
    # caps and exclamation marks intensify: why the lexicon gets the raw text, not the cleaned one
    assert lexicon_scores("GREAT!!!")[0] > lexicon_scores("great")[0] > 0
    compound, pos, neu, neg = POSITIVE
    assert -1 <= compound <= 1 and math.isclose(pos + neu + neg, 1.0, abs_tol=0.01)


@given(st.floats(-1, 1))
def test_lexicon_proba_agrees_with_the_label_and_the_compound(c):
    p = lexicon_proba(c)
    assert math.isclose(sum(p.values()), 1.0) and min(p.values()) >= 0
    assert max(p, key=p.__getitem__) == lexicon_label(c)
    assert math.isclose(p["positive"] - p["negative"], c, abs_tol=1e-12)


def test_lexicon_scores_travel_as_json():
    assert lex_from_list(json.loads(json.dumps(lex_to_list(POSITIVE)))) == pytest.approx(POSITIVE, abs=1e-4)
    with pytest.raises(ValueError, match="expected 4 numbers, got 2"):
        lex_from_list([0.1, 0.2])


def test_cold_model_is_the_lexicon_and_the_flag_flips_at_warmup():
    model = SentimentModel(warmup=5)
    s = model.predict({}, NEGATIVE)
    assert s == Sentiment("negative", NEGATIVE[0], True)
    for i in range(5):
        assert model.predict({1: 1.0}, NEUTRAL).cold
        model.learn({1: 1.0}, NEUTRAL, "neutral")
        assert model.n_labels == i + 1
    assert not model.predict({1: 1.0}, NEUTRAL).cold
    assert json.loads(json.dumps(s.to_dict())) == {"label": "negative", "score": round(NEGATIVE[0], 4), "cold": True}


def test_learning_overrides_the_lexicon_where_the_labels_disagree():
    # In this stream, "sick" is praise: the lexicon says negative, the labels say positive.
    model = SentimentModel(warmup=20)
    sick, other = {101: 1.0}, {202: 1.0}
    lex_sick = lexicon_scores("that set was sick")
    assert lexicon_label(lex_sick[0]) == "negative"
    before = model.predict(sick, lex_sick)
    for _ in range(40):
        model.learn(sick, lex_sick, "positive")
        model.learn(other, NEGATIVE, "negative")
        model.learn({303: 1.0}, NEUTRAL, "neutral")
    after = model.predict(sick, lex_sick)
    assert before.label == "negative" and after.label == "positive"
    assert after.score > before.score
    assert model.predict(other, NEGATIVE).label == "negative"


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.dictionaries(st.integers(0, 2**20 - 1), st.floats(0, 20), max_size=8),
            st.tuples(st.floats(-1, 1), st.floats(0, 1), st.floats(0, 1), st.floats(0, 1)),
            st.sampled_from(SENTIMENTS),
        ),
        max_size=30,
    )
)
def test_score_is_in_range_and_has_the_sign_of_the_label(stream):
    model = SentimentModel(warmup=10, bits=8)
    for x, lex, y in stream:
        s = model.predict(x, lex)
        assert s.label in SENTIMENTS and -1.0 <= s.score <= 1.0
        if s.label == "positive":
            assert s.score >= 0
        elif s.label == "negative":
            assert s.score <= 0
        model.learn(x, lex, y)


def test_unknown_label_is_refused():
    with pytest.raises(ValueError, match="sentiment label"):
        SentimentModel().learn({}, NEUTRAL, "angry")


def _real_examples(n):
    return sentiment_splits.prepare(itertools.islice(tweets_stream(), n))


def test_checkpoint_round_trip_and_determinism():
    examples = _real_examples(600)
    a, b = SentimentModel(warmup=50), SentimentModel(warmup=50)
    for e in examples[:500]:
        a.learn(e.x, e.lex, e.y, e.group)
        b.learn(e.x, e.lex, e.y, e.group)
    restored = pickle.loads(pickle.dumps(a))
    for e in examples[500:]:
        predictions = [m.predict(e.x, e.lex, e.group) for m in (a, b, restored)]
        assert predictions[0] == predictions[1] == predictions[2]
    restored.learn(examples[-1].x, examples[-1].lex, "positive")
    a.learn(examples[-1].x, examples[-1].lex, "positive")
    assert a.predict(examples[0].x, examples[0].lex) == restored.predict(examples[0].x, examples[0].lex)


def test_a_checkpoint_from_before_the_interest_words_loads_and_learns_them():
    examples = _real_examples(300)
    old = SentimentModel(warmup=50)
    for e in examples[:200]:
        old.learn(e.x, e.lex, e.y)
    state = dict(old.__dict__)
    del state["interest_words"], state["interest_min_proba"]  # what such a checkpoint holds
    old.__dict__ = state
    restored = pickle.loads(pickle.dumps(old))
    assert restored.interest_words and restored.interest_min_proba == 0.95
    assert all(restored.predict(e.x, e.lex) == old.predict(e.x, e.lex) for e in examples[200:])
    e = examples[250]
    before = restored.proba(e.x, e.lex, e.group)
    restored.learn(e.x, e.lex, "positive", e.group)
    assert restored.proba(e.x, e.lex, e.group)["positive"] > before["positive"]


def test_a_word_means_what_it_means_in_its_interest():
    """The same words, positive in one interest and negative in another: the per-interest copies
    learn both; the shared words alone cannot (a source with no sure interest gets those)."""
    x = {11: 1.0, 12: 1.0}
    for interest_words in (True, False):
        model = SentimentModel(warmup=0, interest_words=interest_words)
        for _ in range(60):
            model.learn(x, NEUTRAL, "positive", "music")
            model.learn(x, NEUTRAL, "negative", "travel")
        labels = (model.predict(x, NEUTRAL, "music").label, model.predict(x, NEUTRAL, "travel").label)
        assert (labels == ("positive", "negative")) is interest_words
    # what the worker gives a prediction: the interest model's top class only when it is sure
    assert SentimentModel(interest_words=False).interest_of({"music": 1.0}) is None


def test_array_features_are_the_dict_features():
    """The model's fast path (arrays) gives the classifier the very rows and values of the readable
    one (features, then the classifier's own folding), colliding and zero features included."""
    model = SentimentModel(bits=8)  # 238 word rows: real posts collide
    rows = model._word_rows
    cases: list[tuple[dict[int, float], tuple[float, ...], int | None]] = [
        (e.x, e.lex, e.words) for e in _real_examples(300)
    ]
    cases += [
        ({}, NEUTRAL, None),
        ({5: 1.0, 5 + rows: 2.0}, POSITIVE, None),
        ({7: 0.0, 8: 1.0}, NEGATIVE, None),
        ({9: 1.0}, (0.0, 0.0, 0.0, 0.0), None),
        ({1: 1.0, 2: 1.0}, POSITIVE, 0),
    ]
    collided = 0
    for (x, lex, words), interest in itertools.product(cases, (None, "travel")):
        idx, val = model.arrays(x, lex, interest, words)
        ref_idx, ref_val = model.classifier._vector(model.features(x, lex, interest, words))
        assert idx.tolist() == ref_idx.tolist() and val.tolist() == ref_val.tolist()
        collided += len({f % rows for f in x}) < len(x)
    assert collided > 10


def test_batch_predictions_equal_one_at_a_time():
    examples = _real_examples(900)
    model = SentimentModel(warmup=200)

    def check(posts):
        # a large batch (array operations over all of it), a few posts (post by post), and around the size
        # where predict_many changes from one to the other; with interests for some, and for none
        for size in (len(posts), 1, FEW_POSTS - 1, FEW_POSTS):
            batch = posts[:size]
            for interests in ([e.group if i % 2 else None for i, e in enumerate(batch)], [None] * size):
                words = [e.words for e in batch]
                many = model.predict_many([e.x for e in batch], [e.lex for e in batch], interests, words)
                one = [model.predict(e.x, e.lex, i, e.words) for e, i in zip(batch, interests, strict=True)]
                assert [s.label for s in many] == [s.label for s in one]
                assert all(
                    math.isclose(a.score, b.score, abs_tol=1e-12) and a.cold == b.cold
                    for a, b in zip(many, one, strict=True)
                )

    assert model.predict_many([], []) == []
    no_warmup = SentimentModel(warmup=0)  # no label yet: the lexicon answers, even without a warm-up
    assert no_warmup.predict_many([{1: 1.0}], [POSITIVE]) == [no_warmup.predict({1: 1.0}, POSITIVE)]
    assert no_warmup.predict({1: 1.0}, POSITIVE).label == "positive"
    check(examples[:50])  # cold: the lexicon alone
    for e in examples[:100]:
        model.learn(e.x, e.lex, e.y, e.group, e.words)
    check([*examples[:300], examples[0].__class__({}, 0, NEUTRAL, "neutral", "")])  # half-way blend, no words
    for e in examples[100:700]:
        model.learn(e.x, e.lex, e.y, e.group, e.words)
    check(examples[700:])


def test_classifier_passes_rivers_estimator_checks():
    check_estimator(SentimentClassifier(bits=10))


def test_classifier_memory_is_bounded_and_new_classes_change_nothing_else():
    clf = SentimentClassifier(bits=6)
    for i in range(500):
        clf.learn_one({i: 1.0, f"w{i}": 1.0}, "a" if i % 2 else "b")
    p = clf.predict_proba_one({3: 1.0})
    clf.learn_one({999: 0.0}, "c")  # a new class, learned from an all-zero example
    q = clf.predict_proba_one({3: 1.0})
    assert clf._w.shape == (64, 3)
    assert q["a"] / q["b"] == pytest.approx(p["a"] / p["b"])


def _sdist(tmp_path, lines):
    inner = io.BytesIO()
    with tarfile.open(fileobj=inner, mode="w:gz") as tar:
        text = "\r\n".join(lines).encode()
        info = tarfile.TarInfo(data.VADER_TWEETS)
        info.size = len(text)
        tar.addfile(info, io.BytesIO(text))
    path = tmp_path / data.VADER_SDIST
    with tarfile.open(path, mode="w:gz") as tar:
        info = tarfile.TarInfo(f"vaderSentiment-3.3.2/{data.VADER_INNER}")
        info.size = len(inner.getvalue())
        tar.addfile(info, io.BytesIO(inner.getvalue()))
    return path


def test_vader_tweets_are_read_from_the_sdist(tmp_path):
    assert data.find_vader_sdist([tmp_path]) is None
    path = _sdist(tmp_path, ["1\t2.7\tSo lucky &amp; happy", "2\t-0.2\tmeh", "3\t-3.1\tawful"])
    assert data.find_vader_sdist([tmp_path / "nope", tmp_path]) == path
    assert data.read_vader_tweets(path) == [("So lucky & happy", 2.7), ("meh", -0.2), ("awful", -3.1)]
    examples = sentiment_splits.vader_examples(path, hash_bits=12)
    assert [e.y for e in examples] == ["positive", "neutral", "negative"]


def test_the_sentiment_reads_a_posts_words_not_its_bigrams_hashtags_or_platform():
    """Two posts with the same words, one with a hashtag, on another platform, get the same
    sentiment, though their interest features differ; before the featurizer said which features are
    words (``words=None``), all of them counted."""
    from stream.pipeline.cleaning import clean_event

    featurizer = PostFeaturizer()
    model = SentimentModel(warmup=0)
    for e in _real_examples(400):
        model.learn(e.x, e.lex, e.y, e.group, e.words)
    base = {"id": "1", "user_id": "u", "created_at": 0, "lang": "en"}
    tweet = clean_event({**base, "text": "Flight delayed again, united", "platform": "twitter"})
    forum = clean_event({**base, "text": "Flight delayed again, #United", "platform": "forum"})
    (x1, n1), (x2, n2) = featurizer.transform_words(tweet), featurizer.transform_words(forum)
    assert x1 != x2 and words_of(x1, n1) == words_of(x2, n2) and n1 == 3
    lex = lexicon_scores("Flight delayed again")
    assert model.proba(x1, lex, None, n1) == model.proba(x2, lex, None, n2)
    assert model.proba(x1, lex) != model.proba(x1, lex, None, n1)


# VADER's scores, with the values where the features change (the bins' edges, the neutral band, zero)
# drawn often
_EDGES = [0.0, *BIN_EDGES, -1.0, 1.0]
_score = st.one_of(st.sampled_from(_EDGES), st.floats(-1.0, 1.0, allow_nan=False))
_share = st.one_of(st.just(0.0), st.floats(0.0, 1.0, allow_nan=False))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_score, _share, _share, _share), min_size=1, max_size=20))
def test_the_lexicon_of_a_batch_is_the_lexicon_of_each_post(lexes):
    """The array forms a batch's prediction uses give what each post's features and blend give."""
    import numpy as np

    matrix = lexicon_matrix(np.array(lexes))
    probas = lexicon_proba_matrix(np.array([lex[0] for lex in lexes]))
    for lex, row, proba in zip(lexes, matrix.tolist(), probas.tolist(), strict=True):
        assert {k: v for k, v in lexicon_features(lex).items() if v} == {k: v for k, v in enumerate(row) if v}
        assert proba == pytest.approx(list(lexicon_proba(lex[0]).values()), abs=1e-15)
