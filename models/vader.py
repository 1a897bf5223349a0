"""VADER's ``polarity_scores`` with the same results in less time.

:class:`FastVader` is vaderSentiment 3.3.2's ``SentimentIntensityAnalyzer`` with its scoring loop
rewritten to do each piece of work once per text instead of once per word:

* a text that is not ASCII is scanned for emoji characters in one C-level set test; only a text
  that has one goes through VADER's character-by-character emoji replacement;
* the words are lower-cased once (VADER lower-cases the whole text again in each negation and idiom
  check, three times per sentiment word);
* words that are not in the lexicon and are no booster cost one dictionary lookup, and a text with
  no word of the lexicon (four tweets in ten) gets VADER's all-zero scores without its arithmetic;
* the scores of the words become the four figures in one function, not five method calls.

The rules, their order and their arithmetic are VADER's own, line for line, so the scores are equal
to the stock analyzer's, to the last digit: ``tests/models/test_vader.py`` checks them on every demo
tweet, on VADER's own examples and on random sentences built from the words its rules look for.
The contrastive "but" rule is VADER's own function, called as is (its index arithmetic has quirks
that are part of the scores).

>>> from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
>>> text = "The plot was NOT good, but the ending is kind of great :) 💘!!"
>>> FastVader().polarity_scores(text) == SentimentIntensityAnalyzer().polarity_scores(text)
True
"""

from __future__ import annotations

import math
import string

from vaderSentiment.vaderSentiment import (
    BOOSTER_DICT,
    C_INCR,
    N_SCALAR,
    NEGATE,
    SPECIAL_CASES,
    SentimentIntensityAnalyzer,
    scalar_inc_dec,
)

__all__ = ["FastVader"]

_NEGATE = frozenset(NEGATE)
_PUNCTUATION = string.punctuation


def _negated(word: str) -> bool:
    """VADER's ``negated([word])`` for one lower-cased word."""
    return word in _NEGATE or "n't" in word


class FastVader(SentimentIntensityAnalyzer):
    """``SentimentIntensityAnalyzer`` with a faster, equal ``polarity_scores``."""

    def __init__(self) -> None:
        super().__init__()
        self._emoji_chars = frozenset(k for k in self.emojis if len(k) == 1)

    def _replace_emoji(self, text: str) -> str:
        """VADER's emoji replacement loop, unchanged (only texts with an emoji come here)."""
        out, prev_space = "", True
        for ch in text:
            if ch in self.emojis:
                if not prev_space:
                    out += " "
                out += self.emojis[ch]
                prev_space = False
            else:
                out += ch
                prev_space = ch == " "
        return out

    def polarity_scores(self, text: str) -> dict[str, float]:
        if not text.isascii() and not self._emoji_chars.isdisjoint(text):  # every emoji VADER names is not ASCII
            text = self._replace_emoji(text)
        text = text.strip()
        # VADER's SentiText._strip_punc_if_word: emoticons (two characters or fewer once stripped) stay whole
        words = [w if len(s := w.strip(_PUNCTUATION)) <= 2 else s for w in text.split()]
        low = [w.lower() for w in words]
        lexicon, n = self.lexicon, len(words)
        if lexicon.keys().isdisjoint(low):  # no word VADER rates: its scores, without the arithmetic
            return {"neg": 0.0, "neu": 1.0 if low else 0.0, "pos": 0.0, "compound": 0.0}
        caps = sum(map(str.isupper, words))
        is_cap_diff = 0 < n - caps < n  # VADER's allcap_differential: some words, not all, in capitals
        sentiments: list[float] = [0] * n
        for i in [i for i, lw in enumerate(low) if lw in lexicon]:  # the other words score 0
            lw = low[i]
            if lw not in BOOSTER_DICT and not (lw == "kind" and i < n - 1 and low[i + 1] == "of"):
                sentiments[i] = self._valence(words, low, i, is_cap_diff)
        if "but" in low:
            sentiments = self._but_check(words, sentiments)
        return _scores(sentiments, text)

    def _valence(self, words: list[str], low: list[str], i: int, is_cap_diff: bool) -> float:
        """VADER's ``sentiment_valence`` for a lexicon word at ``i``."""
        lexicon, lw = self.lexicon, low[i]
        valence = lexicon[lw]
        if lw == "no" and i != len(words) - 1 and low[i + 1] in lexicon:
            valence = 0.0
        if (
            (i > 0 and low[i - 1] == "no")
            or (i > 1 and low[i - 2] == "no")
            or (i > 2 and low[i - 3] == "no" and low[i - 1] in ("or", "nor"))
        ):
            valence = lexicon[lw] * N_SCALAR
        if is_cap_diff and words[i].isupper():
            if valence > 0:
                valence += C_INCR
            else:
                valence -= C_INCR
        for start_i in range(3):
            j = i - (start_i + 1)
            if i > start_i and low[j] not in lexicon:
                s = scalar_inc_dec(words[j], valence, is_cap_diff)
                if start_i == 1 and s != 0:
                    s = s * 0.95
                if start_i == 2 and s != 0:
                    s = s * 0.9
                valence = valence + s
                valence = _negation_check(valence, low, start_i, i)
                if start_i == 2:
                    valence = _special_idioms_check(valence, low, i)
        return _least_check(valence, low, i, lexicon)


