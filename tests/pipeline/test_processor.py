"""The per-event logic without Kafka: predict first, learn after, reject with reasons, lose nothing."""

import base64

import orjson

from stream.pipeline.learner import Learner
from stream.pipeline.processor import Processor
from stream.pipeline.records import Message
from stream.settings import Settings
from stream.worker.prometheus import model_gauges


def post(i, text=None, **extra):
    body = {
        "id": f"p{i}",
        "user_id": f"u{i % 3}",
        "text": text or f"post number {i} about tom brady",
        "created_at": 1424777752000 + i,
        **extra,
    }
    return Message(orjson.dumps(body), key=f"p{i}".encode(), topic="social.posts", partition=0, offset=i)


class Clock:
    def __init__(self):
        self.t = 1_424_777_752.0  # the posts' own time: a clock far behind them would refuse them as from the future

    def __call__(self):
        return self.t


def local(proc, msgs):
    return proc.run_locally(proc.process_posts(msgs))


def feedback(proc, body):
    return proc.run_locally(proc.process_feedback([Message(orjson.dumps(body))]))


def test_predict_then_learn_inline_labels():
    proc = Processor(Settings())
    out = local(proc, [post(1, interest="sports")])
    first = orjson.loads(out.predictions[0][1])
    assert first["interest"] is None and first["model_version"] == 0  # predicted before learning
    assert orjson.loads(out.training[0][1])["y"] == "sports"
    out = local(proc, [post(2, interest="sports")])
    second = orjson.loads(out.predictions[0][1])
    assert second["interest"] == "sports" and second["scores"] == {"sports": 1.0}
    assert proc.learner.quality.snapshot()["n"] == 1  # the first (None) prediction is not scored
    assert proc.model.version == 2


def test_each_malformed_record_is_a_dead_letter_with_its_bytes():
    proc = Processor(Settings())
    bad = [
        Message(b"{oops", topic="t", partition=2, offset=9),
        Message(None, offset=10),
        post(3, text="@someone http://t.co/x"),
    ]
    out = proc.process_posts(bad)
    assert out.predictions == []
    letters = [orjson.loads(v) for _, v in out.dead_letters]
    assert [d["reason"] for d in letters] == ["malformed_json", "missing_value", "empty_text"]
    assert base64.b64decode(letters[0]["original_b64"]) == b"{oops"
    assert letters[0]["source"] == {"topic": "t", "partition": 2, "offset": 9, "timestamp_ms": None}
    assert base64.b64decode(letters[2]["original_b64"]) == bad[2].value
    assert dict(proc.stats.dead_letters) == {"malformed_json": 1, "missing_value": 1, "empty_text": 1}


def test_duplicates_are_dropped_and_counted():
    proc = Processor(Settings())
    out = proc.process_posts(
        [
            post(1, text="Brady deflated the footballs again"),
            post(1, text="same id, other text entirely"),
            post(2, text="RT @fan: Brady deflated the footballs again"),  # a retweet of post 1
            post(3, text="thank you"),
            post(4, text="thank you"),  # short common texts are not copies
        ]
    )
    assert [orjson.loads(v)["post_id"] for _, v in out.predictions] == ["p1", "p3", "p4"]
    assert dict(proc.stats.duplicates) == {"id": 1, "text": 1}


def test_delayed_labels_join_the_features_used_at_prediction_time():
    clock = Clock()
    proc = Processor(Settings(feedback_ttl=60), clock=clock)
    local(proc, [post(1, interest="sports")])
    local(proc, [post(2)])  # no label yet: predicted, then waits
    assert len(proc.joiner.pending) == 1 and proc.model.version == 1
    assert len(proc.learner.pending) == 0  # the post waits where it was predicted, not in the learner
    feedback(proc, {"post_id": "p2", "interest": "sports"})
    assert proc.model.version == 2 and proc.stats.outcomes["learned_feedback"] == 1
    # a label that overtakes its post waits for it
    feedback(proc, {"post_id": "p3", "interest": "sports"})
    local(proc, [post(3)])
    assert proc.model.version == 3 and proc.stats.outcomes["feedback_early"] == 1
    # a label after the TTL finds nothing to learn from
    local(proc, [post(4)])
    clock.t += 61
    feedback(proc, {"post_id": "p4", "interest": "sports"})
    assert proc.model.version == 3 and proc.joiner.pending.expired == 1
    out = proc.process_feedback([Message(b'{"post_id": 5}')])
    assert orjson.loads(out.dead_letters[0][1])["reason"] == "missing_field"


