"""A real Prometheus, started here, scrapes a real worker on the embedded broker."""

import json
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from stream.tools.broker import free_port, wait_for_port
from stream.tools.data import inject_faults, tweets_stream
from stream.tools.demo import WorkerProcess, wait_processed
from stream.tools.produce import produce

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
METRIC = re.compile(r"\b((?:stream|faust)_[a-z0-9_]+)\b")


def names_used_by_ops() -> set[str]:
    """Metric names in the alert rules and in the Grafana dashboards."""
    text = (ROOT / "ops/prometheus/alerts.yml").read_text()
    exprs = re.findall(r"expr:\s*(?:>\s*\n)?((?:.*\n?)+?)(?=\n\s*(?:for|labels|annotations|-)\b|\Z)", text)
    dashboards = [json.loads(p.read_text()) for p in (ROOT / "ops/grafana/dashboards").glob("*.json")]
    exprs += [t["expr"] for d in dashboards for p in d["panels"] for t in p["targets"]]
    return {m for e in exprs for m in METRIC.findall(e)}


def query(port: int, promql: str) -> list:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    body = json.loads(urllib.request.urlopen(url, timeout=5).read())
    assert body["status"] == "success"
    return body["data"]["result"]


def test_prometheus_scrapes_the_worker_and_every_ops_metric_exists(settings, tmp_path):
    binary = shutil.which("prometheus")
    assert binary, "prometheus is missing: `make test` installs it (apt-get install prometheus)"
    prom_port = free_port()
    config = tmp_path / "prometheus.yml"
    shutil.copy(ROOT / "ops/prometheus/alerts.yml", tmp_path / "alerts.yml")
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "rule_files: [alerts.yml]\n"
        "scrape_configs:\n"
        "  - job_name: interest-stream\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{settings.web_port}']}}]\n"
    )
    with open(tmp_path / "prometheus.log", "wb") as prom_log:  # prometheus writes to its own copy of the fd
        prom = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=prom_log,
        )
    try:
        wait_for_port("127.0.0.1", prom_port, timeout=30)
        settings = settings.replace(trigger_rules=str(ROOT / "ops/triggers/rules.toml"))
        with WorkerProcess(settings, tmp_path / "worker.log") as worker:
            worker.wait_ready()
            # before any post: the counters are there, at 0, in the worker's page and in Prometheus
            fresh = urllib.request.urlopen(f"http://127.0.0.1:{settings.web_port}/metrics").read().decode()
            deadline, idle = time.monotonic() + 30, list[dict]()
            while not idle and time.monotonic() < deadline:
                idle = query(prom_port, 'stream_events_total{outcome="posts_in"}')
                time.sleep(0.5)
            build = query(prom_port, "stream_build_info")
            deadline, pending = time.monotonic() + 30, list[dict]()  # the alert's condition holds (for 10 min: pending)
            while not pending and time.monotonic() < deadline:
                pending = query(prom_port, 'ALERTS{alertname="InterestStreamNoEvents"}')
                time.sleep(0.5)
            events = list(inject_faults(tweets_stream()[:500], rate=0.05))
            sent = produce(settings, events, feedback_fraction=0.3, feedback_delay=20, progress=False)
            snapshot = wait_processed(settings, sent.posts, sent.feedback, timeout=120, progress=False)
            used = names_used_by_ops()

            def exposed_names() -> set[str]:
                text = urllib.request.urlopen(f"http://127.0.0.1:{settings.web_port}/metrics").read().decode()
                return set(re.findall(r"^([a-z_0-9]+)[{ ]", text, flags=re.M))

            deadline = time.monotonic() + 20  # Faust exports committed offsets after its first commit
            while not used <= (exposed := exposed_names()) and time.monotonic() < deadline:
                time.sleep(0.5)
            deadline, result = time.monotonic() + 30, []
            while time.monotonic() < deadline:
                result = query(prom_port, 'stream_events_total{outcome="predicted"}')
                if result and float(result[0]["value"][1]) == snapshot["counts"]["predicted"]:
                    break
                time.sleep(0.5)
            up = query(prom_port, 'up{job="interest-stream"}')
            rules = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{prom_port}/api/v1/rules").read())
    finally:
        prom.terminate()
        prom.wait(10)

    assert re.search(r'^stream_events_total\{outcome="posts_in"\} 0\.0$', fresh, flags=re.M), fresh[:2000]
    assert re.search(r'^stream_events_total\{outcome="publish_errors"\} 0\.0$', fresh, flags=re.M)
    assert re.search(r'^stream_dead_letters_total\{reason="malformed_json"\} 0\.0$', fresh, flags=re.M)
    assert idle and idle[0]["value"][1] == "0", idle  # a worker that has seen no post: scraped at 0
    assert pending and pending[0]["metric"]["alertstate"] == "pending", pending
    assert build and build[0]["value"][1] == "1" and build[0]["metric"]["model"] == settings.model, build
    assert result and float(result[0]["value"][1]) == snapshot["counts"]["predicted"]
    assert up and up[0]["value"][1] == "1"
    loaded = {r["name"] for g in rules["data"]["groups"] for r in g["rules"]}
    assert "InterestStreamWorkerDown" in loaded and "interest_stream:consumer_lag:sum" in loaded
    # every metric an alert or a dashboard uses is really exposed by the worker
    assert len(used) >= 10
    assert used <= exposed, used - exposed
