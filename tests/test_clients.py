"""Every Kafka client gets the same connection options from one place (``stream.clients``); the
secrets never show. (SASL end to end needs a broker that speaks it: the embedded one does not, so
these tests check what each client is given; TLS runs end to end in tests/integration/test_tls.py.)"""

import ast
import logging
from pathlib import Path

import faust
import pytest
import trustme
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

from stream import clients
from stream.settings import ConfigError, Settings
from stream.worker.app import check_production_keys, make_app

ROOT = Path(__file__).resolve().parents[1]
CLIENT_CLASSES = {"AIOKafkaConsumer", "AIOKafkaProducer", "KafkaConsumer", "KafkaProducer", "KafkaAdminClient"}
PASSWORD = "pw-3f9a1c"


@pytest.fixture(scope="module")
def ca_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture
def sasl(ca_file):
    return Settings(
        broker="k1:9093,k2:9093",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="svc-stream",
        sasl_password=PASSWORD,
        ssl_cafile=ca_file,
        checkpoint_key="k",
    )


def comparable(options):
    """The options, with the TLS context reduced to what it checks."""
    out = dict(options)
    ctx = out.pop("ssl_context", None)
    if ctx is not None:
        out["ssl"] = (ctx.verify_mode, ctx.check_hostname, len(ctx.get_ca_certs()))
    return out


def test_no_module_builds_a_kafka_client_but_stream_clients():
    """A client built anywhere else would miss the security settings (the transport's probe gets
    the Faust app's own credentials: checked below)."""

    def name(node):
        return getattr(node, "id", getattr(node, "attr", None))

    offenders = []
    for path in [*ROOT.glob("stream/**/*.py"), *ROOT.glob("models/**/*.py")]:
        if path.name == "clients.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and name(node.func) in CLIENT_CLASSES:
                if path.name == "transport.py" and any(k.arg is None for k in node.keywords):
                    continue  # AIOKafkaConsumer(**client_options, ...): the app's credentials
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
            if isinstance(node, ast.keyword) and node.arg == "bootstrap_servers":
                offenders.append(f"{path.relative_to(ROOT)}:{node.value.lineno} (bootstrap_servers=)")
            if (  # Quix Streams (the bench's peer): through stream.clients too
                isinstance(node, ast.keyword)
                and node.arg == "broker_address"
                and not (isinstance(node.value, ast.Call) and name(node.value.func) == "quix_connection")
            ):
                offenders.append(f"{path.relative_to(ROOT)}:{node.value.lineno} (broker_address=)")
    assert not offenders, offenders


@pytest.mark.parametrize(
    ("factory", "library", "cls"),
    [
        (clients.aio_consumer, "aiokafka", "AIOKafkaConsumer"),
        (clients.aio_producer, "aiokafka", "AIOKafkaProducer"),
        (clients.kafka_consumer, "kafka", "KafkaConsumer"),
        (clients.kafka_producer, "kafka", "KafkaProducer"),
        (clients.kafka_admin, "kafka", "KafkaAdminClient"),
    ],
)
def test_every_factory_passes_the_same_credentials(sasl, monkeypatch, factory, library, cls):
    got = {}
    monkeypatch.setattr(f"{library}.{cls}", lambda *a, **kw: got.update(kw) or object())
    factory(sasl, client_id="x")
    assert got["bootstrap_servers"] == ["k1:9093", "k2:9093"] and got["client_id"] == "x"
    assert comparable({k: v for k, v in got.items() if k not in ("bootstrap_servers", "client_id")}) == comparable(
        clients.security_options(sasl)
    )
    assert got["sasl_plain_password"] == PASSWORD and got["sasl_mechanism"] == "SCRAM-SHA-512"
    assert got["ssl_context"].verify_mode.name == "CERT_REQUIRED" and len(got["ssl_context"].get_ca_certs()) == 1


def test_the_faust_app_and_its_end_offset_probe_get_the_same_credentials(sasl):
    app = make_app(sasl, registry=None)  # type: ignore[arg-type]
    creds = app.conf.broker_credentials
    assert isinstance(creds, faust.SASLCredentials) and creds.mechanism.value == "SCRAM-SHA-512"
    faust_options = credentials_to_aiokafka_auth(creds, app.conf.ssl_context)
    assert comparable(faust_options) == comparable(clients.security_options(sasl))
    probe = app._new_transport().Consumer.consumer_thread_class.client_options  # the end offsets' client
    assert probe["bootstrap_servers"] == ["k1:9093", "k2:9093"]
    assert comparable({k: v for k, v in probe.items() if k != "bootstrap_servers"}) == comparable(
        clients.security_options(sasl)
    )


