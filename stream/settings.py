"""One frozen settings object, read from ``STREAM_*`` environment variables.

Every knob of the worker, the demo and the tools lives here, so that the same
variables configure a laptop demo, a test and a production deployment.

>>> s = Settings.from_env({"STREAM_PARTITIONS": "8", "STREAM_BROKER": "kafka-1:9092"})
>>> s.partitions, s.broker_url
(8, 'kafka://kafka-1:9092')
>>> Settings.from_env({"STREAM_PARTITIONS": "many"})
Traceback (most recent call last):
...
stream.settings.ConfigError: STREAM_PARTITIONS='many' is not a whole number
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

PREFIX = "STREAM_"
ROLES = ("all", "posts", "aggregates")
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
# Python's level names (and Faust's short ones) → the name Faust's ``--loglevel`` takes.
LOG_LEVELS = {
    "debug": "DEBUG",
    "info": "INFO",
    "warning": "WARN",
    "warn": "WARN",
    "error": "ERROR",
    "critical": "CRIT",
    "crit": "CRIT",
}


class ConfigError(ValueError):
    """A setting has a value the program cannot use; the message is one line."""


def _int(name: str, raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number") from None


def _float(name: str, raw: str) -> float:
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None


def _bool(name: str, raw: str) -> bool:
    low = raw.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{name}={raw!r} is not a boolean (use true/false)")


def _str(name: str, raw: str) -> str:
    return raw


def _hosts(broker: str) -> list[str]:
    """``host:port`` of each bootstrap server in ``STREAM_BROKER`` (``,`` or ``;`` between them, each
    optionally ``kafka://``); another scheme is a one-line error.

    >>> _hosts("kafka://a:9092; b:9093")
    ['a:9092', 'b:9093']
    >>> _hosts("SSL://a:9092")
    Traceback (most recent call last):
    ...
    stream.settings.ConfigError: STREAM_BROKER='SSL://a:9092': give host:port (and STREAM_SECURITY_PROTOCOL=SSL)
    """
    hosts = [h.strip().removeprefix("kafka://") for h in broker.replace(";", ",").split(",")]
    hosts = [h for h in hosts if h]
    if not hosts:
        raise ConfigError("STREAM_BROKER is set but empty")
    for host in hosts:
        scheme, sep, _ = host.partition("://")
        if sep:
            hint = f" (and STREAM_SECURITY_PROTOCOL={scheme.upper()})" if scheme.upper() in SECURITY_PROTOCOLS else ""
            raise ConfigError(f"STREAM_BROKER={broker!r}: give host:port{hint}")
    return hosts


_PARSERS: dict[type | str, Callable[[str, str], Any]] = {
    "int": _int,
    "float": _float,
    "bool": _bool,
    "str": _str,
    "str | None": _str,
}


def _setting(default: Any, doc: str, secret: bool = False) -> Any:
    return field(default=default, metadata={"doc": doc, "secret": secret}, repr=not secret)


@dataclass(frozen=True)
class Settings:
    """Configuration of the interest stream. Field ``x`` is read from ``STREAM_X``."""

    broker: str | None = _setting(
        None,
        "Kafka bootstrap server(s), `host:port[,host:port]` or `kafka://host:port`. Unset: the demo "
        "starts the embedded broker on a free loopback port (the worker and `produce` need it set).",
    )
    app_id: str = _setting(
        "interest-stream",
        "Faust app id = the Kafka consumer group of the workers that run the posts (`all` or `posts`); "
        "`aggregates` workers form the group `APP_ID-aggregates`.",
    )
    role: str = _setting(
        "all",
        "What a worker runs: `all` (every agent in one process), `posts` (validation, predictions, "
        "sentiment and the learner role) or `aggregates` (the audience windows, triggers, profiles and their "
        "query API). A `posts` and an `aggregates` worker side by side do what one `all` worker does, in "
        "two processes.",
    )
    topic_posts: str = _setting("social.posts", "Input topic of post events (JSON).")
    topic_feedback: str = _setting("social.feedback", "Delayed labels `{post_id, interest?, sentiment?}`.")
    topic_predictions: str = _setting("interest.predictions", "One prediction per accepted post.")
    topic_metrics: str = _setting("interest.metrics", "Periodic metrics snapshots (JSON).")
    topic_dlq: str = _setting("social.posts.dlq", "Dead letters: reason, original bytes, source position.")
    topic_training: str = _setting(
        "interest.training",
        "The training log (one partition): labelled examples (a post's features joined to its labels) and "
        "erasures, in the order the learner learns them.",
    )
    topic_model: str = _setting(
        "interest.model", "The learner's signed snapshots and sparse deltas, in parts of at most 1 MB (one partition)."
    )
    topic_learner: str = _setting(
        "interest.learner",
        "Internal, empty (one partition): the worker the group assigns its partition holds the learner role.",
    )
    topic_feedback_keyed: str = _setting(
        "interest.feedback.by-post",
        "Internal: delayed labels that came on another partition than their post's, sent on keyed by post id.",
    )
    topic_audience: str = _setting(
        "audience.sentiment", "Closed windows of audience sentiment per segment, and volume/sentiment spikes."
    )
    topic_triggers: str = _setting("campaign.triggers", "Fired campaign triggers (id idempotent on redelivery).")
    topic_profiles: str = _setting(
        "user.interests", "User-interest profiles keyed by user id (compacted; a tombstone on erasure)."
    )
    topic_erasure: str = _setting("privacy.erasure", "Erasure requests `{user_id}`.")
    topic_partials: str = _setting(
        "audience.partials", "Internal: partial aggregates keyed by segment, every `STREAM_AGGREGATE_INTERVAL`."
    )
    topic_profile_updates: str = _setting("user.updates", "Internal: profile updates and erasures keyed by user.")
    window_tumbling: int = _setting(60, "Tumbling window of the audience aggregates (s of event time).")
    window_hopping: int = _setting(300, "Hopping window size (s of event time).")
    window_hop: int = _setting(60, "Hopping window step (s).")
    window_lateness: int = _setting(
        10,
        "Allowed lateness (s): a window closes when event time passes its end "
        "plus this; later posts are counted as late and dropped from windows.",
    )
    window_min_hashtag_volume: int = _setting(
        5,
        "Hashtag windows with fewer posts are not published (the long "
        "tail); they still feed spike baselines and trigger rules.",
    )
    spike_threshold: float = _setting(3.5, "Robust z-score (median/MAD of the trailing windows) that is a spike.")
    spike_history: int = _setting(30, "Trailing windows in a segment's spike baseline.")
    trigger_rules: str | None = _setting(
        None,
        "Campaign trigger rules file (TOML, or YAML with PyYAML). Unset: "
        "no triggers. A bad rule stops the worker with a one-line error.",
    )
    profile_half_life: float = _setting(86400.0, "Half-life (s of event time) of the user-interest scores.")
    profile_top_k: int = _setting(3, "Interests listed as a user's top interests.")
    pseudonym_key: str | None = _setting(
        None,
        "If set, user ids in every output are replaced by a keyed hash (HMAC-SHA256) of them.",
        secret=True,
    )
    cold_labels: int = _setting(
        100,
        "Interest predictions made before the model has learned this many labels "
        "carry `cold: true` (their scores rest on little evidence).",
    )
    sentiment_warmup: int = _setting(
        200, "Sentiment labels learned before predictions stop being `cold` (until then the lexicon dominates)."
    )
    checkpoint_interval: float = _setting(
        30.0,
        "Seconds between the learner's whole snapshots of the model (it also writes one when it takes the "
        "role, after a drift and when it stops cleanly).",
    )
    delta_interval: float = _setting(
        1.0, "Seconds between the learner's sparse deltas (the rows of the model that changed) to every worker."
    )
    checkpoint_key: str = _setting(
        "dev-only-change-me",
        "HMAC key that signs the model's snapshots and deltas; one signed with another key is refused. "
        "A worker refuses to start with the default on any broker but the embedded one.",
        secret=True,
    )
    partitions: int = _setting(4, "Partitions of the topics the app creates.")
    replication: int = _setting(1, "Replication factor of the topics the app creates.")
    model: str = _setting(
        "arow",
        "Interest model: a name of `models.factory.CANDIDATES` (`arow`, `nb`, ...; "
        "`interest-stream compare` runs them all).",
    )
    drift_adapt: bool = _setting(
        True,
        "Detect concept drift per interest (ADWIN on each interest's error) and unlearn the interests whose "
        "meaning changed; `false` keeps what was learned. Also applies to a model restored from a checkpoint.",
    )
    burst_replays: float = _setting(
        2.0,
        "Kept posts the `arow` learner replays after each label while a burst keeps some interest away (no label "
        "for 200 labels and four times its mean gap); 1 after each label otherwise. Each more costs about one "
        "label's learning step in bursts (see docs/models.md, Bursts).",
    )
    hash_bits: int = _setting(
        20,
        "Text features are hashed into 2^bits buckets (bounds model memory: `arow` keeps 32 bytes of weights per "
        "bucket for 8 interests, and its learner as much again).",
    )
    web_host: str = _setting("127.0.0.1", "Interface of the worker's web server (/metrics).")
    web_port: int = _setting(6066, "Port of the worker's web server; Prometheus scrapes /metrics here.")
    web_url: str | None = _setting(
        None,
        "URL the other workers reach this one's web server at (the query API forwards a request to the "
        "worker that owns its key). Unset: `http://STREAM_WEB_HOST:STREAM_WEB_PORT`, with this host's "
        "address when the host is `0.0.0.0` (a container's or pod's IP).",
    )
    batch_size: int = _setting(
        64,
        "Most records an agent processes between two yields to the event loop (what it takes is "
        "processed in slices of this size).",
    )
    batch_within: float = _setting(
        0.02,
        "Longest wait (s) to gather the fetches of several partitions into one batch: under load "
        "fetches are large anyway; at low load this is the latency it adds.",
    )
    aggregate_interval: float = _setting(
        0.5,
        "Seconds between two sends of the posts' partial audience "
        "aggregates and profile updates (also sent before every offset commit).",
    )
    metrics_interval: float = _setting(5.0, "Seconds between snapshots on the metrics topic.")
    rolling_window: int = _setting(1000, "Events in the rolling prequential metrics.")
    feedback_ttl: float = _setting(3600.0, "Seconds a post's features wait for a delayed label.")
    feedback_capacity: int = _setting(200_000, "Most posts waiting for a delayed label (oldest dropped).")
    dedup_capacity: int = _setting(200_000, "Post ids and text fingerprints remembered for duplicates.")
    max_text_chars: int = _setting(20_000, "Longer texts are truncated before cleaning.")
    max_id_chars: int = _setting(
        256,
        "Longest post id, user id or feedback post id (after control characters are removed); longer "
        "is dead-lettered as `field_too_long`.",
    )
    max_name_chars: int = _setting(
        128,
        "Longest campaign or hashtag; a longer one in the input is dead-lettered as `field_too_long`, "
        "one found in the text is dropped.",
    )
    max_hashtags: int = _setting(
        64,
        "Most hashtags of a post: more in the `hashtags` field is `field_too_long`; of those found in the "
        "text, the first are kept.",
    )
    max_classes: int = _setting(
        32,
        "Most interest classes the model learns (each costs ~8 MB with `arow`); a post or label of a new "
        "interest beyond it is dead-lettered as `too_many_classes`.",
    )
    max_event_ahead: float = _setting(
        86400.0,
        "Seconds a post's `created_at` may be ahead of the worker's clock; later ones are "
        "dead-lettered as `bad_timestamp` (they would close every window at once).",
    )
    max_message_bytes: int = _setting(
        1_000_000,
        "Largest record the worker produces (the producer's `max.request.size`; Kafka's default "
        "broker limit is ~1 MB). Aggregates are split to fit; a record that cannot fit is counted and replaced "
        "by an `output_too_large` dead letter.",
    )
    dlq_original_bytes: int = _setting(
        65536, "Bytes of the original record kept in a dead letter (with its full size and SHA-256)."
    )
    max_segments: int = _setting(
        10_000,
        "Distinct campaigns (and, apart, hashtags) a worker gives live-audience windows of their own "
        "before it sees a flood; past it, only those seen `STREAM_SEGMENT_MIN_POSTS` times (heavy hitters).",
    )
    segment_min_posts: int = _setting(
        3,
        "Posts a campaign or hashtag needs, once a worker has seen more than `STREAM_MAX_SEGMENTS` of them, "
        "to get windows of its own.",
    )
    delivery_timeout: float = _setting(
        120.0,
        "Seconds a worker may go without delivering a record it has to send (a lost or emptied broker) "
        "before it exits with a one-line error and code 75, for its supervisor to restart it; nothing is "
        "committed past what was delivered, so the restart loses nothing.",
    )
    stall_timeout: float = _setting(
        30.0,
        "Seconds a partition the worker holds may have records it does not read, with its read position "
        "unmoved, before the worker logs its state and fetches it again from the last offset it read (0: never); "
        'counted in `stream_events_total{outcome="input_partitions_restarted"}`.',
    )
    top_segments: int = _setting(
        50, "Campaigns exported as Prometheus series (the busiest); the rest are summed as `other`."
    )
    fetch_wait_ms: int = _setting(
        50,
        "Longest time the broker may hold a consumer fetch (ms); "
        "Faust's fixed 1500 adds up to 1.5 s of latency at low load.",
    )
    fetch_min_bytes: int = _setting(
        1,
        "Least data (bytes) the broker gathers for a fetch of the worker's inputs before it answers, within "
        "`STREAM_FETCH_WAIT_MS`: the floor of what `STREAM_FETCH_GATHER_MS` asks for. 1 answers as soon as a "
        "post is there. A fixed 65536 makes fewer, larger fetches under sustained load, but then every fetch "
        "waits `STREAM_FETCH_WAIT_MS` when posts come slower (measured figures: docs/performance.md).",
    )
    fetch_gather_ms: float = _setting(
        0.0,
        "Each fetch of the worker's inputs asks for about this many milliseconds of the input at its rate of "
        "the last half second (at least `STREAM_FETCH_MIN_BYTES`, and never waiting over `STREAM_FETCH_WAIT_MS`): "
        "fewer, larger fetches, which cost the worker and the broker less CPU per post, for some latency "
        "(10: a fifth less CPU per live post, and a higher p50 and p99; docs/performance.md). "
        "0: every fetch asks for `STREAM_FETCH_MIN_BYTES`.",
    )
    session_timeout: float = _setting(8.0, "Consumer session timeout (s); the broker's join waits half.")
    security_protocol: str = _setting(
        "PLAINTEXT",
        "How every Kafka client connects: `PLAINTEXT`, `SSL` (TLS), `SASL_PLAINTEXT` or `SASL_SSL` "
        "(TLS and SASL, what most managed Kafka services require).",
    )
    sasl_mechanism: str = _setting("PLAIN", "SASL mechanism: `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`.")
    sasl_username: str | None = _setting(None, "SASL user name (with a `SASL_*` protocol).")
    sasl_password: str | None = _setting(
        None,
        "SASL password (with a `SASL_*` protocol); a secret: never logged, printed or put in a record.",
        secret=True,
    )
    ssl_cafile: str | None = _setting(
        None, "PEM file of the CA(s) that signed the brokers' certificates. Unset: the system's trusted CAs."
    )
    ssl_certfile: str | None = _setting(None, "PEM client certificate, for brokers that require TLS client auth.")
    ssl_keyfile: str | None = _setting(None, "PEM private key of `STREAM_SSL_CERTFILE`.")
    ssl_check_hostname: bool = _setting(True, "Check that a broker's certificate names the host connected to.")
    data_dir: str = _setting(".stream-data", "Directory of the worker's local state.")
    log_level: str = _setting(
        "info", "Log level of the worker and tools: `debug`, `info`, `warning`, `error` or `critical`."
    )
    log_format: str = _setting("text", "`text`, or `json`: one JSON object per log line.")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read settings from ``env`` (default ``os.environ``); ``overrides`` win."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            name = PREFIX + f.name.upper()
            if name in env:
                values[f.name] = _PARSERS[str(f.type)](name, env[name])
        values.update(overrides)
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        """Raise :class:`ConfigError` (one line) on a value the program cannot use."""
        from models.factory import CANDIDATES  # river's import is slow: only when settings are checked

        if self.model not in CANDIDATES:
            raise ConfigError(f"STREAM_MODEL={self.model!r} is not one of {', '.join(CANDIDATES)}")
        positive = (
            "partitions",
            "replication",
            "batch_size",
            "rolling_window",
            "feedback_capacity",
            "dedup_capacity",
            "max_text_chars",
            "window_tumbling",
            "window_hopping",
            "window_hop",
            "spike_history",
            "profile_top_k",
            "max_id_chars",
            "max_name_chars",
            "max_hashtags",
            "max_classes",
            "top_segments",
            "max_segments",
            "segment_min_posts",
        )
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"STREAM_{name.upper()}={getattr(self, name)} must be at least 1")
        if self.max_message_bytes < 65536:
            raise ConfigError(f"STREAM_MAX_MESSAGE_BYTES={self.max_message_bytes} must be at least 65536")
        if not 0 <= self.dlq_original_bytes <= self.max_message_bytes // 2:
            raise ConfigError(
                f"STREAM_DLQ_ORIGINAL_BYTES={self.dlq_original_bytes} must be between 0 and half of "
                f"STREAM_MAX_MESSAGE_BYTES ({self.max_message_bytes // 2})"
            )
        if self.delivery_timeout < 10:
            raise ConfigError(f"STREAM_DELIVERY_TIMEOUT={self.delivery_timeout} must be at least 10")
        if self.stall_timeout != 0 and not 5 <= self.stall_timeout <= 86_400:
            raise ConfigError(f"STREAM_STALL_TIMEOUT={self.stall_timeout:g} must be 0 (off) or between 5 and 86400")
        if self.max_event_ahead <= 0:
            raise ConfigError(f"STREAM_MAX_EVENT_AHEAD={self.max_event_ahead} must be positive")
        if not 1 <= self.fetch_wait_ms <= 10_000:
            raise ConfigError(f"STREAM_FETCH_WAIT_MS={self.fetch_wait_ms} must be between 1 and 10000")
        if not 0 <= self.fetch_gather_ms <= 10_000:
            raise ConfigError(f"STREAM_FETCH_GATHER_MS={self.fetch_gather_ms:g} must be between 0 and 10000")
        if not 1 <= self.fetch_min_bytes <= self.max_message_bytes:
            raise ConfigError(
                f"STREAM_FETCH_MIN_BYTES={self.fetch_min_bytes} must be between 1 and "
                f"STREAM_MAX_MESSAGE_BYTES ({self.max_message_bytes})"
            )
        if not self.checkpoint_key:
            raise ConfigError("STREAM_CHECKPOINT_KEY is empty (checkpoints must be signed)")
        if self.window_hopping % self.window_hop:
            raise ConfigError(
                f"STREAM_WINDOW_HOPPING={self.window_hopping} is not a multiple of STREAM_WINDOW_HOP={self.window_hop}"
            )
        for name in ("window_lateness", "sentiment_warmup", "cold_labels"):
            if getattr(self, name) < 0:
                raise ConfigError(f"STREAM_{name.upper()}={getattr(self, name)} must not be negative")
        if self.pseudonym_key is not None and not self.pseudonym_key:
            raise ConfigError("STREAM_PSEUDONYM_KEY is set but empty")
        for name in (
            "batch_within",
            "aggregate_interval",
            "metrics_interval",
            "feedback_ttl",
            "session_timeout",
            "checkpoint_interval",
            "delta_interval",
            "spike_threshold",
            "profile_half_life",
        ):
            if getattr(self, name) <= 0:
                raise ConfigError(f"STREAM_{name.upper()}={getattr(self, name)} must be positive")
        if not 1 <= self.burst_replays <= 4:
            raise ConfigError(f"STREAM_BURST_REPLAYS={self.burst_replays:g} must be between 1 and 4")
        if not 8 <= self.hash_bits <= 28:
            raise ConfigError(f"STREAM_HASH_BITS={self.hash_bits} must be between 8 and 28")
        if not 0 <= self.web_port <= 65535:
            raise ConfigError(f"STREAM_WEB_PORT={self.web_port} is not a port number")
        if self.web_url is not None and not self.web_url.startswith(("http://", "https://")):
            raise ConfigError(f"STREAM_WEB_URL={self.web_url!r} is not an http:// or https:// URL")
        if self.broker is not None:
            _hosts(self.broker)
        if self.log_level.lower() not in LOG_LEVELS:
            raise ConfigError(f"STREAM_LOG_LEVEL={self.log_level!r} is not one of {', '.join(sorted(set(LOG_LEVELS)))}")
        if self.log_format not in ("text", "json"):
            raise ConfigError(f"STREAM_LOG_FORMAT={self.log_format!r} is not text or json")
        if self.role not in ROLES:
            raise ConfigError(f"STREAM_ROLE={self.role!r} is not one of {', '.join(ROLES)}")
        self._validate_security()

    def _validate_security(self) -> None:
        if self.security_protocol not in SECURITY_PROTOCOLS:
            raise ConfigError(
                f"STREAM_SECURITY_PROTOCOL={self.security_protocol!r} is not one of {', '.join(SECURITY_PROTOCOLS)}"
            )
        if self.sasl_mechanism not in SASL_MECHANISMS:
            raise ConfigError(
                f"STREAM_SASL_MECHANISM={self.sasl_mechanism!r} is not one of {', '.join(SASL_MECHANISMS)}"
            )
        if self.security_protocol.startswith("SASL_") and not (self.sasl_username and self.sasl_password):
            raise ConfigError(
                f"STREAM_SECURITY_PROTOCOL={self.security_protocol} needs STREAM_SASL_USERNAME and STREAM_SASL_PASSWORD"
            )
        for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            path = getattr(self, name)
            if path is not None and not os.path.isfile(path):
                raise ConfigError(f"STREAM_{name.upper()}={path!r} is not a readable file")
        if self.ssl_keyfile and not self.ssl_certfile:
            raise ConfigError("STREAM_SSL_KEYFILE is set without STREAM_SSL_CERTFILE")

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes`` applied and validated."""
        new = dataclasses.replace(self, **changes)
        new.validate()
        return new

    @property
    def group_id(self) -> str:
        """The consumer group (and Faust app id) of a worker of this role: the posts workers' group is
        ``STREAM_APP_ID``, the aggregates workers have their own, so that each group assigns only the
        topics its members consume.

        >>> Settings().group_id, Settings(role="posts").group_id, Settings(role="aggregates").group_id
        ('interest-stream', 'interest-stream', 'interest-stream-aggregates')
        """
        return f"{self.app_id}-aggregates" if self.role == "aggregates" else self.app_id

    @property
    def runs_posts(self) -> bool:
        """Whether a worker of this role runs the posts' agents and can hold the learner role."""
        return self.role in ("all", "posts")

    @property
    def runs_aggregates(self) -> bool:
        """Whether a worker of this role runs the audience and profiles agents and their tables."""
        return self.role in ("all", "aggregates")

    @property
    def broker_url(self) -> str:
        """The broker as a Faust URL (``kafka://host:port;host:port``)."""
        if self.broker is None:
            raise ConfigError("STREAM_BROKER is not set (the worker needs a broker)")
        return "kafka://" + ";kafka://".join(_hosts(self.broker))

    @property
    def faust_log_level(self) -> str:
        """``STREAM_LOG_LEVEL`` as Faust's ``--loglevel`` spells it.

        >>> Settings(log_level="warning").faust_log_level, Settings(log_level="CRITICAL").faust_log_level
        ('WARN', 'CRIT')
        """
        return LOG_LEVELS[self.log_level.lower()]

    @property
    def bootstrap_servers(self) -> list[str]:
        """The broker as a list of ``host:port`` for kafka-python."""
        return [h.removeprefix("kafka://") for h in self.broker_url.split(";")]


def describe() -> list[tuple[str, str, str]]:
    """(variable, default, meaning) for every setting, for the README and ``--help``."""
    return [
        (PREFIX + f.name.upper(), "(unset)" if f.default is None else str(f.default), f.metadata["doc"])
        for f in dataclasses.fields(Settings)
    ]


def settings_env(settings: Settings) -> dict[str, str]:
    """This process's environment, with the ``STREAM_*`` variables that reproduce ``settings`` in a child
    process (and no others).

    >>> env = settings_env(Settings(web_port=7000))
    >>> env["STREAM_WEB_PORT"], Settings.from_env(env).web_port
    ('7000', 7000)
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(PREFIX)}
    for name, value in vars(settings).items():
        if value is not None:
            env[PREFIX + name.upper()] = str(value)
    return env
