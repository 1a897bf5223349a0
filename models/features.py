"""Features of a cleaned post: hashed word and bigram counts plus categorical and numeric tokens.

All features are non-negative counts keyed by a stable hash (CRC-32 of the token, masked to
``hash_bits``), so that every River classifier (naive Bayes included) can take them, model memory
is bounded whatever the vocabulary, and checkpoints mean the same thing in every process.

>>> tokenize("the #1 fans can't wait for emoji_party_popper 2015!")
['fans', "can't", 'wait', 'emoji_party_popper']
>>> f = PostFeaturizer(hash_bits=10)
>>> sorted(f.tokens("great flight", ("travel",), "twitter", "en", (0.0, 0.0, 0.0, 5.2)))
['#travel', 'f:followers=7', 'flight', 'great', 'great flight', 'lang=en', 'platform=twitter']
"""

from __future__ import annotations

import itertools
import re
import zlib
from collections.abc import Iterable, Mapping
from typing import Any

from river import base

TOKEN = re.compile(r"[^\W\d_][\w']*")
# Function words carry no interest; negations stay (sentiment needs them).
STOPWORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "and",
        "or",
        "but",
        "if",
        "of",
        "at",
        "by",
        "for",
        "with",
        "about",
        "against",
        "between",
        "into",
        "through",
        "during",
        "before",
        "after",
        "above",
        "below",
        "to",
        "from",
        "up",
        "down",
        "in",
        "out",
        "on",
        "off",
        "over",
        "under",
        "again",
        "further",
        "then",
        "once",
        "here",
        "there",
        "when",
        "where",
        "why",
        "how",
        "all",
        "any",
        "both",
        "each",
        "few",
        "more",
        "most",
        "other",
        "some",
        "such",
        "only",
        "own",
        "same",
        "so",
        "than",
        "too",
        "very",
        "s",
        "t",
        "can",
        "will",
        "just",
        "should",
        "now",
        "i",
        "me",
        "my",
        "myself",
        "we",
        "our",
        "ours",
        "you",
        "your",
        "yours",
        "he",
        "him",
        "his",
        "she",
        "her",
        "hers",
        "it",
        "its",
        "they",
        "them",
        "their",
        "what",
        "which",
        "who",
        "whom",
        "this",
        "that",
        "these",
        "those",
        "am",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "being",
        "have",
        "has",
        "had",
        "having",
        "do",
        "does",
        "did",
        "doing",
        "would",
        "could",
        "i'm",
        "it's",
        "that's",
    ]
)
ENGAGEMENT_NAMES = ("likes", "shares", "replies", "followers")


def tokenize(text: str) -> list[str]:
    """Words of a cleaned text: start with a letter, two characters or more, no stop words."""
    return [t for t in TOKEN.findall(text) if len(t) > 1 and t not in STOPWORDS]


def stable_hash(token: str, mask: int) -> int:
    """A hash of ``token`` that is the same in every process (unlike ``hash``).

    >>> stable_hash("brady", 0xFFFF)
    32011
    """
    return zlib.crc32(token.encode("utf-8", "surrogatepass")) & mask


class PostFeaturizer(base.Transformer):
    """Turns a cleaned post into a sparse dict of hashed counts.

    A cleaned post is anything with ``text``, ``hashtags``, ``engagement`` and a ``post`` with
    ``platform`` and ``lang`` (the stream's ``CleanPost``).

    Parameters
    ----------
    hash_bits
        Features are hashed into ``2**hash_bits`` buckets.
    bigrams
        Also count pairs of consecutive words.
    """

    def __init__(self, hash_bits: int = 20, bigrams: bool = True):
        self.hash_bits = hash_bits
        self.bigrams = bigrams
        self._mask = (1 << hash_bits) - 1

    def tokens(
        self, text: str, hashtags: Iterable[str], platform: str, lang: str, engagement: Iterable[float]
    ) -> list[str]:
        """The feature tokens, before hashing (readable, for tests and debugging): the words first."""
        words = tokenize(text)
        return words + self._more_tokens(words, hashtags, platform, lang, engagement)

    def _more_tokens(
        self, words: list[str], hashtags: Iterable[str], platform: str, lang: str, engagement: Iterable[float]
    ) -> list[str]:
        out = [f"{a} {b}" for a, b in itertools.pairwise(words)] if self.bigrams else []
        out.extend("#" + t for t in hashtags)
        out.append("platform=" + platform)
        out.append("lang=" + lang)
        # Numeric features as log-scale buckets: counts that any classifier can use. ``engagement``
        # may hold fewer figures than there are names (none at all for a bare post): no feature for those.
        out.extend(f"f:{n}={int(v * 1.5)}" for n, v in zip(ENGAGEMENT_NAMES, engagement, strict=False) if v > 0)
        return out

    # River types any transformer's output as ``dict[Hashable, Any]``, which (dict being invariant) no
    # ``dict[int, float]`` is; the hashed keys are ints, and the sentiment model relies on it.
    def transform_one(self, x: Any) -> dict[int, float]:  # type: ignore[override]
        return self.transform_words(x)[0]

    def transform_words(self, x: Any) -> tuple[dict[int, float], int]:
        """:meth:`transform_one`, and how many of its keys are the post's words: the first ones
        (dicts keep their order). The sentiment model reads the words alone (see
        :func:`words_of`): bigrams, hashtags and the platform say more about the topic and the
        source than about the sentiment.

        >>> from types import SimpleNamespace as Doc
        >>> post = Doc(text="great great flight", hashtags=("travel",), engagement=(),
        ...            post=Doc(platform="twitter", lang="en"))
        >>> x, n = PostFeaturizer(hash_bits=10).transform_words(post)
        >>> len(x), n, list(x.values())[:n]
        (7, 2, [2.0, 1.0])
        """
        post = x.post
        counts: dict[int, float] = {}
        mask, crc32, get = self._mask, zlib.crc32, counts.get
        words = tokenize(x.text)
        for tok in words:
            h = crc32(tok.encode("utf-8", "surrogatepass")) & mask  # stable_hash, inlined: once per token
            counts[h] = get(h, 0.0) + 1.0
        n_words = len(counts)
        for tok in self._more_tokens(words, x.hashtags, post.platform, post.lang, x.engagement):
            h = crc32(tok.encode("utf-8", "surrogatepass")) & mask
            counts[h] = get(h, 0.0) + 1.0
        return counts, n_words


def words_of(x: Mapping[int, float], n_words: int | None) -> Mapping[int, float]:
    """The post's words among its features ``x``: the first ``n_words`` keys (all of them when
    ``n_words`` is ``None``: features from an older training log, which did not say).

    >>> words_of({5: 2.0, 9: 1.0, 11: 1.0}, 2), words_of({5: 2.0}, None)
    ({5: 2.0, 9: 1.0}, {5: 2.0})
    """
    if n_words is None or n_words >= len(x):
        return x
    return dict(itertools.islice(x.items(), n_words))


def top_class(scores: Mapping[str, float]) -> str | None:
    """The class with the highest score, ``None`` for an empty mapping.

    >>> top_class({"a": 0.2, "b": 0.8}), top_class({})
    ('b', None)
    """
    return max(scores, key=scores.__getitem__) if scores else None
