"""Every client over TLS, end to end, on the real broker behind a real TLS listener (stunnel4): the
worker (Faust's clients, the model sync and the learner process), ``produce``, the demo and the readers.
A certificate the CA file does not trust is a one-line error naming the setting."""

import subprocess
import sys

import orjson
import pytest
import trustme
from kafka.errors import KafkaTimeoutError

from stream.clients import kafka_producer
from stream.settings import settings_env
from stream.tools.broker import EmbeddedBroker
from stream.tools.demo import WorkerProcess, wait_processed

from .conftest import unique_settings
from .test_worker import read_all

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    ca.cert_pem.write_to_path(str(d / "ca.pem"))
    server.private_key_pem.write_to_path(str(d / "server.key"))
    server.cert_chain_pems[0].write_to_path(str(d / "server.pem"))
    trustme.CA().cert_pem.write_to_path(str(d / "other-ca.pem"))  # a CA that signed nothing of ours
    return d


@pytest.fixture(scope="module")
def tls_broker(tls_files):
    with EmbeddedBroker(
        log_file=tls_files / "broker.log", tls_cert=tls_files / "server.pem", tls_key=tls_files / "server.key"
    ) as b:
        yield b


def tls_settings(broker, tls_files, tmp_path, **overrides):
    tls = {"security_protocol": "SSL", "ssl_cafile": str(tls_files / "ca.pem")}
    return unique_settings(broker, tmp_path / "data", prefix="tls", **{**tls, **overrides})


def cli(settings, *args, timeout=240):
    return subprocess.run(
        [sys.executable, "-m", "stream", *args],
        capture_output=True,
        text=True,
        env=settings_env(settings),
        timeout=timeout,
    )


def test_the_listener_speaks_tls_only(tls_broker, tls_files, tmp_path):
    plain = tls_settings(tls_broker, tls_files, tmp_path, security_protocol="PLAINTEXT", ssl_cafile=None)
    # a client without TLS never completes its first request
    with pytest.raises(KafkaTimeoutError, match="bootstrap"):
        kafka_producer(plain, max_block_ms=3000)


def test_worker_and_produce_go_through_tls(tls_broker, tls_files, tmp_path):
    settings = tls_settings(tls_broker, tls_files, tmp_path)
    with WorkerProcess(settings, tmp_path / "worker.log") as worker:
        worker.wait_ready(learner=True)  # the learner process reached the broker over TLS too
        res = cli(settings, "produce", "tweets", "--limit", "300", "--feedback-fraction", "0.3")
        assert res.returncode == 0, res.stderr[-2000:]
        assert "sent 300 posts" in res.stderr
        snapshot = wait_processed(settings, 300, 0, timeout=120, progress=False)
        predicted = snapshot["counts"]["predicted"]
        records = [orjson.loads(v) for v in read_all(settings, settings.topic_predictions, predicted)]
    assert predicted > 250 and len({r["post_id"] for r in records}) == predicted
    assert snapshot["model"]["version"] > 0  # labels learned and the model delta reached the worker over TLS


def test_demo_goes_through_tls(tls_broker, tls_files, tmp_path):
    settings = tls_settings(tls_broker, tls_files, tmp_path)
    res = cli(settings, "demo", "--events", "400", "--rate", "400", "--out", str(tmp_path / "out"))
    assert res.returncode == 0, res.stderr[-3000:]
    report = orjson.loads((tmp_path / "out" / "report.json").read_bytes())
    assert report["posts_sent"] == 400 and report["predictions_on_topic"] == report["predictions"] > 300


def test_tls_to_a_plain_listener_is_one_line(broker, tls_files, tmp_path):
    settings = tls_settings(broker, tls_files, tmp_path)  # the session's broker speaks plain Kafka
    res = cli(settings, "worker", timeout=120)
    assert res.returncode == 1
    assert res.stderr.strip().count("\n") == 0 and "STREAM_SECURITY_PROTOCOL=SSL" in res.stderr, res.stderr[-2000:]


@pytest.mark.parametrize("command", [["produce", "tweets", "--limit", "5"], ["worker"]])
def test_an_untrusted_certificate_is_one_line_naming_the_ca_setting(tls_broker, tls_files, tmp_path, command):
    settings = tls_settings(tls_broker, tls_files, tmp_path, ssl_cafile=str(tls_files / "other-ca.pem"))
    res = cli(settings, *command, timeout=120)
    assert res.returncode == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "STREAM_SSL_CAFILE" in lines[0] and "not trusted" in lines[0], res.stderr[-2000:]
