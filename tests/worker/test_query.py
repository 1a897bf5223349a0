"""The query API's lookups and routing without Kafka: what a table row answers, who answers it,
and the HTTP answers (404, JSON, forwarding) with stand-ins for the Faust app and web server."""

import asyncio
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import faust
import orjson
import pytest
from aiohttp.test_utils import make_mocked_request
from faust.types import TP as FaustTP
from yarl import URL

from stream.audience.aggregator import Aggregator
from stream.audience.profiles import ProfileBook
from stream.audience.records import route
from stream.audience.spikes import SpikeParams
from stream.audience.windows import Tally, WindowSpec
from stream.settings import Settings
from stream.worker.query import (
    FORWARDED_HEADER,
    LATEST,
    SERVED_BY_HEADER,
    LatestWindows,
    advertised_url,
    answer,
    audience_view,
    own_address,
    profile_view,
    register_query_pages,
    route_request,
    segment_key,
)

MINUTE = 60_000
PARTITIONS = 4
ME, OTHER = "http://127.0.0.1:7001", "http://127.0.0.1:7002"
TOPIC = "app-profiles-changelog"


# -- what a row answers ------------------------------------------------------------------------


def test_a_profile_is_answered_as_published():
    table: dict[str, Any] = {}
    book = ProfileBook(table, half_life_s=3600, top_k=2, is_erased=lambda user: False)
    published = book.apply_batch({"u1": {"posts": [[0, {"music": 0.7, "sports": 0.3}]]}}, offset=1)
    published += book.apply_batch({"u1": {"posts": [[MINUTE, {"travel": 1.0}]]}}, offset=2)
    value = published[-1][1]
    assert value is not None
    last = orjson.loads(value)
    assert profile_view(table["u1"], "u1", top_k=2) == last
    assert profile_view(table.get("u2"), "u2", top_k=2) is None
    book.apply("u1", {"erase": True}, offset=3)
    assert profile_view(table.get("u1"), "u1", top_k=2) is None


def aggregator(table) -> Aggregator:
    return Aggregator(table, WindowSpec(lateness_s=0), SpikeParams(), rules=())


def shown(rows: LatestWindows, segment: str) -> dict[str, Any]:
    view = audience_view(rows.get(segment), segment)
    assert view is not None
    return view


def test_an_audience_segment_answers_its_latest_published_windows_and_open_buckets():
    rows = LatestWindows({})
    agg = aggregator(rows)
    first = agg.on_partials(0, 0, {"all": {0: Tally(2, 1.0, 2, 0, 0, {"music": 2})}}, max_ts=1000)
    rows.record(first.windows)
    assert first.windows == []
    view = shown(rows, "all")
    assert view["latest"] == {"tumbling": None, "hopping": None}
    assert [(b["start"], b["end"], b["volume"], b["positive_share"]) for b in view["open"]] == [(0, MINUTE, 2, 1.0)]

    second = agg.on_partials(0, 1, {"all": {MINUTE: Tally(1, -1.0, 0, 0, 1)}}, max_ts=MINUTE + 1000)
    rows.record(second.windows)
    closed = {w["kind"]: w for w in second.windows}
    assert set(closed) == {"tumbling", "hopping"}
    view = shown(rows, "all")
    assert view["latest"] == closed  # the records published on audience.sentiment
    assert view["watermark"] == MINUTE + 1000 and view["segment"] == "all"
    assert view["baseline"]["tumbling"]["volume"] == [2]

    # a partial that closes nothing: the aggregator saves the row again, the latest windows stay
    third = agg.on_partials(0, 2, {"all": {MINUTE: Tally(1, 0.0, 0, 1, 0)}}, max_ts=MINUTE + 2000)
    rows.record(third.windows)
    assert third.windows == [] and shown(rows, "all")["latest"] == closed
    assert audience_view(rows.get("interest:none"), "interest:none") is None


def test_latest_windows_keep_the_newest_window_of_each_kind():
    rows = LatestWindows({"all": {"state": {}}})
    rows.record([{"segment": "all", "kind": "tumbling", "end": 2}, {"segment": "all", "kind": "tumbling", "end": 1}])
    rows.record([{"segment": "gone", "kind": "tumbling", "end": 3}])  # no row (expired): nothing kept
    assert rows["all"][LATEST] == {"tumbling": {"segment": "all", "kind": "tumbling", "end": 2}}
    assert "gone" not in rows
    del rows["all"]
    assert len(rows) == 0