def _scores(sentiments: list[float], text: str) -> dict[str, float]:
    """VADER's ``score_valence`` (with its punctuation emphasis, sifting and normalisation) in one
    function: the same operations in the same order, without its five calls per text."""
    if not sentiments:
        return {"neg": 0.0, "neu": 0.0, "pos": 0.0, "compound": 0.0}
    sum_s = float(sum(sentiments))
    ep_count = min(text.count("!"), 4)
    qm_count = text.count("?")
    qm_amplifier: float = 0
    if qm_count > 1:
        qm_amplifier = qm_count * 0.18 if qm_count <= 3 else 0.96
    punct_emph_amplifier = ep_count * 0.292 + qm_amplifier
    if sum_s > 0:
        sum_s += punct_emph_amplifier
    elif sum_s < 0:
        sum_s -= punct_emph_amplifier
    compound = sum_s / math.sqrt((sum_s * sum_s) + 15)  # VADER's normalize, alpha 15
    compound = -1.0 if compound < -1.0 else 1.0 if compound > 1.0 else compound
    pos_sum = neg_sum = 0.0
    neu_count = 0
    for score in sentiments:
        if score > 0:
            pos_sum += float(score) + 1  # compensates for neutral words that are counted as 1
        if score < 0:
            neg_sum += float(score) - 1
        if score == 0:
            neu_count += 1
    if pos_sum > math.fabs(neg_sum):
        pos_sum += punct_emph_amplifier
    elif pos_sum < math.fabs(neg_sum):
        neg_sum -= punct_emph_amplifier
    total = pos_sum + math.fabs(neg_sum) + neu_count
    return {
        "neg": round(math.fabs(neg_sum / total), 3),
        "neu": round(math.fabs(neu_count / total), 3),
        "pos": round(math.fabs(pos_sum / total), 3),
        "compound": round(compound, 4),
    }


def _negation_check(valence: float, low: list[str], start_i: int, i: int) -> float:
    """VADER's ``_negation_check`` over the lower-cased words."""
    if start_i == 0 and _negated(low[i - 1]):
        valence = valence * N_SCALAR
    if start_i == 1:
        if low[i - 2] == "never" and (low[i - 1] == "so" or low[i - 1] == "this"):
            valence = valence * 1.25
        elif low[i - 2] == "without" and low[i - 1] == "doubt":
            pass
        elif _negated(low[i - 2]):
            valence = valence * N_SCALAR
    if start_i == 2:
        if (low[i - 3] == "never" and (low[i - 2] == "so" or low[i - 2] == "this")) or (
            low[i - 1] == "so" or low[i - 1] == "this"
        ):
            valence = valence * 1.25
        elif low[i - 3] == "without" and (low[i - 2] == "doubt" or low[i - 1] == "doubt"):
            pass
        elif _negated(low[i - 3]):
            valence = valence * N_SCALAR
    return valence


def _special_idioms_check(valence: float, low: list[str], i: int) -> float:
    """VADER's ``_special_idioms_check`` over the lower-cased words (called with ``i > 2``)."""
    onezero = f"{low[i - 1]} {low[i]}"
    twoonezero = f"{low[i - 2]} {low[i - 1]} {low[i]}"
    twoone = f"{low[i - 2]} {low[i - 1]}"
    threetwoone = f"{low[i - 3]} {low[i - 2]} {low[i - 1]}"
    threetwo = f"{low[i - 3]} {low[i - 2]}"
    for seq in (onezero, twoonezero, twoone, threetwoone, threetwo):
        if seq in SPECIAL_CASES:
            valence = SPECIAL_CASES[seq]
            break
    if len(low) - 1 > i:
        zeroone = f"{low[i]} {low[i + 1]}"
        if zeroone in SPECIAL_CASES:
            valence = SPECIAL_CASES[zeroone]
    if len(low) - 1 > i + 1:
        zeroonetwo = f"{low[i]} {low[i + 1]} {low[i + 2]}"
        if zeroonetwo in SPECIAL_CASES:
            valence = SPECIAL_CASES[zeroonetwo]
    for n_gram in (threetwoone, threetwo, twoone):
        if n_gram in BOOSTER_DICT:
            valence = valence + BOOSTER_DICT[n_gram]
    return valence


def _least_check(valence: float, low: list[str], i: int, lexicon: dict[str, float]) -> float:
    """VADER's ``_least_check`` over the lower-cased words."""
    if i > 1 and low[i - 1] not in lexicon and low[i - 1] == "least":
        if low[i - 2] != "at" and low[i - 2] != "very":
            valence = valence * N_SCALAR
    elif i > 0 and low[i - 1] not in lexicon and low[i - 1] == "least":
        valence = valence * N_SCALAR
    return valence
