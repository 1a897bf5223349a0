"""The replay buffer keeps every class in what a model learns, whatever the order of the labels."""

from collections import Counter

import pytest

from models.online import OnlineModel
from models.replay import ReplayBuffer


def test_a_burst_of_one_class_replays_the_others_in_turn_one_per_label():
    buf = ReplayBuffer(per_class=3, burst_rate=1.0)
    for i, y in enumerate("abcd" * 3):  # each class learned three times, mixed
        buf.add({i: 1.0}, y)
        buf.due(y)
    due = []
    for i in range(30):  # then a burst of "a" alone
        buf.add({100 + i: 1.0}, "a")
        due.append(buf.due("a"))
    assert [len(d) for d in due] == [1] * 30
    replayed = [r for d in due for r in d]
    assert Counter(y for _, y in replayed) == {"b": 10, "c": 10, "d": 10}
    # each class's three kept posts come back in turn
    turns = Counter(k for x, y in replayed if y == "b" for k in x)
    assert set(turns) == {1, 5, 9} and max(turns.values()) - min(turns.values()) <= 1


def test_the_rate_bounds_the_replays_per_label():
    buf = ReplayBuffer(per_class=4, rate=0.25)
    buf.add({0: 1.0}, "b")
    replays = 0
    for i in range(400):
        buf.add({i: 1.0}, "a")
        replays += len(buf.due("a"))
    assert replays == 100


def test_a_drifted_class_is_no_longer_replayed():
    buf = ReplayBuffer(per_class=4)
    buf.add({0: 1.0}, "b")
    buf.forget("b")
    buf.add({1: 1.0}, "a")
    assert buf.due("a") == []


def test_the_online_model_keeps_posts_compact_and_replays_them():
    model = OnlineModel("arow", hash_bits=12)
    for i in range(20):
        model.learn({i: 1.0, 1000 + i % 3: 1.0}, "abc"[i % 3], None)
    for i in range(50):
        model.learn({2000 + i: 1.0}, "a", None)
    assert model.replay is not None and model.replay.replayed >= 45
    kept = model.replay._posts["b"]
    assert all(isinstance(x, bytes) for x in kept) and len(kept[0]) == 16  # two rows: 4-byte row, 4-byte value
    proba = model.predict({1001: 1.0})
    assert max(proba, key=lambda c: proba[c]) == "b"  # "b" still known after 50 labels of "a" alone


def test_a_buffer_of_an_earlier_checkpoint_takes_the_current_policy():
    from models.codec import decode, encode

    old = ReplayBuffer(per_class=32, away=50, rate=0.2)
    for i in range(40):
        old.add({i: 1.0}, "b")
    del old.__dict__["policy"]  # as 0.6 wrote it
    doc, buffers = encode(old, {"models.replay.ReplayBuffer": ReplayBuffer})
    restored = decode(doc, [bytes(b) for b in buffers], {"models.replay.ReplayBuffer": ReplayBuffer})
    fresh = ReplayBuffer()
    assert (restored.per_class, restored.away, restored.rate) == (fresh.per_class, fresh.away, fresh.rate)
    assert list(restored._posts["b"]) == [{i: 1.0} for i in range(8, 40)]
    assert restored._posts["b"].maxlen == fresh.per_class
    restored.add({99: 1.0}, "a")
    assert restored.due("a") == [({8: 1.0}, "b")]  # replayed at once: no 50 labels away first


def test_a_long_burst_replays_two_posts_a_label_of_two_classes_and_a_mixed_stream_one():
    buf = ReplayBuffer(per_class=8, burst_away=50)
    per_label = []
    for i in range(400):  # mixed: every class back within a few labels
        y = "abcd"[i * 7 % 4]
        buf.add({i: 1.0}, y)
        per_label.append(len(buf.due(y)))
    assert per_label[4:] == [1] * 396 and not buf.in_burst()
    burst = []
    for i in range(200):  # then a burst of "a"
        buf.add({1000 + i: 1.0}, "a")
        burst.append(buf.due("a"))
    assert [len(d) for d in burst[:40]] == [1] * 40  # not yet away 50 labels
    assert all(len(d) == 2 and d[0][1] != d[1][1] for d in burst[60:])
    assert {c for d in burst[60:] for _, c in d} == {"b", "c", "d"}


def test_a_rare_class_of_a_mixed_stream_is_no_burst():
    """A class seen once every 500 labels is away longer than ``burst_away`` most of the time; it is
    not kept away by a burst until it is away four times its usual gap."""
    buf = ReplayBuffer(per_class=8, burst_away=200)
    bursts = 0
    for i in range(6000):
        y = "r" if i % 500 == 499 else "abcd"[i % 4]
        buf.add({i: 1.0}, y)
        buf.due(y)
        bursts += buf.in_burst()
    assert bursts == 0
    for t in range(1, 4000):  # then the rare class stays away
        y = "abcd"[t % 4]
        buf.add({t: 1.0}, y)
        buf.due(y)
        if buf.in_burst():
            break
    # 12 labels in 6,000 + t: away four mean gaps once t * 12 >= 4 * (6,000 + t)
    assert t == 3000


def test_a_buffer_of_a_checkpoint_without_burst_replays_takes_them_on():
    from models.codec import decode, encode

    old = ReplayBuffer(per_class=8)
    for i, y in enumerate("abc" * 200 + "a" * 300):
        old.add({i: 1.0}, y)
    for name in ("_labelled", "_count", "burst_rate", "burst_away"):  # as 0.15 wrote it
        del old.__dict__[name]
    doc, buffers = encode(old, {"models.replay.ReplayBuffer": ReplayBuffer})
    restored = decode(doc, [bytes(b) for b in buffers], {"models.replay.ReplayBuffer": ReplayBuffer})
    fresh = ReplayBuffer()
    assert (restored.burst_rate, restored.burst_away) == (fresh.burst_rate, fresh.burst_away)
    # when each class was last labelled or replayed, and as many labels of each (not recorded before)
    assert restored._labelled == {"a": 900, "b": 599, "c": 600} and set(restored._count.values()) == {301}
    assert restored.in_burst()  # "b" away 301 labels
    restored.add({999: 1.0}, "a")
    assert len(restored.due("a")) == 2


def test_the_learner_replays_in_bursts_as_the_setting_says_also_after_a_checkpoint():
    from stream.pipeline.learner import Learner
    from stream.settings import ConfigError, Settings

    one = Learner(Settings(burst_replays=1.0))
    assert one.model.replay is not None and one.model.replay.burst_rate == 1.0
    two = Learner(Settings())
    assert two.model.replay is not None and two.model.replay.burst_rate == 2.0
    one.restore(two.state())  # a checkpoint written with 2 replays in bursts
    assert one.model.replay is not None and one.model.replay.burst_rate == 1.0
    with pytest.raises(ConfigError, match=r"STREAM_BURST_REPLAYS=0\.5 must be between 1 and 4"):
        Settings(burst_replays=0.5).validate()
