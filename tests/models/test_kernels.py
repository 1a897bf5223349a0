"""The compiled learning steps do the models' maths: checked against the same maths in numpy, on
real posts."""

import numpy as np

from models.arow import AROWClassifier, tfidf_unit
from models.features import PostFeaturizer
from models.sentiment import SentimentModel, lexicon_scores
from stream.pipeline.cleaning import CleanPost, clean_event
from stream.tools.data import tweets_stream


def examples(n=1500):
    featurizer = PostFeaturizer(hash_bits=16)
    return [
        (featurizer.transform_one(c), e["interest"], e["text"], e["sentiment"])
        for e in tweets_stream()[:n]
        if isinstance(c := clean_event(e), CleanPost)
    ]


def numpy_arow_step(model: AROWClassifier, x, y) -> None:
    """One AROW step in numpy: the formulas of models/arow.py, one array operation at a time."""
    idx, counts = model._vector(x)
    c = model._index.get(y)
    if c is None:
        c = model._add_class(y)
    model.n_docs += 1
    model._counts[c] += 1
    model._df[idx] += 1
    w = tfidf_unit(counts, model._df[idx], model.n_docs)
    mean, var = model._mean[idx], model._var[idx]
    scores = w @ mean
    if model.calibration_rate and len(model._classes) > 1:
        z = model.temperature * scores
        p = np.exp(z - z.max())
        p /= p.sum()
        p[c] -= 1.0
        model.temperature = min(100.0, max(0.1, model.temperature - model.calibration_rate * float(p @ scores)))
    sign = np.full(len(model._classes), -1.0)
    sign[c] = 1.0
    margin = sign * scores
    beta = np.where(margin < 1.0, 1.0 / ((w * w) @ var + model.r), 0.0)
    alpha = (1.0 - margin) * beta * sign
    model._mean[idx] = mean + np.outer(w, alpha) * var
    model._var[idx] = var - np.outer(w * w, beta) * var * var


def test_the_compiled_arow_step_is_the_numpy_maths():
    compiled, reference = AROWClassifier(hash_bits=16), AROWClassifier(hash_bits=16)
    for x, y, _, _ in examples():
        compiled.learn_one(x, y)
        numpy_arow_step(reference, x, y)
    k = len(compiled._classes)
    assert compiled._classes == reference._classes and k >= 5
    assert np.array_equal(compiled._df, reference._df)
    np.testing.assert_allclose(compiled._mean_buf[:, :k], reference._mean_buf[:, :k], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(compiled._var_buf[:, :k], reference._var_buf[:, :k], rtol=1e-4, atol=1e-6)
    assert abs(compiled.temperature - reference.temperature) < 1e-6


def test_a_replayed_post_is_the_numpy_step_without_counting_it_again():
    """``rehearse_one`` on a post kept by ``keep``: the AROW step on the post's TF-IDF at the current
    document counts, which stay as they are, and no temperature step (4-byte floats kept: within 1e-6)."""
    compiled, reference = AROWClassifier(hash_bits=16), AROWClassifier(hash_bits=16)
    posts = examples(1000)
    for x, y, _, _ in posts[:500]:
        compiled.learn_one(x, y)
        numpy_arow_step(reference, x, y)
    df, n_docs, temperature = compiled._df.copy(), compiled.n_docs, compiled.temperature
    for x, y, _, _ in posts[500:]:
        if y not in compiled._index:
            continue
        compiled.rehearse_one(compiled.keep(x), y)
        idx, counts = reference._vector(x)
        reference._step(idx, tfidf_unit(counts, reference._df[idx], reference.n_docs), reference._index[y], 1.0, False)
    k = len(compiled._classes)
    assert np.array_equal(compiled._df, df) and compiled.n_docs == n_docs and compiled.temperature == temperature
    np.testing.assert_allclose(compiled._mean_buf[:, :k], reference._mean_buf[:, :k], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(compiled._var_buf[:, :k], reference._var_buf[:, :k], rtol=1e-4, atol=1e-6)


def test_the_compiled_sentiment_step_is_the_numpy_maths():
    compiled, reference = SentimentModel(), SentimentModel()
    ref = reference.classifier
    for x, y, text, sentiment in examples(800):
        lex = lexicon_scores(text)
        compiled.learn(x, lex, sentiment, y)
        # the same label, the numpy way
        if not ref.classes:
            for c in ("negative", "neutral", "positive"):
                ref._add_class(c)
        reference.label_counts[sentiment] += 1
        reference.n_labels += 1
        idx, v = reference.arrays(x, lex, y)
        weights = ref._w[idx]
        z = v @ weights
        err = np.exp(z - z.max())
        err /= err.sum()
        err[ref.classes.index(sentiment)] -= 1.0
        grad = np.outer(v, err * reference.weight(sentiment))
        acc = ref._g[idx] + grad * grad
        ref._g[idx] = acc
        ref._w[idx] = weights - ref.lr * np.divide(grad, np.sqrt(acc), out=np.zeros_like(grad), where=acc > 0)
    np.testing.assert_allclose(compiled.classifier._w, ref._w, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(compiled.classifier._g, ref._g, rtol=1e-9, atol=1e-12)


def test_warm_up_compiles_every_step_the_learner_takes():
    """A label and a replayed post each call the compiled step with their own array types: both are
    compiled by ``warm_up``, before a worker's event loop, not on the first replay."""
    from models.kernels import arow_learn, warm_up

    warm_up()
    compiled = set(arow_learn.signatures)
    model = AROWClassifier(hash_bits=8)
    model.learn_one({1: 1.0}, "a")
    model.learn_one({2: 1.0}, "b")
    model.rehearse_one(model.keep({1: 1.0}), "a")
    assert set(arow_learn.signatures) == compiled
