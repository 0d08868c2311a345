"""No import cycle in ``srca`` (issue 20, item 4): SearchConfig validates method and scorer names
against leaf registries instead of importing the searches, which import SearchConfig."""
import ast
import dataclasses
import pathlib

import pytest

import srca
from srca import SearchConfig
from srca.method_registry import METHODS

SRC = pathlib.Path(srca.__file__).parent


def import_graph(src: pathlib.Path) -> dict[str, set[str]]:
    """Module -> srca modules it imports, from every import statement (those inside functions
    too: a lazy import still ties two modules). A module's own parent packages are loaded before
    it and are no edge."""
    mods = {}
    for p in src.rglob("*.py"):
        parts = [src.name, *p.relative_to(src).with_suffix("").parts]
        mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for m, p in mods.items():
        pkg = m if p.name == "__init__.py" else m.rpartition(".")[0]
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = pkg
                for _ in range(node.level - 1):
                    base = base.rpartition(".")[0]
                mod = (base + (f".{node.module}" if node.module else "")) if node.level else node.module
                targets = [mod] + [f"{mod}.{a.name}" for a in node.names]
            else:
                continue
            for t in targets:
                while t and t not in mods:
                    t = t.rpartition(".")[0]
                if t and t != m and not m.startswith(t + "."):
                    graph[m].add(t)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_srca_has_no_import_cycle():
    graph = import_graph(SRC)
    assert "srca.methods" not in graph["srca.config"]
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]


def test_the_registries_are_leaves():
    graph = import_graph(SRC)
    assert graph["srca.method_registry"] == set()
    # the scorer registry and the scorers it imports (srca.scorers.prm is imported by name, when
    # a PRM scorer is first built) import nothing of srca outside the package
    for m in ("srca.scorers", "srca.scorers.base", "srca.scorers.self_confidence"):
        assert {t for t in graph[m] if not t.startswith("srca.scorers.")} == set(), m


def test_unknown_names_name_their_field():
    with pytest.raises(ValueError, match=r"SearchConfig\.method: unknown method 'nope'"):
        SearchConfig(method="nope")
    with pytest.raises(ValueError, match=r"SearchConfig\.scorer: unknown scorer 'nope'"):
        SearchConfig(scorer="nope")
    with pytest.raises(ValueError, match=r"SearchConfig\.method"):  # a JSON list is a bad value, not a crash
        SearchConfig.from_dict({"method": ["srca"]})


def test_the_config_reads_the_live_registry(monkeypatch):
    monkeypatch.setitem(METHODS, "zz_added", dataclasses.replace(METHODS["cot"], name="zz_added"))
    assert SearchConfig(method="zz_added").method == "zz_added"
    assert srca.methods.METHODS is METHODS  # one table, re-exported


def test_every_search_resolves():
    # the registry names each search as "module:function", imported when a solve first runs it
    for m in METHODS.values():
        assert callable(m.search_fn()), m.name
