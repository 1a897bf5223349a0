"""Liveness (``/healthz``) against readiness (``/ready``) on a real worker and the embedded broker."""

import json
import time
import urllib.error
import urllib.request

import pytest

from stream.tools.demo import WorkerProcess

pytestmark = pytest.mark.integration


def get(url: str) -> tuple[int, object] | None:
    """Status and body (parsed if JSON) of a GET; ``None`` while nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=2) as res:
            status, body = res.status, res.read()
    except urllib.error.HTTPError as err:
        status, body = err.code, err.read()
    except OSError:
        return None
    try:
        return status, json.loads(body)
    except ValueError:
        return status, body


def test_a_starting_worker_is_alive_before_it_is_ready(settings, tmp_path):
    # a longer session timeout: the group join (half of it on the embedded broker) leaves time to ask
    settings = settings.replace(session_timeout=12.0)
    base = f"http://127.0.0.1:{settings.web_port}"
    pairs = []  # (/healthz, /ready) answers, from the first one until the worker is ready
    with WorkerProcess(settings, tmp_path / "worker.log") as worker:
        assert worker.proc is not None
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and worker.proc.poll() is None:
            ready = get(base + "/ready")
            if ready is not None:
                pairs.append((get(base + "/healthz"), ready))
                if ready[0] == 200:
                    break
            time.sleep(0.1)
        alive_when_ready = get(base + "/healthz")
    assert pairs, f"the worker's web server never answered; see {tmp_path / 'worker.log'}"
    assert pairs[-1][1][0] == 200, f"the worker never became ready; see {tmp_path / 'worker.log'}"
    # before the group join completed: not ready, yet alive
    status, body = pairs[0][1]
    assert status == 503 and isinstance(body, dict) and body["ready"] is False
    assert all(alive == (200, {"alive": True}) for alive, _ in pairs), pairs
    assert alive_when_ready == (200, {"alive": True})
