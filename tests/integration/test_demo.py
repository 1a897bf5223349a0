"""`interest-stream demo` as a user runs it: its own embedded broker, a worker process, a report."""

import os
import subprocess
import sys

import orjson
import pytest

pytestmark = pytest.mark.integration


def test_demo_runs_end_to_end_and_reports_what_it_read_back(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAM_")}
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "stream",
            "demo",
            "--events",
            "1500",
            "--out",
            str(tmp_path),
            "--rate",
            "500",  # 3 s of stream: most labels come after the first model delta reached the replica
            "--fault-rate",
            "0.02",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    report = orjson.loads((tmp_path / "report.json").read_bytes())
    assert report["events_in"] == report["posts_sent"] == 1500
    dead = sum(report["dead_lettered"].values())
    dups = sum(report["duplicates_dropped"].values())
    assert dead >= 5 and report["dead_lettered"] == report["dead_letters_on_topic"]
    assert report["predictions"] + dead + dups == 1500
    assert report["predictions_on_topic"] == report["distinct_posts_predicted"] == report["predictions"]
    # every label is learned; the labels of posts predicted before the first model delta reached the
    # worker's replica (a second or so into the stream) are not scored
    assert report["labels_learned"]["inline"] + report["labels_learned"]["feedback"] == report["predictions"]
    assert report["labels_learned"]["feedback"] > 0 and report["prequential"]["n"] > 500
    assert 0.5 < report["prequential"]["macro_f1"] <= 1
    assert "prequential macro-F1" in res.stdout and "report:" in res.stdout
    png = (tmp_path / "report.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 20_000
    assert "live page: http://127.0.0.1:" in res.stderr
