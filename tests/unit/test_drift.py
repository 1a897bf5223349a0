"""Concept drift on real tweets: the meaning of the labels changes half-way through the stream."""
import orjson
import pytest

from models.online import OnlineModel
from stream.data import tweets_stream
from stream.learner import Learner
from stream.processor import Message, Processor
from stream.settings import Settings

CHANGE, AFTER, WINDOW = 5000, 1500, 1000


def drifting_stream():
    """Labelled tweets; from CHANGE on, every interest label is renamed to the next one."""
    events = [e for e in tweets_stream()[:CHANGE * 2]]
    names = sorted({e["interest"] for e in events})
    shift = {a: b for a, b in zip(names, names[1:] + names[:1])}
    return [dict(e, interest=shift[e["interest"]]) if i >= CHANGE else e for i, e in enumerate(events)]


def replay(adapt):
    """Per-post correctness (prediction made before learning) and the drift events."""
    proc = Processor(Settings(), Learner(Settings(), OnlineModel("nb", 20, adapt=adapt)))
    events = drifting_stream()
    hits, drifts = [], []
    for i, e in enumerate(events):
        out = proc.run_locally(proc.process_posts([Message(orjson.dumps(e))]))
        for _, value in out.predictions:
            hits.append((i, orjson.loads(value)["interest"] == e["interest"]))
        drifts.extend((i, orjson.loads(v)) for v in out.events)
    return hits, drifts


def accuracy(hits, start, end):
    window = [h for i, h in hits if start <= i < end]
    return sum(window) / len(window)


@pytest.fixture(scope="module")
def runs():
    return replay(adapt=True), replay(adapt=False)


def test_drift_is_detected_soon_after_the_change_and_not_before(runs):
    (_, drifts), (_, none) = runs
    assert none == []
    assert drifts and all(i >= CHANGE for i, _ in drifts)
    first, event = drifts[0]
    assert first - CHANGE <= 300, first
    assert event["type"] == "drift" and event["replaced_by"] in ("background", "fresh")


def test_adaptation_recovers_within_five_points_and_faster_than_no_adaptation(runs):
    (adaptive, _), (static, _) = runs
    before = accuracy(adaptive, CHANGE - WINDOW, CHANGE)
    after = accuracy(adaptive, CHANGE + AFTER, CHANGE + AFTER + WINDOW)
    after_static = accuracy(static, CHANGE + AFTER, CHANGE + AFTER + WINDOW)
    assert after >= before - 0.05, (before, after)
    assert after_static < after - 0.2, (after_static, after)
