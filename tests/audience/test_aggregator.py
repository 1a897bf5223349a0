"""The audience path without Kafka: processor → partials per partition → aggregator; profiles; erasure."""

from typing import Any

import orjson

from stream.audience.aggregator import Aggregator
from stream.audience.profiles import Profile, ProfileBook
from stream.audience.records import decode_partials, decode_profile_updates, route
from stream.audience.rules import parse_rules
from stream.audience.spikes import SpikeParams
from stream.audience.windows import Tally, WindowSpec
from stream.pipeline.privacy import erased_token, pseudonym
from stream.pipeline.processor import Processor
from stream.pipeline.records import Message, training_erase
from stream.settings import Settings

MINUTE = 60_000
T0 = 1_700_000_000_000 - 1_700_000_000_000 % (60 * MINUTE)
RULES = parse_rules(
    {
        "rule": [
            {
                "name": "acme-anger",
                "campaign": "recovery",
                "segment": "campaign:acme",
                "min_support": 5,
                "cooldown": "30m",
                "when": {"negative_share": ">= 0.8"},
            }
        ]
    },
    "test",
)


def post(i, minute, text="Terrible awful service, I hate this company", **extra):
    return {
        "id": f"p{i}",
        "user_id": f"u{i % 3}",
        "text": f"{text} {'abcdefghijklmnopqrstuvwxyz'[i % 26]}{'abcdefghijklmnopqrstuvwxyz'[i // 26 % 26]}",
        "created_at": T0 + minute * MINUTE + i % 60 * 100,
        "campaign": "acme",
        **extra,
    }


def run(processor, aggregator, events, offsets):
    """Process ``events`` as a worker does, feeding partials to ``aggregator``; returns what it emitted."""
    processor.run_locally(processor.process_posts([Message(orjson.dumps(e)) for e in events]))
    emitted: dict[str, list[dict[str, Any]]] = {"windows": [], "spikes": [], "triggers": []}
    for partition, value in processor.drain_aggregates().partials:
        offsets[partition] = offsets.get(partition, -1) + 1
        segments, max_ts = decode_partials(value)
        assert all(route(seg, processor.settings.partitions) == partition for seg in segments)
        out = aggregator.on_partials(partition, offsets[partition], segments, max_ts)
        for k in emitted:
            emitted[k].extend(getattr(out, k))
    return emitted


def test_predictions_carry_sentiment_and_partials_fire_a_trigger_once():
    settings = Settings(window_lateness=0)
    proc = Processor(settings)
    table: dict = {}
    agg = Aggregator(table, proc.window_spec, SpikeParams(), RULES, proc.stats)
    offsets: dict = {}
    out = proc.process_posts([Message(orjson.dumps(post(0, 0)))])
    record = orjson.loads(out.predictions[0][1])
    assert record["sentiment"]["label"] == "negative" and -1 <= record["sentiment"]["score"] < 0
    assert record["sentiment"]["cold"] is True
    emitted = run(proc, agg, [post(i, m) for m in range(4) for i in range(m * 10 + 1, m * 10 + 11)], offsets)
    emitted2 = run(proc, agg, [post(99, 10, text="a plain note about the weather")], offsets)
    triggers = emitted["triggers"] + emitted2["triggers"]
    assert [t["window"]["start"] for t in triggers] == [T0]  # minutes 1-3 are within the cooldown
    acme = [
        w
        for w in emitted["windows"] + emitted2["windows"]
        if w["segment"] == "campaign:acme" and w["kind"] == "tumbling"
    ]
    assert [w["volume"] for w in acme] == [11, 10, 10, 10]
    assert proc.stats.triggers[("acme-anger", "recovery")] == 1
    assert proc.stats.audience[("campaign", "acme")][0] == 10  # the last closed tumbling window