def test_tls_without_sasl_and_the_librdkafka_peer(ca_file):
    tls = Settings(broker="k:9093", security_protocol="SSL", ssl_cafile=ca_file)
    assert set(clients.security_options(tls)) == {"security_protocol", "ssl_context"}
    assert isinstance(clients.faust_credentials(tls), faust.SSLCredentials)
    assert clients.quix_connection(tls).security_protocol.lower() == "ssl"
    assert clients.librdkafka_options(tls) == {
        "bootstrap.servers": "k:9093",
        "security.protocol": "SSL",
        "ssl.ca.location": ca_file,
    }


def test_secrets_never_show_in_the_settings_repr_or_errors(sasl, caplog):
    assert PASSWORD not in repr(sasl) and "svc-stream" in repr(sasl)
    assert "pseudonym_key" not in repr(Settings(pseudonym_key="s")) and "checkpoint_key" not in repr(sasl)
    assert PASSWORD not in repr(clients.faust_credentials(sasl))
    with caplog.at_level(logging.DEBUG):
        clients.security_options(sasl)
    assert PASSWORD not in caplog.text


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"STREAM_SECURITY_PROTOCOL": "TLS"}, "STREAM_SECURITY_PROTOCOL"),
        ({"STREAM_SECURITY_PROTOCOL": "SASL_SSL", "STREAM_SASL_USERNAME": "u"}, "STREAM_SASL_PASSWORD"),
        ({"STREAM_SASL_MECHANISM": "GSSAPI"}, "STREAM_SASL_MECHANISM"),
        ({"STREAM_SSL_CAFILE": "/nonexistent/ca.pem"}, "STREAM_SSL_CAFILE"),
        ({"STREAM_BROKER": "SASL_SSL://k:9092"}, "STREAM_SECURITY_PROTOCOL=SASL_SSL"),
        ({"STREAM_LOG_LEVEL": "loud"}, "STREAM_LOG_LEVEL"),
        ({"STREAM_LOG_FORMAT": "xml"}, "STREAM_LOG_FORMAT"),
    ],
)
def test_a_bad_security_or_log_setting_is_one_line_naming_it(env, names):
    with pytest.raises(ConfigError, match=names) as err:
        Settings.from_env(env)
    assert "\n" not in str(err.value) and PASSWORD not in str(err.value)


def test_a_file_that_is_no_ca_is_one_line(tmp_path):
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate")
    with pytest.raises(ConfigError, match="STREAM_SSL_CAFILE"):
        clients.security_options(Settings(security_protocol="SSL", ssl_cafile=str(bad)))


def test_the_default_checkpoint_key_is_refused_off_loopback():
    check_production_keys(Settings(broker="127.0.0.1:9092,localhost:9093"))  # the embedded broker
    check_production_keys(Settings(broker="kafka:9092", checkpoint_key="own"))
    with pytest.raises(ConfigError, match="STREAM_CHECKPOINT_KEY"):
        check_production_keys(Settings(broker="127.0.0.1:9092,kafka:9092"))


def test_a_refused_sasl_login_is_one_line_naming_the_settings_not_the_password(sasl, monkeypatch):
    from kafka.errors import KafkaTimeoutError, SaslAuthenticationFailedError

    plain = sasl.replace(security_protocol="SASL_PLAINTEXT")  # no TLS handshake to make first

    def refuse(settings, **options):
        raise SaslAuthenticationFailedError(f"Authentication failed for user {settings.sasl_username}")

    monkeypatch.setattr(clients, "kafka_admin", refuse)
    with pytest.raises(ConfigError) as err:
        clients.check_connection(plain)
    message = str(err.value)
    assert "STREAM_SASL_USERNAME='svc-stream'" in message and "STREAM_SASL_PASSWORD" in message
    assert PASSWORD not in message and "\n" not in message

    def unreachable(settings, **options):
        raise KafkaTimeoutError("Unable to bootstrap")

    monkeypatch.setattr(clients, "kafka_admin", unreachable)
    clients.check_connection(plain)  # not reachable now: the clients wait and retry, as at any other time
