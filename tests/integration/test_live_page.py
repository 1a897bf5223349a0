"""The live page in a real headless browser (Debian's chromium), fed by a real worker."""

import json
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from stream.settings import Settings
from stream.tools.data import tweets_stream
from stream.tools.demo import WorkerProcess, wait_processed
from stream.tools.produce import produce

pytestmark = pytest.mark.integration
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    assert path, "chromium is missing: `make test` installs it (apt-get install chromium)"
    return path


def browse(url: str, *extra: str) -> subprocess.CompletedProcess:
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1400,1000",
        "--virtual-time-budget=4000",
    ]
    return subprocess.run([chromium(), *flags, *extra, url], capture_output=True, text=True, timeout=120)


RULE = """
[[rule]]
name = "busy-minute"
campaign = "live-page-test"
segment = "all"
min_support = 10
cooldown = "1h"
when = { volume = ">= 10" }
"""


def test_live_page_fills_with_data_from_a_running_worker(settings, tmp_path):
    (tmp_path / "rules.toml").write_text(RULE)
    settings = settings.replace(trigger_rules=str(tmp_path / "rules.toml"))
    with WorkerProcess(settings, tmp_path / "worker.log") as worker:
        worker.wait_ready(learner=True)
        # over ~4 s: the worker's replica gets the learner's model every second, and a post predicted
        # before the first delta has no interest yet
        sent = produce(settings, tweets_stream()[:600], rate=150, progress=False)
        wait_processed(settings, sent.posts, sent.feedback, timeout=120, progress=False)
        base = f"http://127.0.0.1:{settings.web_port}"
        data = json.loads(urllib.request.urlopen(base + "/api/live").read())
        assert len(data["points"]) >= 2 and data["latest"]["counts"]["posts_in"] == 600
        deadline = time.monotonic() + 30  # the audience agent closes windows behind the predictions
        while not (data["triggers"] and data["sentiment"]) and time.monotonic() < deadline:
            time.sleep(0.5)
            data = json.loads(urllib.request.urlopen(base + "/api/live").read())
        assert {k.split(":")[0] for k in data["sentiment"]} == {"interest", "campaign"}
        assert all(-1 <= w["mean_sentiment"] <= 1 for w in data["sentiment"].values())
        dom = browse(base + "/live", "--dump-dom")
        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "live-page.png"
        shot.unlink(missing_ok=True)
        browse(base + "/live", f"--screenshot={shot}")

    html = dom.stdout
    assert 'data-filled="true"' in html, dom.stderr[-2000:]
    assert '<b id="t-in">600</b>' in html
    assert f"model {Settings().model} v" in html and "macro_f1" in html
    assert "<td>busy-minute</td><td>live-page-test</td><td>all</td>" in html  # a trigger in the table
    assert shot.exists() and shot.stat().st_size > 10_000
