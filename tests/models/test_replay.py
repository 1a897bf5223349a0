"""The replay buffer keeps every class in what a model learns, whatever the order of the labels."""

from collections import Counter

from models.online import OnlineModel
from models.replay import ReplayBuffer


def test_a_burst_of_one_class_replays_the_others_in_turn_one_per_label():
    buf = ReplayBuffer(per_class=3)
    for i, y in enumerate("abcd" * 3):  # each class learned three times, mixed
        buf.add({i: 1.0}, y)
        buf.due(y)
    due = []
    for i in range(30):  # then a burst of "a" alone
        buf.add({100 + i: 1.0}, "a")
        due.append(buf.due("a"))
    replayed = [r for r in due if r is not None]
    assert len(replayed) == 30
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
        replays += buf.due("a") is not None
    assert replays == 100


def test_a_drifted_class_is_no_longer_replayed():
    buf = ReplayBuffer(per_class=4)
    buf.add({0: 1.0}, "b")
    buf.forget("b")
    buf.add({1: 1.0}, "a")
    assert buf.due("a") is None


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
    assert restored.due("a") == ({8: 1.0}, "b")  # replayed at once: no 50 labels away first