def test_a_label_whose_post_waited_in_another_worker_waits_and_expires_counted():
    """A partition moved (its worker died): the post waited in the old owner, its label comes to the new
    one, finds nothing, waits as an early label and expires after the TTL, counted; nothing is learned."""
    clock = Clock()
    old, new = Processor(Settings(feedback_ttl=60), clock=clock), Processor(Settings(feedback_ttl=60), clock=clock)
    assert old.process_posts([post(1)]).training == [] and len(old.joiner.pending) == 1
    assert feedback(new, {"post_id": "p1", "interest": "sports"}).training == []
    assert new.stats.outcomes["feedback_early"] == 1 and len(new.joiner.early) == 1
    clock.t += 61
    local(new, [post(2)])  # the store expires its entries as it is used
    assert new.joiner.early.expired == 1 and new.snapshot()["early_labels_expired"] == 1
    assert new.model.version == 0


def test_a_post_is_learned_once_even_if_it_comes_again():
    proc = Processor(Settings())
    out = proc.process_posts([post(1, interest="sports")])
    proc.run_locally(out)
    proc.run_locally(out)  # the same training records again (a replay after a crash)
    assert proc.model.version == 1 and proc.stats.outcomes["learned_duplicate"] == 1


def test_frozen_model_does_not_learn_but_is_scored():
    proc = Processor(Settings())
    local(proc, [post(i, interest="sports") for i in range(3)])
    frozen = Processor(Settings(), Learner(Settings(), proc.model, learn=False))
    local(frozen, [post(10 + i, interest="politics") for i in range(3)])
    assert frozen.model.version == 3 and frozen.learner.quality.snapshot()["accuracy"] == 0.0


def test_snapshot_and_gauges_are_json_ready():
    proc = Processor(Settings())
    local(proc, [post(i, interest="sports" if i % 2 else "travel") for i in range(20)])
    snap = orjson.loads(orjson.dumps(proc.snapshot()))
    assert snap["counts"]["predicted"] == 20 and snap["model"]["classes"] == ["sports", "travel"]
    assert {name for name, _, _ in model_gauges(proc, proc.learner.offset)} >= {
        "model_version",
        "prequential_macro_f1",
    }


def test_malformed_training_records_are_counted_not_learned():
    learner = Learner(Settings())
    for offset, raw in enumerate(
        [
            b"{oops",
            b'{"k": "label", "id": "p1"}',
            b'{"k": "what", "id": "p1", "y": "a"}',
            b'{"k": "post", "id": "p1", "x": 5, "y": "a"}',
        ]
    ):
        assert learner.apply(offset, raw, timestamp_ms=0) is None
    assert learner.stats.outcomes["training_malformed"] == 4 and learner.model.version == 0
    assert learner.offset == 3  # skipped, not stuck: the log goes on


def test_predictions_are_cold_until_the_model_has_learned_enough_labels():
    proc = Processor(Settings(cold_labels=3))
    colds = [
        orjson.loads(local(proc, [post(i, text=f"{w} game tonight", interest="sports")]).predictions[0][1])["cold"]
        for i, w in enumerate(["patriots", "brady", "seahawks", "football", "touchdown"])
    ]
    assert colds == [True, True, True, False, False]


