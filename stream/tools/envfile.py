"""The repository's ``.env.example``: every ``STREAM_*`` setting with its meaning and default, rendered
from :func:`stream.settings.describe` so that the file cannot fall behind the settings.

Regenerate it with ``.venv/bin/python -m stream.tools.envfile > .env.example``.
"""

from __future__ import annotations

import dataclasses
import sys
import textwrap
from collections.abc import Mapping
from types import MappingProxyType
from typing import NamedTuple

from stream.settings import PREFIX, Settings, describe

WIDTH = 100
REQUIRED = ("STREAM_CHECKPOINT_KEY",)  # docker-compose.yml refuses to start without them
GRAFANA_PASSWORD = "GRAFANA_ADMIN_PASSWORD"


class ComposeValue(NamedTuple):
    """A value docker-compose.yml gives a setting in its containers instead of the app's default."""

    value: str
    reason: str
    fixed: bool  # True: set in docker-compose.yml whatever .env says


COMPOSE_VALUES: Mapping[str, ComposeValue] = MappingProxyType(
    {
        "STREAM_BROKER": ComposeValue(
            "kafka:9092", "the stack's own Kafka (docker-compose.cluster.yml: its three brokers)", False
        ),
        "STREAM_PARTITIONS": ComposeValue("8", "room to scale the worker service up to 8 replicas", False),
        "STREAM_WEB_HOST": ComposeValue("0.0.0.0", "Prometheus scrapes the workers from its own container", True),
        "STREAM_WEB_PORT": ComposeValue("6066", "the port Prometheus scrapes and the health check asks", True),
        "STREAM_TRIGGER_RULES": ComposeValue(
            "/etc/interest-stream/rules.toml",
            "ops/triggers/rules.toml, mounted read-only there: edit that file (with no rules it fires none)",
            True,
        ),
    }
)

# (title, members): a member ending in "_" is a prefix of the names after STREAM_, another is a whole name.
GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "Kafka: connection, security, consumer group",
        (
            "BROKER",
            "SECURITY_",
            "SASL_",
            "SSL_",
            "APP_ID",
            "ROLE",
            "PARTITIONS",
            "REPLICATION",
            "SESSION_TIMEOUT",
            "FETCH_WAIT_MS",
            "FETCH_MIN_BYTES",
            "FETCH_GATHER_MS",
            "DELIVERY_TIMEOUT",
            "STALL_TIMEOUT",
            "MAX_MESSAGE_BYTES",
        ),
    ),
    ("Topics", ("TOPIC_",)),
    (
        "Model and learning",
        (
            "MODEL",
            "DRIFT_ADAPT",
            "BURST_REPLAYS",
            "HASH_BITS",
            "MAX_CLASSES",
            "COLD_LABELS",
            "SENTIMENT_WARMUP",
            "CHECKPOINT_",
            "DELTA_INTERVAL",
        ),
    ),
    (
        "Live audience, spikes and campaign triggers",
        ("WINDOW_", "SPIKE_", "TRIGGER_", "AGGREGATE_INTERVAL", "MAX_SEGMENTS", "SEGMENT_MIN_POSTS", "TOP_SEGMENTS"),
    ),
    ("User profiles and privacy", ("PSEUDONYM_KEY", "PROFILE_")),
    (
        "Input checks, limits and the delayed-label join",
        (
            "MAX_TEXT_CHARS",
            "MAX_ID_CHARS",
            "MAX_NAME_CHARS",
            "MAX_HASHTAGS",
            "MAX_EVENT_AHEAD",
            "DEDUP_CAPACITY",
            "DLQ_ORIGINAL_BYTES",
            "FEEDBACK_",
        ),
    ),
    (
        "Worker process: web server, batching, metrics, logs",
        ("WEB_", "BATCH_", "METRICS_", "ROLLING_", "DATA_", "LOG_"),
    ),
)

