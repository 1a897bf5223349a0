"""Every Kafka client of the stream is built here, from the settings, with the same connection options.

One function, :func:`security_options`, turns ``STREAM_SECURITY_PROTOCOL``, ``STREAM_SASL_*`` and
``STREAM_SSL_*`` into the options of a client; the factories below add the bootstrap servers and
build the client of each library the stream uses (aiokafka under Faust and in the model sync,
kafka-python in the tools), and :func:`faust_credentials` gives the same to the Faust app. A module that
needs a Kafka client calls a factory here instead of a client's constructor (a test checks that).

>>> from stream.settings import Settings
>>> s = Settings(broker="k:9092", security_protocol="SASL_PLAINTEXT", sasl_mechanism="SCRAM-SHA-512",
...              sasl_username="svc", sasl_password="pw")
>>> opts = security_options(s)
>>> opts["security_protocol"], opts["sasl_mechanism"], opts["sasl_plain_username"]
('SASL_PLAINTEXT', 'SCRAM-SHA-512', 'svc')
>>> security_options(Settings(broker="k:9092"))
{'security_protocol': 'PLAINTEXT'}
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from stream.settings import ConfigError, Settings

PROBE_WAIT_MS = 50  # the end-offset probe's fetch wait

if TYPE_CHECKING:  # the clients' imports are slow: only when a client is built
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from faust.types.auth import CredentialsT
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context of every client (``None`` without TLS): the brokers' certificates checked against
    ``STREAM_SSL_CAFILE`` (or the system's CAs), their host names too unless
    ``STREAM_SSL_CHECK_HOSTNAME=false``, and the client certificate if one is set.

    >>> ssl_context(Settings()) is None
    True
    >>> ssl_context(Settings(security_protocol="SSL")).verify_mode == ssl.CERT_REQUIRED
    True
    """
    if settings.security_protocol not in ("SSL", "SASL_SSL"):
        return None
    try:
        context = ssl.create_default_context(cafile=settings.ssl_cafile)
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(f"STREAM_SSL_CAFILE={settings.ssl_cafile!r} holds no usable CA certificate ({exc})") from None
    context.check_hostname = settings.ssl_check_hostname
    if settings.ssl_certfile:
        try:
            context.load_cert_chain(settings.ssl_certfile, settings.ssl_keyfile)
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(
                f"STREAM_SSL_CERTFILE={settings.ssl_certfile!r} and STREAM_SSL_KEYFILE={settings.ssl_keyfile!r} "
                f"are not a certificate and its key ({exc})"
            ) from None
    return context


def security_options(settings: Settings) -> dict[str, Any]:
    """The connection options every client gets (aiokafka and kafka-python name them alike)."""
    options: dict[str, Any] = {"security_protocol": settings.security_protocol}
    context = ssl_context(settings)
    if context is not None:
        options["ssl_context"] = context
    if settings.security_protocol.startswith("SASL_"):
        options.update(
            sasl_mechanism=settings.sasl_mechanism,
            sasl_plain_username=settings.sasl_username,
            sasl_plain_password=settings.sasl_password,
        )
    return options


def client_options(settings: Settings) -> dict[str, Any]:
    """Bootstrap servers and :func:`security_options`: what every client is built with."""
    return {"bootstrap_servers": settings.bootstrap_servers, **security_options(settings)}


def faust_credentials(settings: Settings) -> CredentialsT | None:
    """The Faust app's ``broker_credentials``: the same options as the other clients' (Faust hands them to
    its aiokafka clients)."""
    import faust

    options = security_options(settings)
    protocol = options["security_protocol"]
    if protocol == "PLAINTEXT":
        return None
    if protocol == "SSL":
        return faust.SSLCredentials(options["ssl_context"])
    return faust.SASLCredentials(
        username=options["sasl_plain_username"],
        password=options["sasl_plain_password"],
        ssl_context=options.get("ssl_context"),
        mechanism=options["sasl_mechanism"],
    )


def aio_consumer(settings: Settings, *topics: str, **options: Any) -> AIOKafkaConsumer:
    from aiokafka import AIOKafkaConsumer

    return AIOKafkaConsumer(*topics, **client_options(settings), **options)


def aio_producer(settings: Settings, **options: Any) -> AIOKafkaProducer:
    from aiokafka import AIOKafkaProducer

    return AIOKafkaProducer(**client_options(settings), **options)


async def true_end_offsets(options: Mapping[str, Any], reported: Mapping[Any, int]) -> dict[Any, int]:
    """The offset after the last record of each partition: ``reported`` (a broker's end offsets,
    keyed by anything with ``topic`` and ``partition``), moved past the records read from there
    (``options``: the bootstrap servers and connection options of the probe's client, as
    :func:`client_options` gives them).

    The embedded broker reports the base offset of the last record batch instead (see
    :mod:`stream.worker.transport`); on Apache Kafka nothing is found past the end and the answer is
    unchanged. Here, not in the transport, so that the learner process reads its end offsets without
    importing Faust."""
    result = dict(reported)
    if not result:
        return result
    from aiokafka import AIOKafkaConsumer, TopicPartition

    tps = {TopicPartition(tp.topic, tp.partition): tp for tp in result}
    probe = AIOKafkaConsumer(**options, group_id=None, enable_auto_commit=False, fetch_max_wait_ms=PROBE_WAIT_MS)
    await probe.start()
    try:
        probe.assign(list(tps))
        for ktp, tp in tps.items():
            probe.seek(ktp, max(0, result[tp]))
        idle = 0
        while idle < 2:
            batches = await probe.getmany(timeout_ms=PROBE_WAIT_MS * 2)
            idle = 0 if batches else idle + 1
            for ktp, records in batches.items():
                if records:
                    tp = tps[ktp]
                    result[tp] = max(result[tp], records[-1].offset + 1)
    finally:
        await probe.stop()
    return result


