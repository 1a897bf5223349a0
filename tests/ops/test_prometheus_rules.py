"""Prometheus configuration and alert rules, checked and unit-tested with promtool."""

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

OPS = Path(__file__).resolve().parents[2] / "ops" / "prometheus"


def promtool(*args: str) -> subprocess.CompletedProcess:
    binary = shutil.which("promtool")
    assert binary, "promtool is missing: `make test` installs it (apt-get install prometheus)"
    return subprocess.run([binary, *args], cwd=OPS, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("args", [("check", "config", "prometheus.yml"), ("check", "rules", "alerts.yml")])
def test_promtool_accepts_the_files(args):
    res = promtool(*args)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "SUCCESS" in res.stdout


def test_alert_rules_fire_when_they_should_and_only_then():
    res = promtool("test", "rules", "alerts_test.yml")
    assert res.returncode == 0, res.stdout + res.stderr


def test_every_operator_alert_is_there():
    text = (OPS / "alerts.yml").read_text()
    for alert in (
        "WorkerDown",
        "ConsumerLagGrowing",
        "DeadLetterRateHigh",
        "PredictionLatencyHigh",
        "ModelQualityDropping",
        "DriftDetected",
        "NoEvents",
        "PublishErrors",
        "EventLoopStalls",
    ):
        assert f"alert: InterestStream{alert}" in text
        assert f"alertname: InterestStream{alert}" in (OPS / "alerts_test.yml").read_text()


def test_every_alert_is_unit_tested_firing_and_silent():
    rules = yaml.safe_load((OPS / "alerts.yml").read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    tests = yaml.safe_load((OPS / "alerts_test.yml").read_text())["tests"]
    cases = [c for t in tests for c in t.get("alert_rule_test", [])]
    for alert in alerts:
        assert any(c["alertname"] == alert and c["exp_alerts"] for c in cases), f"{alert} never fires in a test"
        assert any(c["alertname"] == alert and not c["exp_alerts"] for c in cases), f"{alert} always fires"


def test_no_events_is_tested_on_a_worker_whose_counters_stay_at_zero():
    tests = yaml.safe_load((OPS / "alerts_test.yml").read_text())["tests"]
    flat = [
        t
        for t in tests
        if any(
            s["series"].startswith('stream_events_total{outcome="posts_in"') and s["values"] == "0x30"
            for s in t["input_series"]
        )
        and any(c["alertname"] == "InterestStreamNoEvents" and c["exp_alerts"] for c in t["alert_rule_test"])
    ]
    assert flat, "no test where a worker that never saw a post raises InterestStreamNoEvents"
