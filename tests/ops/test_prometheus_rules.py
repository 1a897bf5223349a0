"""Prometheus configuration and alert rules, checked and unit-tested with promtool."""

import shutil
import subprocess
from pathlib import Path

import pytest

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
    ):
        assert f"alert: InterestStream{alert}" in text
        assert f"alertname: InterestStream{alert}" in (OPS / "alerts_test.yml").read_text()