def test_evaluate_reports_blocks_classes_segments_log_loss_and_a_new_class_mid_stream():
    from stream.tools.evaluate import evaluate

    words = {"sports": "brady touchdown patriots", "travel": "flight delayed airport", "music": "festival band stage"}
    events = []
    for i in range(300):
        interest = ["sports", "travel"][i % 2] if i < 150 else ["sports", "travel", "music"][i % 3]
        events.append(
            {
                "id": f"e{i}",
                "user_id": "u",
                "text": f"{words[interest]} {'abcdefghij'[i % 10]}{'klmnopqrst'[i // 10 % 10]}",
                "created_at": 1_000_000 + i * 1000,
                "interest": interest,
                "campaign": "c1" if i % 4 else "c2",
            }
        )
    report = evaluate(events, settings=Settings(), blocks=3)
    detail = report["detail"]
    assert detail["n"] == report["n"] and len(detail["blocks"]) == 3
    assert set(detail["per_class"]) == {"sports", "travel", "music"}  # music appeared mid-stream
    assert detail["per_class"]["music"]["recall"] > 0.8  # ... and was learned without a restart
    assert set(detail["segments"]["campaign"]) == {"c1", "c2"}
    assert 0 < detail["log_loss"] < 1 and 0 <= detail["calibration"]["ece"] < 0.5
    assert detail["blocks"][0]["from_ms"] < detail["blocks"][-1]["to_ms"]


def test_a_checkpoint_from_another_version_is_refused_without_changing_the_learner():
    import pytest

    learner = Learner(Settings())
    state = learner.state()
    del state["sentiment"]
    before = learner.model
    with pytest.raises(ValueError, match="lacks sentiment"):
        learner.restore(state)
    assert learner.model is before
    fresh = Learner(Settings())
    fresh.restore(Learner(Settings()).state())
    assert fresh.offset == -1


def test_a_checkpoint_of_another_format_or_model_is_refused():
    import pytest

    old = Learner(Settings()).state()
    old["format"] = 1
    with pytest.raises(ValueError, match="checkpoint format 1, this version reads"):
        Learner(Settings()).restore(old)
    nb_state = Learner(Settings(model="nb")).state()
    with pytest.raises(ValueError, match="checkpoint holds model 'nb', STREAM_MODEL asks for 'arow'"):
        Learner(Settings(model="arow")).restore(nb_state)


def test_a_delayed_label_teaches_exactly_what_an_inline_one_does():
    """The features and lexicon scores a waiting post keeps (packed) are the ones it was predicted
    with: two processors, one with inline labels, one with every label sent later as feedback,
    end with the same models."""
    from stream.pipeline.cleaning import clean_event
    from stream.tools.data import tweets_stream

    events = tweets_stream()[:400]
    inline, delayed = Processor(Settings()), Processor(Settings())
    for i in range(0, len(events), 32):
        batch = events[i : i + 32]
        local(inline, [Message(orjson.dumps(e)) for e in batch])
        bare = [{k: v for k, v in e.items() if k not in ("interest", "sentiment")} for e in batch]
        local(delayed, [Message(orjson.dumps(e)) for e in bare])
        for e in batch:
            feedback(delayed, {"post_id": e["id"], "interest": e["interest"], "sentiment": e["sentiment"]})
    assert len(delayed.learner.pending) == 0 and delayed.model.version == inline.model.version > 350
    probe = inline.model.features(clean_event(events[0]))
    assert delayed.model.predict(probe) == inline.model.predict(probe)
    assert delayed.learner.sentiment.n_labels == inline.learner.sentiment.n_labels > 350
    # the waiting posts kept which of their features are words: the sentiment models learned the same
    assert (delayed.learner.sentiment.classifier._w == inline.learner.sentiment.classifier._w).all()


