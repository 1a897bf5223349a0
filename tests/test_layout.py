"""The package layout is the architecture: these import rules keep the picture in docs/architecture.md true.

- ``models`` imports nothing from ``stream``;
- ``stream.pipeline`` and ``stream.audience`` import neither Faust nor a Kafka client, nor the worker or
  the tools; ``stream.audience`` does not import ``stream.pipeline`` (the pipeline feeds the audience);
- ``stream.settings`` and ``stream.stats`` import nothing from the sub-packages;
- ``stream.worker`` never imports ``stream.tools``;
- ``stream.schemas`` (the event contract) imports nothing of the project: every part may use it;
- the import graph of the project's modules has no cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
KAFKA = ("faust", "mode", "aiokafka", "kafka", "confluent_kafka")

# (importer prefix, forbidden import prefixes)
RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("models", ("stream",)),
    ("stream.pipeline", (*KAFKA, "stream.worker", "stream.tools")),
    ("stream.audience", (*KAFKA, "stream.worker", "stream.tools", "stream.pipeline")),
    ("stream.settings", ("stream.pipeline", "stream.audience", "stream.worker", "stream.tools")),
    ("stream.stats", ("stream.pipeline", "stream.audience", "stream.worker", "stream.tools")),
    ("stream.worker", ("stream.tools",)),
    (
        "stream.schemas",
        (*KAFKA, "stream.pipeline", "stream.audience", "stream.worker", "stream.tools", "stream.settings"),
    ),
)


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports(source: str) -> list[tuple[str, bool]]:
    """``(module, at_top_level)`` of every import of a module, skipping ``if TYPE_CHECKING:`` blocks.

    >>> imports("import a.b\\nfrom c import d\\ndef f():\\n    import e\\nif TYPE_CHECKING:\\n    import g")
    [('a.b', True), ('c', True), ('e', False)]
    """
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _type_checking(child):
                for other in child.orelse:
                    visit(other, top)
                continue
            if isinstance(child, ast.Import):
                found.extend((alias.name, top) for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module and not child.level:
                found.append((child.module, top))
            nested = isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            visit(child, top and not nested)

    visit(ast.parse(source), True)
    return found


def graph(root: Path, packages: tuple[str, ...] = ("stream", "models")) -> dict[str, list[tuple[str, bool]]]:
    """Module → its imports, for every module of ``packages`` under ``root``."""
    out = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            out[module_name(path, root)] = imports(path.read_text(encoding="utf-8"))
    return out


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def violations(modules: dict[str, list[tuple[str, bool]]]) -> list[str]:
    """Every import that breaks one of :data:`RULES`, as ``"importer -> imported"``."""
    out: list[str] = []
    for module, imported in modules.items():
        for prefix, forbidden in RULES:
            if _within(module, prefix):
                out.extend(f"{module} -> {name}" for name, _ in imported if any(_within(name, f) for f in forbidden))
    return out


def cycles(modules: dict[str, list[tuple[str, bool]]]) -> list[list[str]]:
    """Cycles among the modules' top-level imports (``from a.b import c`` counts as importing ``a.b``,
    and ``a.b.c`` when that is a module)."""
    edges: dict[str, set[str]] = {}
    for module, imported in modules.items():
        targets = set()
        for name, top in imported:
            if top and name in modules and name != module:
                targets.add(name)
        edges[module] = targets
    found, state = [], dict.fromkeys(edges, 0)  # 0 new, 1 on the stack, 2 done

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges[node]):
            if state[nxt] == 1:
                found.append([*stack[stack.index(nxt) :], nxt])
            elif state[nxt] == 0:
                visit(nxt, stack)
        stack.pop()
        state[node] = 2

    for node in sorted(edges):
        if state[node] == 0:
            visit(node, [])
    return found


def test_the_project_keeps_its_import_rules():
    assert violations(graph(ROOT)) == []


def test_the_import_graph_has_no_cycle():
    assert cycles(graph(ROOT)) == []


def test_every_source_folder_is_a_package_the_rules_know():
    packages = {module_name(p.parent / "__init__.py", ROOT) for p in (ROOT / "stream").rglob("*.py")}
    assert packages == {
        "stream",
        "stream.pipeline",
        "stream.audience",
        "stream.worker",
        "stream.tools",
        "stream.schemas",
    }


@pytest.mark.parametrize(
    ("importer", "line"),
    [
        ("models/arow.py", "from stream.settings import Settings"),
        ("stream/pipeline/cleaning.py", "import faust"),
        ("stream/audience/windows.py", "from aiokafka import AIOKafkaConsumer"),
        ("stream/audience/rules.py", "from stream.pipeline.events import Post"),
        ("stream/worker/app.py", "def f():\n    from stream.tools.demo import run_demo"),
    ],
)
def test_a_forbidden_import_is_caught(tmp_path, importer, line):
    """The checker itself: the same tree with one forbidden import added fails the rules."""
    for path in [*(ROOT / "stream").rglob("*.py"), *(ROOT / "models").rglob("*.py")]:
        target = tmp_path / path.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    with open(tmp_path / importer, "a", encoding="utf-8") as fh:
        fh.write("\n" + line + "\n")
    assert violations(graph(tmp_path)) == [
        f"{module_name(tmp_path / importer, tmp_path)} -> {line.split()[-3] if 'from' in line else line.split()[-1]}"
    ]


def test_a_cycle_is_caught(tmp_path):
    (tmp_path / "stream").mkdir()
    (tmp_path / "models").mkdir()
    (tmp_path / "stream" / "a.py").write_text("from stream.b import x\n")
    (tmp_path / "stream" / "b.py").write_text("import stream.a\n")
    assert cycles(graph(tmp_path)) == [["stream.a", "stream.b", "stream.a"]]
