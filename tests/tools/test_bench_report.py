"""The bench's report: the pairs of pipeline and peer runs, their medians, and the printed table."""

import pytest

from stream.tools.bench import format_bench, summarize


def _run(eps, cpu, p99=120, stalls=0, split=False):
    return {
        "layout": "split" if split else "single",
        "eps": eps,
        "cpu_us": cpu,
        "cpu_us_settled": cpu + 5,
        "worker_cpu_us": cpu - 160 if split else cpu - 100,
        "aggregates_cpu_us": 60.0 if split else None,
        "aggregates_rss_mb": 150.0 if split else None,
        "broker_cpu_us": 30.0,
        "rss_mb": 180.0,
        "events": 1000,
        "p50_ms": 40,
        "p99_ms": p99,
        "offered_eps": eps / 2,
        "latency_samples": 100,
        "settle_s": 1.0,
        "loop_stalls": stalls,
    }


def _peer(eps, cpu):
    return {"eps": eps, "cpu_us": cpu, "rss_mb": 190.0, "events": 1000}


def _report(pairs, layout="single"):
    other = {"eps": 1000.0, "cpu_us": 900.0, "rss_mb": 150.0, "events": 1000}
    return {**summarize(pairs, other, other, other), "layout": layout, "stages_us": {"clean": 25.0}}


@pytest.mark.parametrize("split", [False, True], ids=["single", "split"])
def test_the_median_pair_gives_the_details_and_every_pair_is_printed(split):
    pairs = [
        (_run(4000.0, 280.0, p99=300, split=split), _peer(4000.0, 260.0)),
        (_run(5000.0, 250.0, p99=110, split=split), _peer(3500.0, 270.0)),
        (_run(3000.0, 320.0, p99=150, split=split), _peer(2500.0, 300.0)),
    ]
    report = _report(pairs, "split" if split else "single")
    assert report["pipeline"]["eps"] == 3000.0  # speedups 1.0, 1.43, 1.2: the median is the third pair
    assert report["speedup_vs_peer"] == 1.2 and report["pipeline_eps"] == 4000.0 and report["peer_eps"] == 3500.0
    assert report["p99_ms"] == 150 and report["repeat"] == 3 and report["loop_stalls"] == 0
    text = format_bench(report)
    assert "3 pairs one after another" in text
    assert "pipeline / peer: 1.20x (median of 3 pairs)" in text
    assert "its learner process 100 µs" in text
    if split:
        assert text.splitlines()[1].startswith("pipeline (posts + aggregates)")
        assert "the posts worker 160 µs (its event loop" in text and ", the aggregates worker 60 µs" in text
        assert "the aggregates worker at 150 MB" in text and "the workers needed 1 s" in text
    else:
        assert text.splitlines()[1].startswith("pipeline (worker as shipped)")
        assert "the worker process 220 µs (its event loop" in text and "aggregates" not in text
        assert "the worker needed 1 s" in text
    for eps, p99 in ((4000, 300), (5000, 110), (3000, 150)):
        assert f"pipeline {eps:,} posts/s" in text and f"p99 {p99} ms" in text


def test_an_even_number_of_pairs_reports_figures_some_run_gave():
    pairs = [(_run(eps, 280.0), _peer(3000.0, 260.0)) for eps in (3000.0, 4500.0, 3600.0, 6000.0)]
    report = _report(pairs)
    assert report["pipeline_eps"] == 3600.0 and report["speedup_vs_peer"] == 1.2
    assert report["pipeline"]["eps"] == 3600.0


def test_without_the_peer_the_median_pipeline_run_gives_the_details():
    report = _report([(_run(eps, 280.0), None) for eps in (3000.0, 4500.0, 3600.0)])
    assert report["peer_eps"] is None and report["speedup_vs_peer"] is None
    assert report["pipeline"]["eps"] == 3600.0 == report["pipeline_eps"]
    assert "pipeline / peer" not in format_bench(report)


def test_one_pair_prints_as_one_run():
    report = _report([(_run(4200.0, 270.0), _peer(3500.0, 265.0))])
    text = format_bench(report)
    assert "pairs one after another" not in text
    assert "pipeline / peer: 1.20x\n" in text
