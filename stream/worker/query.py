"""The query API: ``GET /profiles/{user_id}`` and ``GET /audience/{segment}``, answered by the worker
that owns the key, from its tables.

Both answers come from the Faust tables of the aggregating agents (see
:mod:`stream.worker.aggregates`): ``profiles`` (keyed by the user id as the outputs show it: the
pseudonym when ``STREAM_PSEUDONYM_KEY`` is set) and ``audience`` (keyed by segment). A row lives on
the changelog partition :func:`~stream.audience.records.route` gives its key (the partition of the
internal topic that carries the key), which the consumer group assigns, as an active partition, to
one worker. That is not the partition Kafka's default partitioner gives the serialized key, so
Faust's ``@app.table_route`` (which asks ``app.assignor.key_store``) would pick the wrong worker;
:func:`route_request` decides instead:

- this worker holds the key's changelog partition as active: it answers from its table;
- another worker does (the assignor's changelog distribution, each member known by its
  ``canonical_url``): the request is forwarded there once (marked with :data:`FORWARDED_HEADER`)
  and the owner's answer relayed;
- no owner known, a rebalance under way, or a forwarded request that reached a worker which no
  longer owns the key: ``503``, to retry.

Every answer from a table carries :data:`SERVED_BY_HEADER`: the canonical URL of the worker that
read its table. Standby copies of other workers' partitions are never answered from.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import faust
import orjson
from yarl import URL

from stream.audience.profiles import Profile, profile_record
from stream.audience.records import route
from stream.audience.segments import WINDOW_KINDS
from stream.audience.windows import SegmentState, WindowSpec, window_record
from stream.pipeline.cleaning import hashtag_key
from stream.settings import Settings

PROFILES_TABLE = "profiles"
AUDIENCE_TABLE = "audience"
FORWARDED_HEADER = "X-Interest-Stream-Forwarded-By"
"""Set on a forwarded request (the forwarder's URL): its receiver answers itself or says 503."""
SERVED_BY_HEADER = "X-Interest-Stream-Served-By"
"""Set on every answer read from a table: the canonical URL of the worker that read it."""
FORWARD_TIMEOUT_S = 5.0
WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", ""})
LATEST = "latest"  # the field of an audience row that keeps the latest published window per kind

Distribution = Mapping[str, Mapping[str, Sequence[int]]]
"""Worker URL → changelog topic → the partitions it holds as active (Faust's changelog distribution)."""


@dataclass(frozen=True, slots=True)
class Route:
    """What to do with a request: answer here (``local``), forward to ``forward_to``, or answer
    ``status`` with ``error``."""

    local: bool = False
    forward_to: str | None = None
    status: int = 200
    error: str | None = None


def same_node(a: str | URL, b: str | URL) -> bool:
    """Whether two web URLs name the same host and port (scheme and path aside).

    >>> same_node("http://127.0.0.1:6066", "http://127.0.0.1:6066/"), same_node("http://h:1", "http://h:2")
    (True, False)
    """
    ua, ub = URL(str(a)), URL(str(b))
    return (ua.host or "", ua.port or 80) == (ub.host or "", ub.port or 80)


def owner_of(distribution: Distribution, topic: str, partition: int) -> str | None:
    """The URL of the worker holding ``partition`` of ``topic`` as active, if any.

    >>> dist = {"http://a:1": {"t": [0, 2]}, "http://b:2": {"t": [1, 3]}}
    >>> owner_of(dist, "t", 3), owner_of(dist, "t", 4), owner_of(dist, "other", 0)
    ('http://b:2', None, None)
    """
    for url, topics in distribution.items():
        if partition in topics.get(topic, ()):
            return url
    return None


def route_request(
    topic: str,
    partition: int,
    actives: Collection[tuple[str, int]],
    distribution: Distribution,
    me: str,
    forwarded: bool,
    rebalancing: bool,
) -> Route:
    """Where a request for a key on ``partition`` of the changelog ``topic`` is answered.

    ``actives``: the (topic, partition) this worker holds as active; ``me``: its canonical URL;
    ``forwarded``: the request was forwarded to it already (it is never forwarded twice).

    >>> dist = {"http://a:1": {"t": [0]}, "http://b:2": {"t": [1]}}
    >>> route_request("t", 0, {("t", 0)}, dist, "http://a:1", forwarded=False, rebalancing=False).local
    True
    >>> route_request("t", 1, {("t", 0)}, dist, "http://a:1", forwarded=False, rebalancing=False).forward_to
    'http://b:2'
    >>> route_request("t", 1, {("t", 0)}, dist, "http://a:1", forwarded=True, rebalancing=False).status
    503
    """
    if rebalancing:
        return Route(status=503, error="rebalancing: the owner of this key is not known yet, retry")
    if (topic, partition) in actives:
        return Route(local=True)
    if forwarded:
        return Route(status=503, error="this worker does not own the key (the assignment changed), retry")
    owner = owner_of(distribution, topic, partition)
    if owner is None or same_node(owner, me):
        return Route(status=503, error="no worker owns the key yet, retry")
    return Route(forward_to=owner)


def profile_view(row: Mapping[str, Any] | None, user: str, top_k: int) -> dict[str, Any] | None:
    """A ``profiles`` row as the ``user.interests`` record the worker publishes for it (``None``: no
    profile).

    >>> row = {"scores": {"music": 3.0, "sports": 1.0}, "updated_ms": 5, "posts": 4, "offset": 9}
    >>> view = profile_view(row, "u1", 1)
    >>> view == profile_record("u1", Profile({"music": 3.0, "sports": 1.0}, 5, 4), 1), view["top"]
    (True, [{'interest': 'music', 'score': 3.0, 'share': 0.75}])
    >>> profile_view(None, "u1", 1) is None
    True
    """
    if not row:
        return None
    return profile_record(user, Profile.from_dict(row), top_k)


def bucket_view(segment: str, start: int, width: int, state: SegmentState) -> dict[str, Any]:
    """The figures of one open bucket (posts not yet in a closed window of every kind)."""
    record = window_record(segment, "bucket", start, start + width, state.buckets[start])
    return {k: v for k, v in record.items() if k not in ("type", "kind", "id", "segment")}


def audience_view(row: Mapping[str, Any] | None, segment: str) -> dict[str, Any] | None:
    """An ``audience`` row as the API shows it (``None``: no such segment): the latest published
    window of each kind (as on ``audience.sentiment``; ``None`` until one closed), the open buckets,
    the spike baselines, the event-time watermark and the late posts.

    >>> from stream.audience.windows import Tally
    >>> state = SegmentState("all"); state.add({0: Tally(2, 1.0, 1, 1, 0, {"music": 2})}, WindowSpec())
    0
    >>> view = audience_view({"state": state.to_dict(), "watermark": 5_000}, "all")
    >>> view["latest"], view["watermark"], view["open"][0]["volume"], view["open"][0]["end"]
    ({'tumbling': None, 'hopping': None}, 5000, 2, 60000)
    """
    if not row:
        return None
    state = SegmentState.from_dict(row.get("state"), segment)
    width = WindowSpec(*state.spec).bucket_ms if state.spec else 0
    latest = row.get(LATEST) or {}
    return {
        "segment": segment,
        "watermark": row.get("watermark"),
        "latest": {kind: latest.get(kind) for kind in WINDOW_KINDS},
        "open": [bucket_view(segment, b, width, state) for b in sorted(state.buckets)],
        "baseline": {kind: h.to_dict() for kind, h in state.history.items()},
        "late_posts": state.late,
    }


def segment_key(raw: str) -> str:
    """The table key of a segment as a URL names it: ``all``, ``interest:<name>``,
    ``campaign:<name>``, ``hashtag:<tag>`` (a tag with or without ``#``, any case, as the posts'
    hashtags are normalised).

    >>> segment_key("hashtag:#NFL"), segment_key("campaign:Acme"), segment_key("all")
    ('hashtag:nfl', 'campaign:Acme', 'all')
    """
    kind, sep, name = raw.partition(":")
    if sep and kind == "hashtag":
        return "hashtag:" + hashtag_key(name)
    return raw


def advertised_url(web_host: str, web_port: int, address: str) -> str:
    """The URL other workers reach this one's web server at: ``web_host``, or ``address`` (see
    :func:`own_address`) when the server listens on every interface.

    >>> advertised_url("127.0.0.1", 6066, "10.1.2.3"), advertised_url("0.0.0.0", 6066, "10.1.2.3")
    ('http://127.0.0.1:6066', 'http://10.1.2.3:6066')
    """
    host = address if web_host in WILDCARD_HOSTS else web_host
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    return f"http://{host}:{web_port}"


def own_address() -> str:
    """The address this machine's host name resolves to (a container's or a pod's IP address, which
    the other containers or pods of its network reach), else the host name itself."""
    name = socket.gethostname()
    try:
        return socket.gethostbyname(name)
    except OSError:
        return name


class LatestWindows(MutableMapping[str, Any]):
    """The audience table as the aggregator uses it, whose rows also keep the latest published window
    of each kind (field :data:`LATEST`): the aggregator saves rows without it, this keeps it across
    those saves, and :meth:`record` updates it. It goes to the changelog with the row.

    >>> rows = LatestWindows({})
    >>> rows["all"] = {"state": {}}
    >>> rows.record([{"segment": "all", "kind": "tumbling", "end": 60_000}])
    >>> rows["all"] = {"state": {"v": 1}}   # the aggregator's next save
    >>> rows["all"][LATEST]
    {'tumbling': {'segment': 'all', 'kind': 'tumbling', 'end': 60000}}
    """

    def __init__(self, table: MutableMapping[str, Any]):
        self.table = table

    def __getitem__(self, key: str) -> Any:
        return self.table[key]

    def __setitem__(self, key: str, value: Any) -> None:
        if LATEST not in value:
            old = self.table.get(key)
            if old and old.get(LATEST):
                value = {**value, LATEST: old[LATEST]}
        self.table[key] = value

    def __delitem__(self, key: str) -> None:
        del self.table[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.table)

    def __len__(self) -> int:
        return len(self.table)

    def record(self, windows: Iterable[Mapping[str, Any]]) -> None:
        """Remember published windows (records of ``audience.sentiment``) as their segments' latest."""
        for w in windows:
            row = self.table.get(w["segment"])
            if not row:
                continue
            latest = dict(row.get(LATEST) or {})
            previous = latest.get(w["kind"])
            if previous is None or w["end"] >= previous["end"]:
                latest[w["kind"]] = dict(w)
                self.table[w["segment"]] = {**row, LATEST: latest}


def json_response(web: faust.web.View, body: Any, status: int, headers: Mapping[str, str] | None = None) -> Any:
    return web.bytes(orjson.dumps(body), content_type="application/json", status=status, headers=dict(headers or {}))


async def forward(app: faust.App, web: faust.web.View, request: faust.web.Request, owner: str) -> Any:
    """The owner's answer to the same request (503 if it cannot be reached)."""
    me = str(app.conf.canonical_url)
    url = owner.rstrip("/") + request.rel_url.raw_path_qs
    client: Any = app.http_client
    try:
        async with client.get(
            url, headers={FORWARDED_HEADER: me}, timeout=aiohttp.ClientTimeout(total=FORWARD_TIMEOUT_S)
        ) as response:
            body = await response.read()
            served = response.headers.get(SERVED_BY_HEADER)
            headers = {SERVED_BY_HEADER: served} if served else {}
            return web.bytes(body, content_type=response.content_type, status=response.status, headers=headers)
    except (aiohttp.ClientError, TimeoutError) as exc:
        error = f"the owner of the key ({owner}) did not answer: {exc!r}"[:300]
        return json_response(web, {"error": error}, 503, {"Retry-After": "1"})


async def answer(
    app: faust.App,
    web: faust.web.View,
    request: faust.web.Request,
    table: Any,
    key: str,
    partitions: int,
    view: Callable[[Any], dict[str, Any] | None],
    unknown: str,
) -> Any:
    """The answer to a request for ``key`` of ``table`` (a Faust table, ``partitions`` partitions):
    read here if this worker owns the key (``view(row)``, ``None``: 404 ``{"error": unknown}``),
    else forwarded to the owner (see :func:`route_request`)."""
    me = str(app.conf.canonical_url)
    decision = route_request(
        table.changelog_topic.get_topic_name(),
        route(key, partitions),
        {(tp.topic, tp.partition) for tp in app.assignor.assigned_actives()},
        app.assignor.tables_metadata(),
        me,
        forwarded=FORWARDED_HEADER in request.headers,
        rebalancing=bool(app.rebalancing),
    )
    if decision.forward_to is not None:
        return await forward(app, web, request, decision.forward_to)
    if not decision.local:
        return json_response(web, {"error": decision.error}, decision.status, {"Retry-After": "1"})
    body = view(table.data.get(key))
    served = {SERVED_BY_HEADER: me}
    if body is None:
        return json_response(web, {"error": unknown}, 404, served)
    return json_response(web, body, 200, served)


def register_query_pages(app: faust.App, settings: Settings) -> None:
    """``/profiles/{user_id}`` and ``/audience/{segment}``, routed to the owner of the key; and the
    app's ``canonical_url`` (how the other workers reach this one) set to ``STREAM_WEB_URL`` or
    :func:`advertised_url`.
    Call after the aggregating agents have declared their tables."""
    url = settings.web_url or advertised_url(settings.web_host, settings.web_port, own_address())
    app.conf.canonical_url = url  # type: ignore[assignment]  # faust takes a str
    profiles, audience = app.tables[PROFILES_TABLE], app.tables[AUDIENCE_TABLE]
    top_k, partitions = settings.profile_top_k, settings.partitions

    @app.page("/profiles/{user_id}")
    async def profile(web: faust.web.View, request: faust.web.Request, user_id: str) -> Any:
        """The user's interest profile, as published on the profiles topic."""
        user = user_id  # Faust passes the path's parameters as keyword arguments
        return await answer(
            app, web, request, profiles, user, partitions, lambda row: profile_view(row, user, top_k), "unknown user"
        )

    @app.page("/audience/{segment}")
    async def audience_segment(web: faust.web.View, request: faust.web.Request, segment: str) -> Any:
        """The segment's latest windows and current figures."""
        key = segment_key(segment)
        return await answer(
            app, web, request, audience, key, partitions, lambda row: audience_view(row, key), "unknown segment"
        )
