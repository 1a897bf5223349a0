"""The batch reference an online model is held to: TF-IDF and a linear SVM, trained with every post
in memory and as many passes as it needs (scikit-learn, a development dependency).

>>> train = ["goal match striker", "vote senate law", "match referee goal", "law court vote"]
>>> scores = batch_svm(train, ["sports", "politics", "sports", "politics"],
...                    ["late goal", "new law"], ["sports", "politics"])
>>> [(s["features"], s["macro_f1"]) for s in scores]
[('words', 1.0), ('words and bigrams', 1.0)]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def batch_svm(
    train_texts: Sequence[str], train_labels: Sequence[str], test_texts: Sequence[str], test_labels: Sequence[str]
) -> list[dict[str, Any]]:
    """Macro-F1 and accuracy on the test posts of ``TfidfVectorizer(sublinear_tf=True) + LinearSVC()``,
    once over words and once over words and bigrams (``min_df=2``), the usual text baselines.

    Raises
    ------
    RuntimeError
        If scikit-learn is not installed (it comes with ``pip install -e .[dev]``).
    """
    try:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.metrics import accuracy_score, f1_score
        from sklearn.svm import LinearSVC
    except ImportError:
        raise RuntimeError("the batch baseline needs scikit-learn: pip install -e '.[dev]'") from None
    rows = []
    for name, options in (("words", {}), ("words and bigrams", {"ngram_range": (1, 2), "min_df": 2})):
        vectorizer = TfidfVectorizer(sublinear_tf=True, **options)
        svm = LinearSVC(C=1.0).fit(vectorizer.fit_transform(train_texts), train_labels)
        predicted = svm.predict(vectorizer.transform(test_texts))
        rows.append(
            {
                "model": "tfidf-linear-svm",
                "features": name,
                "macro_f1": float(f1_score(test_labels, predicted, average="macro")),
                "accuracy": float(accuracy_score(test_labels, predicted)),
                "n": len(test_labels),
            }
        )
    return rows
