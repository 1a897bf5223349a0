import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.audience.records import decode_buckets, encode_buckets
from stream.audience.rules import Condition, Rule
from stream.audience.spikes import SpikeParams
from stream.audience.windows import SegmentState, WindowSpec, partials

SPEC = WindowSpec(tumbling_s=60, hopping_size_s=300, hopping_step_s=60, lateness_s=10)
RUN_PARAMS = SpikeParams(baseline=5, min_history=2)  # the default of run()


def post(ts, score=0.0, label="neutral", interest="travel", campaign=None, tags=()):
    return (ts, score, label, interest, campaign, tuple(tags))


def feed(state, posts, watermark):
    state.add(partials(posts, SPEC).get(state.segment, {}), SPEC, watermark_ms=watermark)
    return state.advance(watermark, SPEC)


def test_spec_validation_and_bucket():
    assert SPEC.bucket_ms == 60_000
    assert WindowSpec(tumbling_s=60, hopping_size_s=90, hopping_step_s=30).bucket_ms == 30_000
    with pytest.raises(ValueError, match="multiple of its step"):
        WindowSpec(hopping_size_s=100, hopping_step_s=60)
    with pytest.raises(ValueError, match="tumbling_s must be a positive"):
        WindowSpec(tumbling_s=0)
    with pytest.raises(ValueError, match="lateness_s must be a whole number"):
        WindowSpec(lateness_s=-1)


def test_partials_segments_and_json_round_trip():
    parts = partials(
        [
            post(1_000, 1.0, "positive", "music", "spring", ["a", "b", "a"]),
            post(61_000, -1.0, "negative", None, None, []),
        ],
        SPEC,
    )
    assert set(parts) == {"all", "interest:music", "campaign:spring", "hashtag:a", "hashtag:b"}
    assert parts["all"][0].n == 1 and parts["all"][60_000].neg == 1 and parts["hashtag:a"][0].n == 1
    assert parts["all"][0].interests == {"music": 1} and parts["all"][60_000].interests == {}
    rec = json.loads(json.dumps(encode_buckets(parts["all"])))
    assert decode_buckets(rec) == parts["all"]


def test_tumbling_boundaries_and_close_time():
    s = SegmentState.from_dict(None, "all")
    out = feed(s, [post(59_999), post(60_000), post(0)], 60_000)
    assert out.windows == ()
    assert s.advance(69_999, SPEC).windows == ()  # end + lateness not reached yet
    out = s.advance(70_000, SPEC)
    tumbling = [w for w in out.windows if w["kind"] == "tumbling"]
    assert [(w["start"], w["end"], w["volume"]) for w in tumbling] == [(0, 60_000, 2)]
    out = s.advance(130_000, SPEC)
    assert [(w["start"], w["volume"]) for w in out.windows if w["kind"] == "tumbling"] == [(60_000, 1)]


def test_hopping_windows_cover_each_post_size_over_step_times():
    s = SegmentState.from_dict(None, "all")
    feed(s, [post(0)], 0)
    out = s.advance(10**7, SPEC)
    hopping = [(w["start"], w["end"]) for w in out.windows if w["kind"] == "hopping"]
    assert hopping == [(-240_000, 60_000), (-180_000, 120_000), (-120_000, 180_000), (-60_000, 240_000), (0, 300_000)]
    assert [r["type"] for r in out.records()] == ["window"] * 6
    ends = [r["end"] for r in out.records()]
    assert ends == sorted(ends)


def test_window_record_figures():
    s = SegmentState.from_dict(None, "all")
    feed(
        s,
        [
            post(1, 1.0, "positive", "music"),
            post(2, -1.0, "negative", "travel"),
            post(3, -1.0, "negative", "travel"),
            post(4, 0.0, "neutral", "travel"),
        ],
        4,
    )
    w = s.advance(70_000, SPEC).windows[0]
    assert w == {
        "type": "window",
        "segment": "all",
        "kind": "tumbling",
        "start": 0,
        "end": 60_000,
        "volume": 4,
        "mean_sentiment": -0.25,
        "positive_share": 0.25,
        "neutral_share": 0.25,
        "negative_share": 0.5,
        "interest_share": {"music": 0.25, "travel": 0.75},
        "id": "all|tumbling|0",
        "schema_version": 1,
    }


