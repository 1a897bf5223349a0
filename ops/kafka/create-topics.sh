#!/usr/bin/env bash
# One-shot topic creation for docker-compose.yml (runs in the apache/kafka image).
# Names, partitions and replication come from the same STREAM_* variables as the workers.
set -euo pipefail
bin=/opt/kafka/bin/kafka-topics.sh
bootstrap=${STREAM_BROKER:?STREAM_BROKER is not set}
partitions=${STREAM_PARTITIONS:-4}
replication=${STREAM_REPLICATION:-1}

create() {  # name partitions [--config k=v ...]
  local name=$1 parts=$2
  shift 2
  "$bin" --bootstrap-server "$bootstrap" --create --if-not-exists --topic "$name" \
    --partitions "$parts" --replication-factor "$replication" "$@"
}

week=604800000
# the largest record a worker writes (its producer's max.request.size)
size="max.message.bytes=${STREAM_MAX_MESSAGE_BYTES:-1000000}"
create "${STREAM_TOPIC_POSTS:-social.posts}" "$partitions" --config retention.ms=$week
# Delayed labels: keyed by post id, as many partitions as the posts (a label reaches its post's worker).
create "${STREAM_TOPIC_FEEDBACK:-social.feedback}" "$partitions" --config retention.ms=$week
create "${STREAM_TOPIC_PREDICTIONS:-interest.predictions}" "$partitions" --config retention.ms=$week --config "$size"
create "${STREAM_TOPIC_METRICS:-interest.metrics}" 1 --config retention.ms=$week --config "$size"
create "${STREAM_TOPIC_DLQ:-social.posts.dlq}" "$partitions" --config retention.ms=$((4 * week)) --config "$size"
# The training log: one partition (one order for the learner); kept long after the newest snapshot,
# which a learner that takes over replays it from.
create "${STREAM_TOPIC_TRAINING:-interest.training}" 1 --config retention.ms=$((4 * week)) --config "$size"
# The learner's snapshots and deltas: one partition, records of at most 1 MB, NOT compacted (deltas
# share keys); time and size retention, in segments small enough that the newest snapshot (every
# STREAM_CHECKPOINT_INTERVAL) always stays.
create "${STREAM_TOPIC_MODEL:-interest.model}" 1 --config retention.ms=$week \
  --config retention.bytes=2147483648 --config segment.bytes=67108864 --config "$size"
# The learner role: empty, one partition; the worker assigned it learns.
create "${STREAM_TOPIC_LEARNER:-interest.learner}" 1 --config retention.ms=$week --config "$size"
# Delayed labels that came on another partition than their post's, sent on keyed by post id.
create "${STREAM_TOPIC_FEEDBACK_KEYED:-interest.feedback.by-post}" "$partitions" --config retention.ms=$week
# What users act on: audience windows and spikes, campaign triggers (keyed by trigger id).
create "${STREAM_TOPIC_AUDIENCE:-audience.sentiment}" "$partitions" --config retention.ms=$((4 * week)) --config "$size"
create "${STREAM_TOPIC_TRIGGERS:-campaign.triggers}" "$partitions" --config retention.ms=$((4 * week)) --config "$size"
# Profiles keyed by user: compacted, so the newest profile of each user stays and an erasure's
# tombstone removes the user (delete.retention.ms: how long the tombstone itself is kept).
create "${STREAM_TOPIC_PROFILES:-user.interests}" "$partitions" --config cleanup.policy=compact \
  --config delete.retention.ms=86400000 --config min.compaction.lag.ms=0 --config "$size"
create "${STREAM_TOPIC_ERASURE:-privacy.erasure}" "$partitions" --config retention.ms=$((4 * week))
# Internal: partial aggregates and profile updates, routed by the workers to the partition that owns
# each segment / user; must have STREAM_PARTITIONS partitions.
create "${STREAM_TOPIC_PARTIALS:-audience.partials}" "$partitions" --config retention.ms=$week --config "$size"
create "${STREAM_TOPIC_PROFILE_UPDATES:-user.updates}" "$partitions" --config retention.ms=$week --config "$size"
"$bin" --bootstrap-server "$bootstrap" --list