def test_sentiment_learns_each_posts_interest_words_and_predicts_with_the_sure_interest():
    """The learner hands the sentiment model the post's interest label and which of its features
    are words; a prediction uses the interest the interest model is sure of (and only then)."""
    from models.sentiment import SentimentModel, lexicon_scores
    from stream.pipeline.cleaning import clean_event
    from stream.tools.data import tweets_stream

    events = tweets_stream()[:1000]
    proc = Processor(Settings())
    replica = SentimentModel(warmup=Settings().sentiment_warmup)  # taught by hand what the learner should teach
    for i in range(0, 900, 32):
        out = local(proc, [Message(orjson.dumps(e)) for e in events[i : min(i + 32, 900)]])
        for _, value in out.training:
            rec = orjson.loads(value)
            replica.learn({int(f): v for f, v in rec["x"]}, rec["l"], rec["s"], rec["y"], rec["w"])
    assert (replica.classifier._w == proc.learner.sentiment.classifier._w).all()
    probe = [{k: v for k, v in e.items() if k not in ("interest", "sentiment")} for e in events[900:]]
    out = local(proc, [Message(orjson.dumps(e)) for e in probe])
    model, sentiment = proc.model, proc.learner.sentiment
    sure = differ = 0
    by_id = {e["id"]: e for e in probe}
    for key, rec in out.predictions:
        e = by_id[key.decode()]
        x, words = model.features_and_words(clean_event(e))
        lex = lexicon_scores(e["text"])
        interest = sentiment.interest_of(model.predict_many([x])[0])
        expected = sentiment.predict(x, lex, interest, words)
        got = orjson.loads(rec)["sentiment"]
        assert got["label"] == expected.label and abs(got["score"] - expected.score) <= 1e-4
        sure += interest is not None
        differ += expected != sentiment.predict(x, lex, None, words)
    assert sure > 20 and differ > 0


def test_a_reset_learner_is_a_fresh_one_with_the_same_counters():
    proc = Processor(Settings())
    local(proc, [post(i, interest="sports") for i in range(5)])
    learner, stats = proc.learner, proc.learner.stats
    assert learner.model.version == 5 and learner.offset == 4
    learner.reset()  # a checkpoint found ahead of the training log: rebuild from its beginning
    assert learner.model.version == 0 and learner.offset == -1 and not learner.learned
    assert learner.stats is stats and proc.learner is learner


def test_a_post_checkpointed_waiting_by_an_earlier_version_is_learned_with_all_its_features():
    """A waiting post in a checkpoint from before the word count (four fields) loads; its sentiment
    is learned from all its features, as that version did."""
    from models.codec import decode, encode
    from models.sentiment import SentimentModel
    from stream.pipeline.joiner import Pending

    now = Pending({3: 1.0, 5: 1.0}, "sports", (0.5, 0.5, 0.5, 0.0), "positive", 1).compact()
    doc, views = encode(now, allowed={"stream.pipeline.joiner.Pending": Pending})
    buffers = [bytes(b) for b in views]
    assert decode(doc, buffers, allowed={"stream.pipeline.joiner.Pending": Pending}) == now
    doc["s"]["$l"] = doc["s"]["$l"][:4]  # as the earlier version wrote it
    old = decode(doc, buffers, allowed={"stream.pipeline.joiner.Pending": Pending})
    assert old.words is None and old.features == now.features and old.sentiment_predicted == "positive"
    learner = Processor(Settings()).learner
    learner._learn("p1", old, None, "negative", "feedback")
    by_hand = SentimentModel(warmup=Settings().sentiment_warmup)
    by_hand.learn({3: 1.0, 5: 1.0}, (0.5, 0.5, 0.5, 0.0), "negative")
    assert (learner.sentiment.classifier._w == by_hand.classifier._w).all()


def test_a_restored_learner_adapts_to_drift_as_its_settings_say_not_as_the_checkpoint_did():
    adapting = Learner(Settings()).state()
    kept = Learner(Settings(drift_adapt=False))
    kept.restore(adapting)
    assert kept.model.adapt is False
    fixed = Learner(Settings(drift_adapt=False)).state()
    again = Learner(Settings())
    again.restore(fixed)
    assert again.model.adapt is True