def test_late_posts_are_dropped_and_counted():
    s = SegmentState.from_dict(None, "all")
    feed(s, [post(0)], 0)
    s.advance(400_000, SPEC)  # every window of the first minute closed
    assert s.add(partials([post(30_000), post(30_001)], SPEC)["all"], SPEC) == 2
    assert s.late == 2 and s.partly_late == 0
    # within the allowed lateness of an open window: accepted
    s2 = SegmentState.from_dict(None, "all")
    feed(s2, [post(65_000)], 65_000)
    assert s2.add(partials([post(59_000)], SPEC)["all"], SPEC, watermark_ms=69_999) == 0
    tumbling = [w for w in s2.advance(70_000, SPEC).windows if w["kind"] == "tumbling"]
    assert tumbling[0]["volume"] == 1 and tumbling[0]["start"] == 0
    # a closed tumbling window but an open hopping one: accepted, counted only in the hopping windows
    assert s2.add(partials([post(30_000)], SPEC)["all"], SPEC) == 0
    assert (s2.late, s2.partly_late) == (0, 1)


def test_new_segment_respects_the_watermark():
    s = SegmentState.from_dict(None, "hashtag:x")
    assert s.add(partials([post(0, tags=["x"])], SPEC)["hashtag:x"], SPEC, watermark_ms=10**6) == 1
    assert s.advance(10**6, SPEC).windows == () and s.buckets == {}


def test_buckets_are_pruned():
    s = SegmentState.from_dict(None, "all")
    for minute in range(200):
        feed(s, [post(minute * 60_000 + 5)], minute * 60_000 + 5)
    assert len(s.buckets) <= SPEC.hopping_size_s // SPEC.hopping_step_s + 1
    assert min(s.buckets) >= 194 * 60_000


def test_silent_windows_count_as_zero_volume_and_work_is_capped():
    params = SpikeParams(baseline=20, min_history=10)
    s = SegmentState.from_dict(None, "hashtag:rare")
    seg = "hashtag:rare"
    feed(s, [post(0, tags=["rare"])], 0)
    # a very long silence (10^6 windows) costs at most `baseline` zeros
    wm = 60_000 * 1_000_000
    out = s.advance(wm, SPEC, params=params)
    assert len([w for w in out.windows if w["kind"] == "tumbling"]) == 1
    assert s.history["tumbling"].volume == [0] * 20 and len(s.history["hopping"].volume) == 20
    # the usually silent hashtag now bursts: a volume spike
    burst = [post(wm + i, tags=["rare"]) for i in range(12)]
    s.add(partials(burst, SPEC)[seg], SPEC, watermark_ms=wm)
    out = s.advance(wm + 70_000, SPEC, params=params)
    spikes = [x for x in out.spikes if x["kind"] == "tumbling"]
    assert [(x["metric"], x["direction"], x["observed"], x["baseline"]) for x in spikes] == [("volume", "up", 12, 0.0)]
    assert s.next_close_ms(SPEC) == wm + 120_000 + 10_000  # the next hopping window with the burst


def test_next_close_ms():
    s = SegmentState.from_dict(None, "all")
    assert s.next_close_ms(SPEC) is None
    s.add(partials([post(61_000)], SPEC)["all"], SPEC)
    assert s.next_close_ms(SPEC) == 120_000 + 10_000  # tumbling [60 s, 120 s) and hopping [-180 s, 120 s)
    s.advance(130_000, SPEC)
    assert s.next_close_ms(SPEC) == 180_000 + 10_000


def test_changed_spec_resets_window_progress():
    s = SegmentState.from_dict(None, "all")
    feed(s, [post(0)], 0)
    other = WindowSpec(tumbling_s=120, hopping_size_s=600, hopping_step_s=120)
    s.add(partials([post(200_000)], other)["all"], other)
    assert s.spec == other.signature() and list(s.buckets) == [120_000]


# -- property: batching with a save/restore between calls gives the same output ------------------

posts_st = st.lists(
    st.tuples(
        st.integers(0, 3_600_000),
        st.sampled_from([-1.0, 0.0, 1.0]),
        st.sampled_from(["travel", "sports", None]),
        st.lists(st.sampled_from("ab"), max_size=2),
    ),
    min_size=1,
    max_size=120,
)