def test_a_hashtag_segment_is_found_with_or_without_its_hash():
    assert segment_key("hashtag:#CoachELLA") == segment_key("hashtag:coachella") == "hashtag:coachella"
    assert segment_key("interest:travel") == "interest:travel"


def test_a_worker_listening_everywhere_advertises_its_address():
    assert advertised_url("0.0.0.0", 6066, "10.0.0.7") == "http://10.0.0.7:6066"
    assert advertised_url("::", 6066, "worker-1") == "http://worker-1:6066"
    assert advertised_url("10.0.0.5", 7000, "10.0.0.7") == "http://10.0.0.5:7000"
    assert advertised_url("::1", 7000, "10.0.0.7") == "http://[::1]:7000"
    assert own_address()  # an address or, failing that, the host name


# -- who answers -------------------------------------------------------------------------------

DIST = {ME: {TOPIC: [0, 2]}, OTHER: {TOPIC: [1, 3]}}


@pytest.mark.parametrize(
    ("partition", "forwarded", "rebalancing", "expected"),
    [
        (0, False, False, ("local", None, 200)),
        (2, True, False, ("local", None, 200)),  # forwarded to its owner: answered
        (1, False, False, ("forward", OTHER, 200)),
        (1, True, False, ("error", None, 503)),  # forwarded to a worker that does not own it: never again
        (0, False, True, ("error", None, 503)),  # rebalancing: the table may be restoring
    ],
)
def test_route_request(partition, forwarded, rebalancing, expected):
    r = route_request(TOPIC, partition, {(TOPIC, 0), (TOPIC, 2)}, DIST, ME, forwarded, rebalancing)
    kind = "local" if r.local else "forward" if r.forward_to else "error"
    assert (kind, r.forward_to, r.status) == expected
    assert (r.error is None) == (kind != "error")


def test_no_owner_known_or_the_owner_is_this_worker_without_the_partition_is_503():
    assert route_request(TOPIC, 1, set(), {}, ME, False, False).status == 503
    stale = {"http://127.0.0.1:7001/": {TOPIC: [1]}}  # the group's view says "me", the assignment not yet
    assert route_request(TOPIC, 1, set(), stale, ME, False, False).status == 503


# -- the HTTP answers, with stand-ins for Faust's app, table and web server --------------------


@dataclass
class Response:
    body: bytes
    status: int
    content_type: str | None
    headers: dict[str, str]

    def json(self) -> Any:
        return orjson.loads(self.body)


class Web:
    def bytes(self, value, *, content_type=None, status=200, reason=None, headers=None):
        return Response(value, status, content_type, dict(headers or {}))


@dataclass
class Request:
    path: str
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def rel_url(self) -> URL:
        return URL(self.path)


@dataclass(frozen=True)
class TP:
    topic: str
    partition: int


class Assignor:
    def __init__(self, actives):
        self.actives = actives

    def assigned_actives(self):
        return {TP(TOPIC, p) for p in self.actives}

    def tables_metadata(self):
        return DIST


class OwnerResponse:
    def __init__(self, response: Response):
        self.response = response
        self.status, self.content_type = response.status, response.content_type
        self.headers = response.headers

    async def read(self) -> bytes:
        return self.response.body

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        return None


class Client:
    """Answers forwarded requests with the other worker's app (no network)."""

    def __init__(self, owner_app=None, table=None):
        self.owner_app, self.table, self.calls = owner_app, table, []

    def get(self, url, headers, timeout):
        self.calls.append((url, headers))
        return OwnerAnswer(self.owner_app, self.table, Request(URL(url).raw_path_qs, dict(headers)))


class OwnerAnswer:
    def __init__(self, app, table, request):
        self.app, self.table, self.request = app, table, request

    async def __aenter__(self):
        key = self.request.rel_url.path.rsplit("/", 1)[1]
        response = await lookup(self.app, self.request, self.table, key)
        return OwnerResponse(response)

    async def __aexit__(self, *exc):
        return None


@dataclass
class Conf:
    canonical_url: URL


class App:
    def __init__(self, me: str, actives, client=None, rebalancing=False):
        self.conf = Conf(URL(me))
        self.assignor = Assignor(actives)
        self.http_client = client
        self.rebalancing = rebalancing


class Table:
    def __init__(self, data):
        self.data = data
        self.changelog_topic = self

    def get_topic_name(self) -> str:
        return TOPIC


def owned_key(partition: int) -> str:
    return next(k for k in (f"u{i}" for i in range(1000)) if route(k, PARTITIONS) == partition)


async def lookup(app, request, table, key):
    web: Any = Web()
    return await answer(
        app, web, request, table, key, PARTITIONS, lambda row: profile_view(row, key, 3), "unknown user"
    )