HEADER = f"""\
# Configuration of docker-compose.yml. Copy this file to .env, edit it, start the stack:
#   cp .env.example .env && docker compose up --build
# Every variable of .env reaches the topics, worker and producer containers, and docker compose
# reads it for the values docker-compose.yml gives its own settings. A commented line leaves the
# setting at the default shown after its `=`. All settings and their checks: docs/configuration.md.
# Quote a value that holds `$` or `#` in single quotes.
# Generated from stream/settings.py: .venv/bin/python -m stream.tools.envfile > .env.example

# --- Required: docker compose refuses to start while these are empty ------------------------------

# Grafana's admin password (the dashboards are open to anonymous viewers; editing needs this).
{GRAFANA_PASSWORD}=
"""


def secret_names() -> frozenset[str]:
    """The variables of the settings that are secrets (never given a value in the file).

    >>> sorted(secret_names())[:2]
    ['STREAM_CHECKPOINT_KEY', 'STREAM_PSEUDONYM_KEY']
    """
    return frozenset(PREFIX + f.name.upper() for f in dataclasses.fields(Settings) if f.metadata.get("secret"))


def group_of(name: str) -> str:
    """The title of the group a variable is listed under (``Other`` for one no group names).

    >>> group_of("STREAM_TOPIC_DLQ"), group_of("STREAM_MODEL"), group_of("STREAM_NEW_KNOB")
    ('Topics', 'Model and learning', 'Other')
    """
    short = name.removeprefix(PREFIX)
    for title, members in GROUPS:
        if any(short.startswith(m) if m.endswith("_") else short == m for m in members):
            return title
    return "Other"


def comment(text: str) -> list[str]:
    """``text`` as ``#`` comment lines of at most :data:`WIDTH` characters.

    >>> comment("a b")
    ['# a b']
    """
    return textwrap.wrap(text, WIDTH - 2, initial_indent="# ", subsequent_indent="# ", break_on_hyphens=False)


def entry(name: str, default: str, meaning: str, secrets: frozenset[str]) -> list[str]:
    """The lines of one setting: its meaning, what docker-compose.yml gives it, and ``# NAME=default``
    (uncommented and empty when compose requires it; empty for a secret or a setting unset by default).

    >>> entry("STREAM_MODEL", "arow", "Interest model.", frozenset())
    ['# Interest model.', '# STREAM_MODEL=arow']
    >>> entry("STREAM_KEY", "s3cret", "A key.", frozenset({"STREAM_KEY"}))
    ['# A key. A secret: keep .env private.', '# STREAM_KEY=']
    """
    text = meaning
    if default == "(unset)" and "Unset" not in meaning:
        text += " Default: unset."
    if name in secrets and "secret" not in meaning:
        text += " A secret: keep .env private."
    if name in REQUIRED:
        text += " docker-compose.yml requires it: replace the empty value (e.g. `openssl rand -hex 32`)."
    lines = comment(text)
    compose = COMPOSE_VALUES.get(name)
    if compose is not None:
        how = "always" if compose.fixed else "by default"
        lines += comment(f"docker-compose.yml sets {compose.value} {how}: {compose.reason}.")
    value = "" if name in secrets or default == "(unset)" else default
    if value in ("True", "False"):
        value = value.lower()
    return [*lines, f"{name}={value}" if name in REQUIRED else f"# {name}={value}"]


def render_env_example() -> str:
    """The text of ``.env.example``: Grafana's password and the required settings first, then every other
    setting, commented, in groups (in the order of :func:`~stream.settings.describe` within a group).

    >>> text = render_env_example()
    >>> "\\nSTREAM_CHECKPOINT_KEY=\\n" in text, "\\n# STREAM_MODEL=arow\\n" in text
    (True, True)
    """
    settings = describe()
    secrets = secret_names()
    out = HEADER.splitlines()
    for name, default, meaning in settings:
        if name in REQUIRED:
            out += ["", *entry(name, default, meaning, secrets)]
    titles = [title for title, _ in GROUPS] + ["Other"]
    for title in titles:
        members = [s for s in settings if s[0] not in REQUIRED and group_of(s[0]) == title]
        if not members:
            continue
        out += ["", f"# --- {title} ".ljust(WIDTH, "-")]
        for name, default, meaning in members:
            out += ["", *entry(name, default, meaning, secrets)]
    return "\n".join(out) + "\n"


def main() -> None:
    """Write :func:`render_env_example` to standard output."""
    sys.stdout.write(render_env_example())


if __name__ == "__main__":
    main()