def kafka_consumer(settings: Settings, *topics: str, **options: Any) -> KafkaConsumer:
    from kafka import KafkaConsumer

    return KafkaConsumer(*topics, **client_options(settings), **options)


def kafka_producer(settings: Settings, **options: Any) -> KafkaProducer:
    from kafka import KafkaProducer

    return KafkaProducer(**client_options(settings), **options)


def kafka_admin(settings: Settings, **options: Any) -> KafkaAdminClient:
    from kafka import KafkaAdminClient

    return KafkaAdminClient(**client_options(settings), **options)


def librdkafka_options(settings: Settings) -> dict[str, str]:
    """The same connection for librdkafka clients (confluent-kafka, under the bench's Quix Streams peer).

    >>> librdkafka_options(Settings(broker="a:1,b:2", security_protocol="SSL", ssl_check_hostname=False))
    {'bootstrap.servers': 'a:1,b:2', 'security.protocol': 'SSL', 'ssl.endpoint.identification.algorithm': 'none'}
    """
    options = {
        "bootstrap.servers": ",".join(settings.bootstrap_servers),
        "security.protocol": settings.security_protocol,
    }
    security_options(settings)  # the same checks of the files
    if settings.security_protocol in ("SSL", "SASL_SSL"):
        for key, value in (
            ("ssl.ca.location", settings.ssl_cafile),
            ("ssl.certificate.location", settings.ssl_certfile),
            ("ssl.key.location", settings.ssl_keyfile),
        ):
            if value:
                options[key] = value
        if not settings.ssl_check_hostname:
            options["ssl.endpoint.identification.algorithm"] = "none"
    if settings.security_protocol.startswith("SASL_"):
        options.update(
            {
                "sasl.mechanism": settings.sasl_mechanism,
                "sasl.username": settings.sasl_username or "",
                "sasl.password": settings.sasl_password or "",
            }
        )
    return options


def quix_connection(settings: Settings) -> Any:
    """:func:`librdkafka_options` as Quix Streams' ``ConnectionConfig`` (the bench's peer)."""
    from quixstreams.kafka.configuration import ConnectionConfig

    return ConnectionConfig.from_librdkafka_dict(librdkafka_options(settings))


def check_connection(settings: Settings, timeout: float = 10.0) -> None:
    """Reach the first bootstrap server that answers, as every client will, and raise :class:`ConfigError`
    (one line, naming the setting to look at) when the TLS handshake or the SASL login is refused.

    A broker that cannot be reached at all is not an error here: the worker waits for it as it does at
    any other time. The message never contains the password.
    """
    options = security_options(settings)
    context = options.get("ssl_context")
    if context is not None:
        _check_tls(settings, context, timeout)
    if settings.security_protocol.startswith("SASL_"):
        _check_sasl(settings, timeout)


def _check_tls(settings: Settings, context: ssl.SSLContext, timeout: float) -> None:
    protocol = f"STREAM_SECURITY_PROTOCOL={settings.security_protocol}"
    for server in settings.bootstrap_servers:
        host, _, port = server.rpartition(":")
        try:
            raw = socket.create_connection((host, int(port)), timeout=timeout)
        except OSError:
            continue  # not reachable now: the clients retry
        try:
            with context.wrap_socket(raw, server_hostname=host):
                return
        except ssl.SSLCertVerificationError as exc:
            where = f"STREAM_SSL_CAFILE={settings.ssl_cafile!r}" if settings.ssl_cafile else "the system's CAs"
            hint = "" if "hostname" not in str(exc).lower() else " (or STREAM_SSL_CHECK_HOSTNAME)"
            raise ConfigError(
                f"the certificate of {server} is not trusted by {where}{hint}: {exc.verify_message}"
            ) from None
        except (ssl.SSLError, TimeoutError, ConnectionError) as exc:
            reason = getattr(exc, "reason", None) or type(exc).__name__
            raise ConfigError(f"TLS to {server} failed ({reason}): does this listener speak {protocol}?") from None
        finally:
            raw.close()


def _check_sasl(settings: Settings, timeout: float) -> None:
    from kafka.errors import (
        AuthorizationError,
        IllegalSaslStateError,
        KafkaError,
        SaslAuthenticationFailedError,
        UnsupportedSaslMechanismError,
    )

    refused = (SaslAuthenticationFailedError, UnsupportedSaslMechanismError, IllegalSaslStateError, AuthorizationError)
    try:
        admin = kafka_admin(settings, request_timeout_ms=int(timeout * 1000), client_id="interest-stream-check")
    except refused as exc:
        raise ConfigError(
            f"the broker refused the SASL login of STREAM_SASL_USERNAME={settings.sasl_username!r} with "
            f"STREAM_SASL_MECHANISM={settings.sasl_mechanism} (check STREAM_SASL_PASSWORD): {type(exc).__name__}"
        ) from None
    except KafkaError:
        return  # not reachable now: the clients retry and log it
    admin.close()