def test_a_redelivered_partial_is_not_counted_twice_and_a_restored_table_continues():
    settings = Settings(window_lateness=0)
    proc = Processor(settings)
    table: dict = {}
    agg = Aggregator(table, proc.window_spec, SpikeParams(), RULES, proc.stats)
    proc.process_posts([Message(orjson.dumps(post(i, 0))) for i in range(8)])
    ((partition, value),) = [
        (p, v) for p, v in proc.drain_aggregates().partials if "campaign:acme" in orjson.loads(v)["segments"]
    ]
    segments, max_ts = decode_partials(value)
    agg.on_partials(partition, 0, segments, max_ts)
    agg.on_partials(partition, 0, segments, max_ts)  # redelivered after a crash
    assert proc.stats.outcomes["partials_redelivered"] == len(segments)
    agg.forget({partition})  # a rebalance took the partition away: memory goes, the table stays
    assert partition not in agg.watermarks
    agg.on_partials(partition, 0, segments, max_ts)  # back again: rebuilt from the table
    assert proc.stats.outcomes["partials_redelivered"] == 2 * len(segments)
    assert agg.watermarks[partition] == max_ts
    # a new worker with the table (as restored from the changelog) closes the window with 8 posts
    fresh = Aggregator(orjson.loads(orjson.dumps(table)), proc.window_spec, SpikeParams(), RULES)
    closing = {"campaign:acme": {T0 + 5 * MINUTE: Tally(n=1, neu=1)}}
    out = fresh.on_partials(partition, 1, closing, T0 + 5 * MINUTE)
    window = next(w for w in out.windows if w["segment"] == "campaign:acme" and w["kind"] == "tumbling")
    assert window["volume"] == 8 and [t["window"]["start"] for t in out.triggers] == [T0]


def test_an_erased_user_is_ignored_and_never_named_in_outputs():
    settings = Settings(pseudonym_key="secret")
    proc = Processor(settings)
    out = proc.process_erasures([Message(b'{"user_id": "u1"}'), Message(b"[]")])
    assert [r for _, r in out.dead_letters] and proc.stats.outcomes["erasure_requests"] == 1
    ((partition, value),) = out.profile_updates
    assert orjson.loads(value) == {"users": {pseudonym("u1", "secret"): {"erase": True}}}
    assert partition == route(pseudonym("u1", "secret"), settings.partitions)
    assert b"u1" not in out.training[0][1]
    proc.run_locally(out)
    assert proc.learner.erased == {erased_token(pseudonym("u1", "secret"))}
    posts = proc.process_posts([Message(orjson.dumps(post(i, 0))) for i in range(6)])  # users u0, u1, u2
    users = {orjson.loads(v)["user_id"] for _, v in posts.predictions}
    assert users == {pseudonym("u0", "secret"), pseudonym("u2", "secret")}
    assert proc.stats.outcomes["erased_user_skipped"] == 2
    assert training_erase("t") == b'{"k":"erase","u":"t"}'


def test_profile_book_decays_skips_redeliveries_and_erases():
    book = ProfileBook({}, half_life_s=60, top_k=1, is_erased=lambda user: user == "gone")
    assert book.apply("u", {"posts": [[0, {"sports": 1.0}]]}, 0)[0] == "updated"
    _outcome, record = book.apply("u", {"posts": [[120_000, {"music": 1.0}]]}, 1)  # two half-lives later
    assert record is not None
    assert record["scores"] == {"music": 1.0, "sports": 0.25} and record["top"][0]["interest"] == "music"
    assert book.apply("u", {"posts": [[0, {"sports": 1.0}]]}, 1) == ("skipped_redelivered", None)
    assert book.apply("gone", {"posts": [[0, {"sports": 1.0}]]}, 2) == ("skipped_erased", None)
    assert book.apply("u", {"erase": True}, 3) == ("erased", None) and book.table == {}
    assert Profile.from_dict(None).posts == 0


def test_the_closing_queue_holds_one_entry_per_segment():
    agg = Aggregator({}, WindowSpec(), SpikeParams(), ())
    tally = Tally(n=1, neu=1)
    for offset in range(200):  # 200 batches inside one minute: the same windows stay open
        agg.on_partials(0, offset, {"all": {T0: tally}, "interest:x": {T0: tally}}, T0 + offset)
    assert len(agg._closing[0]) <= 2 and set(agg._due[0]) == {"all", "interest:x"}
    out = agg.on_partials(0, 200, {"all": {T0 + 5 * MINUTE: tally}}, T0 + 5 * MINUTE)
    x = [w for w in out.windows if w["segment"] == "interest:x" and w["kind"] == "tumbling"]
    assert [w["volume"] for w in x] == [200]  # closed by the watermark, though it got no partial


def test_idle_campaign_and_hashtag_rows_expire_and_busy_ones_stay():
    """Campaigns and hashtags come from the input: a row whose segment stays idle for ``idle_ms`` of
    event time is deleted (a tombstone in the worker's changelog); `all` and interests never are."""
    table: dict = {}
    agg = Aggregator(table, WindowSpec(), SpikeParams(baseline=3, min_history=3), ())
    one = Tally(n=1, neu=1)
    agg.on_partials(0, 0, {"all": {T0: one}, "hashtag:once": {T0: one}, "campaign:busy": {T0: one}}, T0)
    minute = 0
    while (minute + 1) * MINUTE < agg.idle_ms + 10 * MINUTE:  # `busy` posts every minute, `once` never again
        minute += 1
        at = T0 + minute * MINUTE
        agg.on_partials(0, minute, {"all": {at: one}, "campaign:busy": {at: one}}, at)
    assert "hashtag:once" not in table and {"all", "campaign:busy"} <= set(table)
    assert agg.stats.outcomes["segments_expired"] == 1