ROW = {"scores": {"music": 1.0}, "updated_ms": 0, "posts": 1, "offset": 0}


def test_the_owner_answers_json_or_404():
    mine = owned_key(0)
    app, table = App(ME, {0, 2}), Table({mine: ROW})
    ok = asyncio.run(lookup(app, Request(f"/profiles/{mine}"), table, mine))
    assert ok.status == 200 and ok.content_type == "application/json"
    assert ok.json() == profile_view(ROW, mine, 3) and ok.headers[SERVED_BY_HEADER] == ME
    missing = owned_key(2)
    unknown = asyncio.run(lookup(app, Request(f"/profiles/{missing}"), table, missing))
    assert (unknown.status, unknown.json(), unknown.headers[SERVED_BY_HEADER]) == (404, {"error": "unknown user"}, ME)


def test_another_workers_key_is_forwarded_once_and_its_answer_relayed():
    theirs = owned_key(1)
    owner_table = Table({theirs: ROW})
    owner = App(OTHER, {1, 3})
    client = Client(owner, owner_table)
    app = App(ME, {0, 2}, client)
    # a standby copy of the other worker's row is never answered from
    response = asyncio.run(
        lookup(app, Request(f"/profiles/{theirs}?x=1"), Table({theirs: {**ROW, "posts": 9}}), theirs)
    )
    assert response.status == 200 and response.json() == profile_view(ROW, theirs, 3)
    assert response.headers[SERVED_BY_HEADER] == OTHER
    [(url, headers)] = client.calls
    assert url == f"{OTHER}/profiles/{theirs}?x=1" and headers == {FORWARDED_HEADER: ME}


def test_a_forwarded_request_for_a_key_this_worker_does_not_own_is_503():
    theirs = owned_key(1)
    client = Client()
    app = App(ME, {0, 2}, client)
    response = asyncio.run(
        lookup(app, Request(f"/profiles/{theirs}", {FORWARDED_HEADER: OTHER}), Table({theirs: ROW}), theirs)
    )
    assert response.status == 503 and "does not own" in response.json()["error"]
    assert response.headers["Retry-After"] == "1" and not client.calls


def test_an_owner_that_does_not_answer_is_503():
    class Down:
        def get(self, url, headers, timeout):
            raise aiohttp.ClientConnectionError("refused")

    theirs = owned_key(3)
    response = asyncio.run(lookup(App(ME, {0, 2}, Down()), Request(f"/profiles/{theirs}"), Table({}), theirs))
    assert response.status == 503 and OTHER in response.json()["error"] and response.headers["Retry-After"] == "1"


# -- the pages as Faust serves them: a real app and tables, no broker ---------------------------


def test_the_pages_answer_through_faust_with_the_key_from_the_path():
    app = faust.App("query-test", broker="kafka://127.0.0.1:1", store="memory://", web_port=7001)
    profiles = app.Table("profiles", default=None, partitions=PARTITIONS)
    audience = app.Table("audience", default=None, partitions=PARTITIONS)
    register_query_pages(app, Settings(web_port=7001, partitions=PARTITIONS))
    assert str(app.conf.canonical_url) == "http://127.0.0.1:7001"
    user, segment = owned_key(1), "hashtag:nfl"
    actives = {
        FaustTP(profiles.changelog_topic.get_topic_name(), 1),
        FaustTP(audience.changelog_topic.get_topic_name(), route(segment, PARTITIONS)),
    }
    app.assignor.assigned_actives = lambda: actives  # type: ignore[method-assign]
    profiles.data[user] = ROW
    views = {path.split("/")[1]: view for path, view in app.web.views.items()}

    async def get(kind: str, path: str, **match_info: str):
        return await views[kind].dispatch(make_mocked_request("GET", path, match_info=match_info))

    async def run():
        found = await get("profiles", f"/profiles/{user}", user_id=user)
        other = await get("profiles", f"/profiles/{owned_key(0)}", user_id=owned_key(0))
        tag = await get("audience", "/audience/hashtag%3A%23NFL", segment="hashtag:#NFL")
        return found, other, tag

    found, other, tag = asyncio.run(run())
    assert (found.status, orjson.loads(found.body)) == (200, profile_view(ROW, user, 3))
    assert found.content_type == "application/json"
    assert other.status == 503  # partition 0: no owner in this group yet
    assert (tag.status, orjson.loads(tag.body)) == (404, {"error": "unknown segment"})  # hashtag:nfl, owned here