def run(posts, batch, segment, restore, lazy, rules=(), params=RUN_PARAMS):
    labels = {-1.0: "negative", 0.0: "neutral", 1.0: "positive"}
    stream = [(ts, sc, labels[sc], it, None, tags) for ts, sc, it, tags in posts]
    state, saved, wm = SegmentState.from_dict(None, segment), None, None
    out, late = [], 0
    for i in range(0, len(stream), batch):
        chunk = stream[i : i + batch]
        if restore:
            state = SegmentState.from_dict(json.loads(json.dumps(saved)) if saved else None, segment)
        late += state.add(partials(chunk, SPEC).get(segment, {}), SPEC, watermark_ms=wm)
        wm = max([wm or 0] + [p[0] - 5_000 for p in chunk])  # the stream is out of order by up to ~30 s
        nxt = state.next_close_ms(SPEC)
        if not lazy or (nxt is not None and nxt <= wm):
            out.extend(state.advance(wm, SPEC, rules, params).records())
        saved = state.to_dict()
    out.extend(state.advance((wm or 0) + 10**9, SPEC, rules, params).records())
    assert late == state.late
    return out, late, state.partly_late


@settings(max_examples=60, deadline=None)
@given(posts_st, st.integers(1, 20), st.sampled_from(["all", "interest:travel", "hashtag:a"]))
def test_restore_and_lazy_advance_give_identical_output(posts, batch, segment):
    posts = sorted(posts, key=lambda p: p[0] + 9_000 * len(p[3]) + int(p[1] * 11_000))  # roughly in order
    rules = (
        Rule(
            "neg", "c", segment, "tumbling", cooldown_ms=120_000, conditions=(Condition("negative_share", ">=", 0.5),)
        ),
        Rule("vol", "c", segment, "hopping", spike="volume"),
    )
    reference = run(posts, batch, segment, restore=False, lazy=False, rules=rules)
    assert run(posts, batch, segment, restore=True, lazy=False, rules=rules) == reference
    assert run(posts, batch, segment, restore=True, lazy=True, rules=rules) == reference
    # every post is in exactly one tumbling window, or was too late
    out, late, partly = reference
    expected = {
        "all": len(posts),
        "interest:travel": sum(p[2] == "travel" for p in posts),
        "hashtag:a": sum("a" in p[3] for p in posts),
    }[segment]
    tumbling = sum(r["volume"] for r in out if r["type"] == "window" and r["kind"] == "tumbling")
    assert tumbling + late <= expected <= tumbling + late + partly
    assert json.loads(json.dumps(out)) == out


def test_a_new_segment_does_not_spike_against_the_time_before_it_existed():
    """At a stream's start (or for a hashtag never seen before) the windows before the segment's
    first post are not silence: its baseline starts with its first post."""
    params = SpikeParams(baseline=20, min_history=10)
    spec = WindowSpec(lateness_s=900)  # the first windows that could close lie 15 minutes back
    s = SegmentState.from_dict(None, "hashtag:new")
    wm = 60_000 * 30  # event time has moved 30 minutes before the first post of this hashtag
    burst = [post(wm + i, tags=["new"]) for i in range(12)]
    s.add(partials(burst, spec)["hashtag:new"], spec, watermark_ms=wm)
    out = s.advance(wm + 20 * 60_000, spec, params=params)
    assert out.spikes == () and s.history["tumbling"].volume[0] == 12
    assert SegmentState.from_dict(json.loads(json.dumps(s.to_dict())), "hashtag:new").born == s.born


