"""The broker is lost and comes back empty (memory-only, same port): the worker does not pretend.

It either delivers the new posts (its topics declared again) or, when nothing it sends is delivered for
``STREAM_DELIVERY_TIMEOUT``, exits with code 75 and one line saying why, for its supervisor to restart it;
``/ready`` is never 200 while nothing is delivered."""

from __future__ import annotations

import time
import urllib.error
import urllib.request

import pytest

from stream.tools.broker import EmbeddedBroker, free_port
from stream.tools.data import tweets_stream
from stream.tools.demo import WorkerProcess, read_records
from stream.tools.produce import produce
from stream.worker.tasks import EXIT_UNDELIVERABLE
from tests.integration.conftest import unique_settings

pytestmark = pytest.mark.integration

TIMEOUT_S = 20.0


def ready(port: int) -> int | None:
    try:
        return int(urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2).status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return None


def test_a_worker_whose_broker_comes_back_empty_delivers_or_exits_to_be_restarted(tmp_path):
    port = free_port()
    tweets = tweets_stream()[:300]
    with EmbeddedBroker(port=port, log_file=tmp_path / "broker-1.log") as broker:
        settings = unique_settings(broker, tmp_path / "data", delivery_timeout=TIMEOUT_S)
        worker = WorkerProcess(settings, tmp_path / "worker.log").start()
        worker.wait_ready()
        produce(settings, tweets[:100], progress=False)
        assert len(read_records(settings, settings.topic_predictions, at_least=90)) >= 90
    answers: list[tuple[float, int | None]] = []
    try:
        with EmbeddedBroker(port=port, log_file=tmp_path / "broker-2.log"):  # the same address, empty
            lost_at = time.monotonic()
            produce(settings, tweets[100:200], progress=False)
            while worker.proc is not None and worker.proc.poll() is None and time.monotonic() - lost_at < 3 * TIMEOUT_S:
                answers.append((time.monotonic() - lost_at, ready(settings.web_port)))
                time.sleep(0.5)
            code = worker.proc.poll() if worker.proc else None
            later = {r["post_id"] for r in read_records(settings, settings.topic_predictions) if r}
    finally:
        worker.stop()
    log = (tmp_path / "worker.log").read_text()
    new_ids = {t["id"] for t in tweets[100:200]}
    if code is None:  # still up: then it delivers what came after the loss
        assert len(new_ids & later) >= 90, f"{len(new_ids & later)} of the new posts predicted, worker up"
    else:
        assert code == EXIT_UNDELIVERABLE, code
        assert ("nothing delivered to Kafka or committed for" in log and "STREAM_DELIVERY_TIMEOUT=20" in log) or (
            "the broker lost its data: exiting so that a restart starts from what the broker holds now" in log
        ), log[-2000:]
        # not ready while it could not deliver: 503 through the last seconds before it exited (a probe
        # while it shuts down finds its web server closed already: no answer, which is no "ready" either)
        while answers and answers[-1][1] is None:
            answers.pop()
        assert answers and [status for _, status in answers[-6:]] == [503] * 6, answers
    assert log.count("could not publish a record") <= 3 * TIMEOUT_S / 10 + 2  # errors logged at a bounded rate
