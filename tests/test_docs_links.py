"""The README, the CHANGELOG and docs/ point at what is there: every relative link leads to a file of
the repository and, with a ``#fragment``, to a heading of that page (anchors as GitHub makes them); and
the README and docs/ name only files, modules and classes that exist (classes with the keyword
arguments they take)."""

from __future__ import annotations

import functools
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted([ROOT / "README.md", ROOT / "CHANGELOG.md", *(ROOT / "docs").rglob("*.md")])
FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$", re.M)


def slug(heading: str) -> str:
    """A heading's anchor as GitHub makes it: the text as rendered, lower case, punctuation dropped,
    each space a hyphen.

    >>> slug("Worker roles: the aggregates in a process of their own (unreleased)")
    'worker-roles-the-aggregates-in-a-process-of-their-own-unreleased'
    >>> slug("Naive Bayes' counts in `arow` (0.16.0)"), slug("**Bold** [a link](x.md) → on")
    ('naive-bayes-counts-in-arow-0160', 'bold-a-link--on')
    """
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link renders as its text
    text = text.replace("`", "").replace("*", "")
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


@functools.cache
def anchors(page: Path) -> frozenset[str]:
    """The anchors of a page's headings (a repeated one gets ``-1``, ``-2``, …, as on GitHub)."""
    seen: dict[str, int] = {}
    out = set()
    for heading in HEADING.findall(FENCE.sub("", page.read_text())):
        base = slug(heading)
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return frozenset(out)


def links(page: Path) -> list[str]:
    """The page's relative links, outside code blocks and inline code."""
    text = re.sub(r"`[^`\n]*`", "", FENCE.sub("", page.read_text()))
    return [t for t in LINK.findall(text) if not re.match(r"^[a-z][a-z0-9+.-]*:", t)]  # no http:, mailto:


def test_the_pages_have_links_to_check():
    assert len(PAGES) >= 10 and sum(len(links(p)) for p in PAGES) > 50


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_leads_to_a_file_and_a_heading(page):
    broken = []
    for target in links(page):
        path, _, fragment = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(f"{target}: no such file")
        elif fragment and dest.suffix == ".md" and fragment not in anchors(dest):
            broken.append(f"{target}: no such heading in {dest.relative_to(ROOT)}")
    assert not broken, f"{page.relative_to(ROOT)}: " + "; ".join(broken)


PATH = re.compile(r"`((?:stream|models|tests|ops|docs)/[\w./-]*\w)`")
DOTTED = re.compile(r"`((?:stream|models)\.[\w.]*\w)")


def resolves(name: str) -> bool:
    """Whether a dotted name (``stream.pipeline.modelview.ModelView``) is a module, or an attribute
    of one.

    >>> resolves("stream.pipeline.modelview.ModelView"), resolves("stream.pipeline.modelview.Nothing")
    (True, False)
    """
    import importlib

    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attribute in parts[i:]:
            if not hasattr(obj, attribute):
                return False
            obj = getattr(obj, attribute)
        return True
    return False


@pytest.mark.parametrize("page", [p for p in PAGES if p.name != "CHANGELOG.md"], ids=lambda p: p.name)
def test_every_file_and_module_a_page_names_exists(page):
    """The README and docs/ describe the code as it is (the CHANGELOG may name what is gone)."""
    text = page.read_text()
    missing = [p for p in PATH.findall(text) if not (ROOT / p).exists() and not list(ROOT.glob(p))]
    missing += [n for n in DOTTED.findall(text) if not resolves(n)]
    assert not missing, f"{page.relative_to(ROOT)} names what is not there: {', '.join(sorted(set(missing)))}"


CLASS = re.compile(r"`([A-Z][A-Za-z0-9]*[a-z][A-Za-z0-9]*)(?:\(([^`]*)\))?`")
# Names of other projects the pages compare with or refer to, and Python's constants.
ELSEWHERE = {"Dockerfile", "True", "False", "None", "TfidfVectorizer", "LinearSVC", "MultinomialNB", "BagOfWords"}


@functools.cache
def our_classes() -> dict[str, str]:
    """Class name → its module's dotted name, for every class of ``stream/`` and ``models/``."""
    found: dict[str, str] = {}
    for path in sorted([*(ROOT / "stream").rglob("*.py"), *(ROOT / "models").rglob("*.py")]):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        for name in re.findall(r"^class (\w+)", path.read_text(), re.M):
            found.setdefault(name, module)
    return found


@functools.cache
def alert_names() -> frozenset[str]:
    """The alert rules of ``ops/prometheus/alerts.yml``."""
    return frozenset(re.findall(r"^\s*- alert: (\w+)", (ROOT / "ops" / "prometheus" / "alerts.yml").read_text(), re.M))


def unknown_class_names(text: str) -> list[str]:
    """The backticked class names of ``text`` (``ModelView``, ``ModelView(predicts=False)``) that no
    class of ours, alert rule or name of :data:`ELSEWHERE` has, and the keyword arguments a class of
    ours does not take.

    >>> unknown_class_names("`ModelView(predicts=False)`, `Processor`, `LinearSVC()`")
    []
    >>> unknown_class_names("`ModelVeiw`, `ModelView(predict=False)`")
    ['ModelVeiw', 'ModelView(predict=)']
    """
    import importlib
    import inspect

    ours, alerts, unknown = our_classes(), alert_names(), []
    for name, args in CLASS.findall(text):
        if name in ELSEWHERE or name in alerts:
            continue
        if name not in ours:
            unknown.append(name)
            continue
        parameters = inspect.signature(getattr(importlib.import_module(ours[name]), name)).parameters
        for keyword in re.findall(r"(?:^|,)\s*(\w+)\s*=", args):
            if keyword not in parameters:
                unknown.append(f"{name}({keyword}=)")
    return unknown


@pytest.mark.parametrize("page", [p for p in PAGES if p.name != "CHANGELOG.md"], ids=lambda p: p.name)
def test_every_class_a_page_names_exists_and_takes_its_arguments(page):
    unknown = unknown_class_names(page.read_text())
    assert not unknown, (
        f"{page.relative_to(ROOT)} names classes that are not there (or arguments they do not take): "
        f"{', '.join(sorted(set(unknown)))}; a name of another project goes in ELSEWHERE"
    )