def test_windows_below_the_record_volume_are_counted_and_still_spike_and_fire_rules():
    # a hashtag: one post a minute for 20 minutes (three in minute 10), then a burst of 8 in one minute
    posts = [post(m * 60_000 + 1_000 + i, tags=["x"]) for m in range(20) for i in range(3 if m == 10 else 1)]
    posts += [post(20 * 60_000 + 1_000 + i, tags=["x"]) for i in range(8)]
    rule = Rule("few", "c", "hashtag:*", window="tumbling", min_support=3)
    params = SpikeParams(baseline=10, min_history=5)

    def close(min_record_volume):
        state = SegmentState("hashtag:x")
        state.add(partials(posts, SPEC)["hashtag:x"], SPEC)
        return state, state.advance(30 * 60_000, SPEC, (rule,), params, min_record_volume)

    every, all_records = close(1)
    some, quiet = close(5)
    assert some.to_dict() == every.to_dict()  # the same baselines, progress and cooldowns
    assert quiet.spikes == all_records.spikes and quiet.spikes[0]["window_start"] == 20 * 60_000
    # minute 10 (3 posts, not published) and the burst fire the rule (min_support 3)
    assert quiet.triggers == all_records.triggers and [t["window"]["start"] for t in quiet.triggers] == [
        600_000,
        1_200_000,
    ]
    # records: the windows of 5 or more posts, and the ones the tumbling rule could fire on (3 or more)
    kept = [w for w in all_records.windows if w["volume"] >= 5 or (w["kind"] == "tumbling" and w["volume"] >= 3)]
    assert quiet.windows == tuple(kept) and ("tumbling", 3) in [(w["kind"], w["volume"]) for w in kept]
    closed = {k: sum(w["kind"] == k for w in all_records.windows) for k in ("tumbling", "hopping")}
    assert {k: quiet.quiet.get(k, 0) + sum(w["kind"] == k for w in kept) for k in closed} == closed
    assert quiet.quiet["tumbling"] == 19 and all_records.quiet == {}


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 1_200_000), st.sampled_from([-1.0, 0.0, 1.0]), st.sampled_from(["music", "travel"])),
        min_size=1,
        max_size=80,
    ),
    st.integers(1, 15),
)
def test_every_closed_window_counts_exactly_its_own_posts(posts, batch):
    """Posts in event-time order (none late): each window's record is its posts, counted from scratch,
    however the windows that share a bucket were closed before it."""
    posts = sorted(posts)
    labels = {-1.0: "negative", 0.0: "neutral", 1.0: "positive"}
    state, watermark = SegmentState.from_dict(None, "all"), None
    records: list[dict] = []
    for i in range(0, len(posts), batch):
        chunk = [(ts, sc, labels[sc], it, None, ()) for ts, sc, it in posts[i : i + batch]]
        state.add(partials(chunk, SPEC)["all"], SPEC, watermark_ms=watermark)  # as the aggregator does
        watermark = chunk[-1][0]
        records += state.advance(watermark, SPEC).windows
    records += state.advance(10**9, SPEC).windows
    assert state.late == 0
    assert {r["kind"] for r in records} == {"tumbling", "hopping"}
    for r in records:
        mine = [(sc, it) for ts, sc, it in posts if r["start"] <= ts < r["end"]]
        assert r["volume"] == len(mine) > 0
        assert r["mean_sentiment"] == round(sum(sc for sc, _ in mine) / len(mine), 4)
        assert r["positive_share"] == round(sum(sc > 0 for sc, _ in mine) / len(mine), 4)
        interests = {it: sum(i == it for _, i in mine) for it in {i for _, i in mine}}
        assert r["interest_share"] == {k: round(v / len(mine), 4) for k, v in sorted(interests.items())}


def test_only_windows_of_enough_posts_enter_the_sentiment_baseline_and_a_sentiment_spike_fires():
    """A closed window joins the volume baseline whatever its size; its mean sentiment joins the sentiment
    baseline, and is tested for a spike, only from ``sentiment_min_volume`` posts on (the record has it
    at any size)."""
    params = SpikeParams(baseline=30, min_history=3, sentiment_min_volume=4)
    spec = WindowSpec(tumbling_s=60, hopping_size_s=60, hopping_step_s=60, lateness_s=0)
    state = SegmentState.from_dict(None, "all")
    sizes_and_scores = [(5, 0.2), (2, -1.0), (4, 0.1), (6, 0.3), (3, 1.0), (5, -0.9)]
    closed = []
    for minute, (n, score) in enumerate(sizes_and_scores):
        start = minute * 60_000
        posts = [post(start + i, score, "positive" if score > 0 else "negative") for i in range(n)]
        state.add(partials(posts, spec)["all"], spec)
        closed.append(state.advance(start + 60_000, spec, params=params))
    tumbling = state.history["tumbling"]
    assert tumbling.volume == [5, 2, 4, 6, 3, 5]
    assert tumbling.sentiment == [0.2, 0.1, 0.3, -0.9]  # the windows of 2 and 3 posts are left out
    assert [w["mean_sentiment"] for e in closed for w in e.windows if w["kind"] == "tumbling"] == [
        score for _, score in sizes_and_scores
    ]
    spikes = [s for e in closed for s in e.spikes]
    assert [(s["metric"], s["direction"], s["window_start"]) for s in spikes if s["kind"] == "tumbling"] == [
        ("sentiment", "down", 300_000)
    ]
