"""The worker's web pages besides ``/metrics``: ``/ready``, ``/healthz``, ``/live`` and ``/api/live``."""

from __future__ import annotations

from typing import Any

import faust
import orjson

from stream.worker.learnerproc import LearnerProcess
from stream.worker.live import LiveHistory, page_html
from stream.worker.modelsync import Follower
from stream.worker.publisher import Publisher


def assignment_state(app: faust.App) -> dict[str, Any]:
    """Whether the worker consumes: partitions assigned and no rebalance under way."""
    try:
        assigned = sorted(f"{tp.topic}:{tp.partition}" for tp in app.consumer.assignment())
    except Exception:  # the consumer is not started yet
        assigned = []
    return {
        "ready": bool(assigned) and not app.rebalancing,
        "rebalancing": app.rebalancing,
        "leader": app.is_leader(),
        "assigned": assigned,
    }


def ready_state(
    app: faust.App, replica: Follower, publisher: Publisher, learner: LearnerProcess | None = None
) -> dict[str, Any]:
    """What ``/ready`` answers: ready once the worker consumes its partitions (no rebalance under way),
    its model has caught up, it delivers and commits, and its broker still holds what it read."""
    stalled = publisher.stalled_for()
    state = {
        **assignment_state(app),
        "model_ready": replica.ready.is_set(),
        # this worker holds the cluster's learner role and has caught up with the training log
        "learner": learner is not None and learner.active and learner.caught_up.is_set(),
        "undelivered": publisher.undelivered,
        "stalled_for_s": None if stalled is None else round(stalled, 1),
        "lost": replica.lost or (learner.lost if learner is not None else None),
    }
    state["ready"] = state["ready"] and state["model_ready"] and stalled is None and state["lost"] is None
    return state


def register_pages(
    app: faust.App, replica: Follower, history: LiveHistory, publisher: Publisher, learner: LearnerProcess
) -> None:
    """``/ready`` (200 once the worker consumes and its model has caught up, else 503), the live page
    and its data."""

    @app.page("/live")
    async def live(web: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        return web.html(page_html())

    @app.page("/api/live")
    async def live_data(web: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        return web.bytes(orjson.dumps(history.view()), content_type="application/json")

    @app.page("/ready")
    async def ready(web: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        """200 once this worker consumes its partitions (not rebalancing) and delivers what it
        produces, else 503."""
        state = ready_state(app, replica, publisher, learner)
        return web.json(state, status=200 if state["ready"] else 503)

    @app.page("/healthz")
    async def healthz(web: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        """Liveness: 200 ``{"alive": true}`` whenever the event loop answers, during start-up and
        rebalances too (when ``/ready`` answers 503). A worker that cannot recover does not stay up to
        say so: past ``STREAM_DELIVERY_TIMEOUT`` without a delivery, or with its broker's data gone, it
        exits with code 75 for its supervisor to restart it; a wedged event loop does not answer at all.
        So this page has no failing answer: a probe that gets no answer in time is the failure."""
        return web.json({"alive": True})