def test_a_flood_of_one_off_campaigns_and_hashtags_gets_no_segments():
    settings = Settings(max_segments=50, segment_min_posts=3)
    proc = Processor(settings)
    posts = [post(i, 0, campaign=f"one-off-{i}", hashtags=[f"tag{i}"]) for i in range(300)]
    posts += [post(1000 + i, 0, campaign="acme", hashtags=["real"]) for i in range(5)]
    proc.process_posts([Message(orjson.dumps(e)) for e in posts])
    segments = [s for _, v in proc.drain_aggregates().partials for s in decode_partials(v)[0]]
    assert "campaign:acme" in segments and "hashtag:real" in segments
    assert len([s for s in segments if s.startswith(("campaign:", "hashtag:"))]) <= 2 * 50 + 2


class CopyingTable(dict):
    """A table that hands out copies, as a store that serializes would: no row is the one saved."""

    def get(self, key, default=None):
        value = super().get(key, default)
        return orjson.loads(orjson.dumps(value)) if value is not None else value


def test_states_kept_between_batches_give_what_reading_every_row_back_gives():
    settings = Settings(window_lateness=0)
    proc = Processor(settings)
    posts = [post(i, m, hashtags=[f"tag{i % 7}"]) for m in range(12) for i in range(m * 9, m * 9 + 9)]
    proc.process_posts([Message(orjson.dumps(e)) for e in posts])
    batches = [(p, off, *decode_partials(v)) for off, (p, v) in enumerate(proc.drain_aggregates().partials)]
    kept: dict[str, Any] = {}
    copying = CopyingTable()
    outputs = []
    for table in (kept, copying):
        agg = Aggregator(table, proc.window_spec, SpikeParams(baseline=3, min_history=2), RULES)
        outputs.append([agg.on_partials(p, off, segs, mx) for p, off, segs, mx in batches])
    assert outputs[0] == outputs[1] and sum(len(o.windows) for o in outputs[0]) > 20
    assert orjson.dumps(kept, option=orjson.OPT_SORT_KEYS) == orjson.dumps(dict(copying), option=orjson.OPT_SORT_KEYS)


def test_a_row_replaced_from_outside_is_read_back_not_the_state_kept_in_memory():
    table: dict = {}
    agg = Aggregator(table, WindowSpec(), SpikeParams(), ())
    one = Tally(n=1, neu=1)
    agg.on_partials(0, 0, {"all": {T0: one}}, T0)
    restored = orjson.loads(orjson.dumps(table["all"]))  # the row as the changelog has it: one post
    agg.on_partials(0, 1, {"all": {T0: one}}, T0 + 1)
    table["all"] = restored  # e.g. a changelog restore put the older row back
    out = agg.on_partials(0, 2, {"all": {T0 + 5 * MINUTE: one}}, T0 + 5 * MINUTE)
    (window,) = [w for w in out.windows if w["kind"] == "tumbling"]
    assert window["volume"] == 1


def test_a_record_as_it_is_on_the_topic_is_merged_as_its_decoded_partials():
    proc = Processor(Settings(window_lateness=0))
    proc.process_posts([Message(orjson.dumps(post(i, m))) for m in range(3) for i in range(m * 5, m * 5 + 5)])
    records = proc.drain_aggregates().partials
    decoded, raw = (
        Aggregator({}, WindowSpec(), SpikeParams(), RULES),
        Aggregator({}, WindowSpec(), SpikeParams(), RULES),
    )
    for offset, (partition, value) in enumerate(records):
        assert raw.on_record(partition, offset, value) == decoded.on_partials(
            partition, offset, *decode_partials(value)
        )
    assert raw.table == decoded.table and raw.table


def test_a_profile_update_record_as_it_is_on_the_topic_is_applied_as_its_decoded_updates():
    value = orjson.dumps({"users": {"u1": {"posts": [[0, {"music": 1.0}]]}, "u2": {"erase": True}}})
    books = [ProfileBook({}, 3600, 2, is_erased=lambda user: False) for _ in range(2)]
    assert books[0].apply_record(value, 4) == books[1].apply_batch(decode_profile_updates(value), 4)
    assert books[0].table == books[1].table and "u1" in books[0].table
