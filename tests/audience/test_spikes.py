import pytest
from hypothesis import given
from hypothesis import strategies as st

from stream.audience.spikes import Baseline, SpikeParams, detect, may_spike, robust_z

P = SpikeParams(baseline=30, min_history=10, threshold=3.5, sentiment_min_volume=20)


def history(volumes, sentiments=()):
    h = Baseline()
    for v in volumes:
        h.push(v, None, P)
    for s in sentiments:
        h.sentiment.append(s)
    return h


def test_flat_baseline_does_not_give_infinite_z_and_a_burst_fires():
    h = history([60] * 30)
    assert detect("all", "tumbling", 0, 1, 61, None, h, P) == []  # one post more is no spike
    (spike,) = detect("all", "tumbling", 0, 1, 120, None, h, P)
    assert (spike.metric, spike.direction, spike.baseline, spike.scale, spike.z, spike.history) == (
        "volume",
        "up",
        60.0,
        6.0,
        10.0,
        30,
    )  # scale floored at 0.1 * median
    rec = spike.to_record()
    assert rec["type"] == "spike" and rec["id"] == "all|tumbling|0|volume" and rec["window_end"] == 1


def test_silent_baseline_floor_of_one_post():
    h = history([0] * 20)
    assert detect("hashtag:x", "tumbling", 0, 1, 3, None, h, P) == []
    assert [s.z for s in detect("hashtag:x", "tumbling", 0, 1, 4, None, h, P)] == [4.0]


def test_min_history_is_respected():
    assert detect("all", "tumbling", 0, 1, 1000, None, history([1] * 9), P) == []
    assert len(detect("all", "tumbling", 0, 1, 1000, None, history([1] * 10), P)) == 1


def test_volume_drops_only_when_asked():
    h = history([100] * 30)
    assert detect("all", "tumbling", 0, 1, 10, None, h, P) == []
    down = SpikeParams(volume_down=True)
    assert [s.direction for s in detect("all", "tumbling", 0, 1, 10, None, h, down)] == ["down"]


def test_negative_sentiment_spike_needs_volume_and_history():
    h = history([50] * 30, [0.3, 0.35, 0.25, 0.3] * 5)
    (spike,) = detect("interest:travel", "hopping", 0, 1, 50, -0.4, h, P)
    assert (spike.metric, spike.direction, spike.observed, spike.baseline) == ("sentiment", "down", -0.4, 0.3)
    assert spike.z < -3.5
    assert detect("interest:travel", "hopping", 0, 1, 19, -0.4, h, P) == []  # too few posts
    h.sentiment = h.sentiment[:9]
    assert detect("interest:travel", "hopping", 0, 1, 50, -0.4, h, P) == []  # too little history
    up = detect("interest:travel", "hopping", 0, 1, 50, 0.9, history([50] * 30, [0.3] * 10), P)
    assert [(s.metric, s.direction) for s in up] == [("sentiment", "up")]


def test_history_is_bounded_and_round_trips():
    p = SpikeParams(baseline=5, min_history=1)
    h = Baseline()
    for i in range(12):
        h.push(i, i / 10 if i % 2 else None, p)
    h.push_zeros(10**9, p)
    assert h.volume == [0] * 5 and h.sentiment == [0.3, 0.5, 0.7, 0.9, 1.1]
    assert Baseline.from_dict(h.to_dict()).to_dict() == h.to_dict() and Baseline.from_dict(None).volume == []


def test_params_validation():
    with pytest.raises(ValueError, match="min_history must be between 1 and baseline"):
        SpikeParams(baseline=5, min_history=6)
    with pytest.raises(ValueError, match="threshold must be positive"):
        SpikeParams(threshold=0)


@given(st.lists(st.integers(0, 10_000), min_size=1, max_size=40), st.integers(0, 10_000))
def test_robust_z_is_finite_and_signed(values, x):
    med, scale, z = robust_z(x, values, floor_abs=1.0, floor_rel=0.1)
    assert scale >= 1.0 and abs(z) < 1e5
    assert (z > 0) == (x > med) or abs(x - med) < 1e-3


@given(
    st.lists(st.integers(0, 200), min_size=1, max_size=30),
    st.integers(0, 400),
    st.sampled_from([(1.0, 0.1), (0.05, 0.0), (2.0, 0.5)]),
    st.sampled_from([3.5, 2.0, 1.2345]),
)
def test_may_spike_rules_out_only_windows_whose_z_is_below_the_threshold(values, x, floors, threshold):
    floor_abs, floor_rel = floors
    _, _, z = robust_z(x, values, floor_abs, floor_rel)
    if abs(z) >= threshold:
        assert may_spike(x, values, floor_abs, floor_rel, threshold)


def test_may_spike_skips_the_mad_of_quiet_windows_only():
    assert not may_spike(1, [0] * 30, 1.0, 0.1, 3.5)  # a quiet hashtag's single post
    assert may_spike(4, [0] * 30, 1.0, 0.1, 3.5)  # z is 4: the MAD decides
    assert may_spike(-0.4, [0.3] * 10, 0.05, 0.0, 3.5)
