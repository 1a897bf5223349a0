"""The query API on two real workers: each answers for every key, the owner's state, routed.

Two worker processes share the partitions of one group on the embedded broker. For users and
segments of real demo posts, both workers must give the same 200 answer (one of them forwards to the
owner), equal to what the owner last published on the profiles and audience topics for that key; an
unknown key is 404 from both; and a request that is not routed (marked as forwarded already) gets no
answer from the worker that does not own the key.
"""

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import orjson
import pytest

from stream.pipeline.privacy import pseudonym
from stream.tools.broker import free_port
from stream.tools.data import tweets_stream
from stream.tools.demo import TopicReader, WorkerProcess
from stream.tools.produce import produce
from stream.worker.query import FORWARDED_HEADER, SERVED_BY_HEADER
from tests.integration.conftest import unique_settings

pytestmark = pytest.mark.integration
N_POSTS = 1500
N_WARM = 300  # labelled posts the model learns before the rest come: their predictions have scores
KEY = "query-secret"
NAMED = ("alice", "bob", "carol", "dave")  # users with many posts each
TAG = "QueryApi"  # a hashtag on every tenth post: its windows have enough posts to be published


def http_get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
    """``(status, headers, JSON body)`` of a GET to a worker's web server."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read() or b"null")


def posts() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Demo tweets (labelled: the model learns from them): the first to warm the model up, then the
    rest, some by the named users, some tagged."""
    events = tweets_stream()[:N_POSTS]
    warm, events = events[:N_WARM], events[N_WARM:]
    for i, event in enumerate(events):
        if i % 7 == 0:
            event["user_id"] = NAMED[(i // 7) % len(NAMED)]
        if i % 10 == 0:
            event["hashtags"] = [TAG]
    return warm, events


def model_version(port: int) -> float:
    """The version (labels learned) of a worker's model replica."""
    status, _, live = http_get(port, "/api/live")
    return live["latest"]["model"]["version"] if status == 200 and live.get("latest") else 0


def wait_until(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        ok, last = check()
        if ok:
            return last
        time.sleep(1.0)
    raise AssertionError(f"timed out waiting for {what}; last: {last}")


def group_stable(ports: list[int], partials_topic: str, partitions: int) -> tuple[bool, Any]:
    """Both workers ready, each with some of the internal topic's partitions, together all of them."""
    owned = []
    for port in ports:
        status, _, state = http_get(port, "/ready")
        if status != 200:
            return False, state
        owned.append({a for a in state["assigned"] if a.rpartition(":")[0] == partials_topic})
    union = set().union(*owned)
    return all(owned) and len(union) == sum(map(len, owned)) == partitions, owned


class Published:
    """The latest record per key of the profiles topic, and per segment and window kind of the
    audience topic, read on as the workers publish."""

    def __init__(self, settings):
        self.profiles_reader = TopicReader(settings, settings.topic_profiles)
        self.audience_reader = TopicReader(settings, settings.topic_audience)
        self.profiles: dict[str, Any] = {}
        self.windows: dict[tuple[str, str], dict[str, Any]] = {}

    def poll(self) -> None:
        for batch in self.profiles_reader.consumer.poll(timeout_ms=200, max_records=10_000).values():
            for m in batch:
                self.profiles[m.key.decode()] = None if m.value is None else orjson.loads(m.value)
        for batch in self.audience_reader.consumer.poll(timeout_ms=200, max_records=10_000).values():
            for m in batch:
                record = orjson.loads(m.value)
                if record["type"] != "window":
                    continue
                key = (record["segment"], record["kind"])
                if key not in self.windows or record["end"] >= self.windows[key]["end"]:
                    self.windows[key] = record

    def close(self) -> None:
        self.profiles_reader.close()
        self.audience_reader.close()


@pytest.fixture(scope="module")
def cluster(broker, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("query")
    # a lateness of 10 min: posts sent at once reach the windows out of order across partitions
    settings = unique_settings(broker, tmp / "data", prefix="qa", pseudonym_key=KEY, window_lateness=600)
    a = WorkerProcess(settings, tmp / "a.log").start()
    b = WorkerProcess(settings.replace(web_port=free_port()), tmp / "b.log").start()
    try:
        a.wait_ready()
        b.wait_ready()
        ports = [a.settings.web_port, b.settings.web_port]
        wait_until(lambda: group_stable(ports, settings.topic_partials, settings.partitions), 90, "a stable group")
        published = Published(settings)  # the workers have created the topics
        try:
            warm, events = posts()
            produce(settings, warm, progress=False)
            wait_until(
                lambda: (all(model_version(p) >= N_WARM // 2 for p in ports), [model_version(p) for p in ports]),
                90,
                "both workers' models to learn from the first posts",
            )
            produce(settings, events, progress=False)
            yield {"settings": settings, "ports": ports, "published": published}
        finally:
            published.close()
    finally:
        a.stop(), b.stop()


def both(ports: list[int], path: str, headers: dict[str, str] | None = None) -> list[tuple[int, dict[str, str], Any]]:
    return [http_get(port, path, headers) for port in ports]


def same_answer(ports: list[int], path: str, expected: Any) -> tuple[bool, Any]:
    """Both workers answer 200 with ``expected``, read by the same worker (the other forwarded)."""
    answers = both(ports, path)
    ok = all(s == 200 and body == expected for s, _, body in answers)
    served = {h.get(SERVED_BY_HEADER) for _, h, _ in answers}
    return ok and len(served) == 1, (path, expected, answers)


def profile_path(user: str) -> str:
    return "/profiles/" + urllib.parse.quote(user, safe="")


def audience_expected(published: Published, segment: str) -> dict[str, Any]:
    """What the answer's ``latest`` must be: the last window of each kind published for the segment."""
    return {kind: published.windows.get((segment, kind)) for kind in ("tumbling", "hopping")}


def test_both_workers_answer_for_every_key_as_published(cluster):
    ports, published = cluster["ports"], cluster["published"]
    users = [pseudonym(u, KEY) for u in NAMED]

    def profiles_settled() -> tuple[bool, Any]:
        published.poll()
        if not all(published.profiles.get(u) for u in users):
            return False, "named users' profiles not published yet"
        others = sorted(u for u, p in published.profiles.items() if p and u not in users)[:6]
        for user in [*users, *others]:
            ok, detail = same_answer(ports, profile_path(user), published.profiles[user])
            if not ok:
                return False, detail
        return True, [*users, *others]

    checked_users = wait_until(profiles_settled, 180, "both workers to answer every profile as published")
    assert len(checked_users) == len(users) + 6

    def segments_settled() -> tuple[bool, Any]:
        published.poll()
        tagged = [k for k in published.windows if k[0] == "hashtag:" + TAG.lower()]
        campaigns = sorted({s for s, _ in published.windows if s.startswith("campaign:")})
        interests = sorted({s for s, _ in published.windows if s.startswith("interest:")})
        if not (tagged and campaigns and interests):
            return False, "no window of each segment kind published yet"
        paths = {
            "all": "/audience/all",
            "hashtag:" + TAG.lower(): "/audience/" + urllib.parse.quote(f"hashtag:#{TAG}", safe=""),  # %3A%23
            **{s: "/audience/" + urllib.parse.quote(s, safe=":") for s in campaigns[:2] + interests[:2]},
        }
        for segment, path in paths.items():
            answers = both(ports, path)
            if not all(s == 200 for s, _, _ in answers) or answers[0][2] != answers[1][2]:
                return False, (path, answers)
            if len({h.get(SERVED_BY_HEADER) for _, h, _ in answers}) != 1:
                return False, (path, "served by different workers", answers)
            body = answers[0][2]
            if body["segment"] != segment or body["latest"] != audience_expected(published, segment):
                return False, (path, body["latest"], audience_expected(published, segment))
        return True, paths

    paths = wait_until(segments_settled, 180, "both workers to answer every segment as published")
    assert len(paths) >= 5

    # every key is read by its owner: each worker owns some, and answers the others' by forwarding
    served = set()
    for path in [profile_path(u) for u in checked_users] + list(paths.values()):
        answers = both(ports, path)
        owners = {h[SERVED_BY_HEADER] for _, h, _ in answers}
        assert len(owners) == 1, answers
        served |= owners
    assert served == {f"http://127.0.0.1:{port}" for port in ports}


def test_unknown_keys_are_404_from_both(cluster):
    ports = cluster["ports"]
    for path, error in [
        (profile_path("nobody-at-all"), "unknown user"),
        (profile_path("alice"), "unknown user"),  # the id itself: the table is keyed by its pseudonym
        ("/audience/campaign:no-such-campaign", "unknown segment"),
        ("/audience/" + urllib.parse.quote("hashtag:#NoSuchTagAnywhere", safe=""), "unknown segment"),
    ]:
        answers = both(ports, path)
        assert [(s, body) for s, _, body in answers] == [(404, {"error": error})] * 2, answers
        assert len({h[SERVED_BY_HEADER] for _, h, _ in answers}) == 1  # one of the two forwarded


def test_without_routing_the_other_worker_has_no_answer(cluster):
    """A request marked as forwarded is answered where it arrives: by the owner only."""
    ports = cluster["ports"]
    path = profile_path(pseudonym("alice", KEY))
    status, headers, expected = http_get(ports[0], path)
    assert status == 200
    owner = headers[SERVED_BY_HEADER]
    other = next(p for p in ports if f"http://127.0.0.1:{p}" != owner)
    mine = next(p for p in ports if p != other)
    unrouted = {FORWARDED_HEADER: "http://test"}
    status, headers, body = http_get(other, path, unrouted)
    assert status == 503 and "does not own" in body["error"] and headers.get("Retry-After") == "1"
    assert http_get(mine, path, unrouted)[::2] == (200, expected)
