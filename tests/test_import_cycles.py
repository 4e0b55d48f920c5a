"""No two of the project's modules import each other, at import time or inside functions.

Every module of flowplane/, chalicelib/ and app.py is parsed with `ast` (nothing is
imported), each of its imports resolved to the project modules it runs, and the graph
between them searched for cycles: a strongly connected component of more than one
module, or a module importing itself. A cycle inside a function does not fail at once,
but it is two modules that cannot be understood, tested or moved one without the other.

What an import from module M counts as:
- `import a.b.c`, `from a.b import c` (c a module): an edge to a.b.c, all of it, the
  imports inside its functions too (M may call them);
- `from a.b import name`, `import a.b` then `a.b.name`, for a.b a package: what of its
  `__init__` the name needs. A name that `__init__` binds as it runs by an import or an
  assignment (`__version__`, a re-export) needs only what it imports as it runs:
  an edge to `a.b [at load]`. A function or class it defines, or a name it serves from
  `__getattr__`, needs all of it: an edge to a.b. This holds from a module inside a.b too;
- the packages Python runs on the way, a and a.b for `import a.b.c`: `[at load]` edges,
  except to packages holding M, which started before M could run;
- `importlib.import_module("a.b")` with a literal name; a module that imports a name it
  computes is taken to import every project module its string constants name;
- nothing under `if TYPE_CHECKING:`, which never runs.
"""

from __future__ import annotations

import ast
import functools
import re
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Optional, Union

from tests.support.paths import ROOT

SOURCES = ("flowplane", "chalicelib", "app.py")

# Cycles through modules being reorganised in parallel under issue 13 ("Layout"), checked
# as they stand, each by its exact set of modules, so that no other cycle can join them.
# The lead empties this list once those changes land; a cycle that goes away must leave it.
# Cycles allowed to remain, each named with why; none are.
KNOWN_CYCLES: dict[str, frozenset[str]] = {}

# The node for what a package's __init__ imports as it runs, not inside its functions.
AT_LOAD = " [at load]"
# Set on every module by the import system: reading them runs none of its code.
MODULE_ATTRIBUTES = frozenset({"__file__", "__name__", "__path__", "__doc__", "__spec__", "__package__",
                               "__loader__"})
_MODULE_NAME = re.compile(r"^\.*[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")

FunctionNode = Union[ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda]


@dataclass(frozen=True)
class Edge:
    source: str
    target: str  # a module, or a package's `name + AT_LOAD`
    line: int
    at_load: bool  # runs when the source is imported, not later inside one of its functions


class ImportGraph:
    def __init__(self, root: Path, files: dict[str, Path], packages: set[str], edges: list[Edge]) -> None:
        self.root = root
        self.files = files
        self.edges = edges
        self.targets: dict[str, set[str]] = {name: set() for name in files}
        self.targets.update({package + AT_LOAD: set() for package in packages})
        for edge in edges:
            self.targets[edge.source].add(edge.target)
            if edge.at_load and edge.source in packages:
                self.targets[edge.source + AT_LOAD].add(edge.target)

    def cycles(self) -> list[frozenset[str]]:
        """Each group of modules that import each other, and each module importing itself."""
        found = [c for c in _strongly_connected(self.targets) if len(c) > 1]
        found += [frozenset({m}) for m, targets in self.targets.items() if m in targets]
        return sorted(found, key=sorted)

    def describe(self, cycle: frozenset[str]) -> str:
        """One shortest loop through the cycle's first module, each import with its file and line."""
        start = min(cycle)
        path = _shortest_loop(start, {m: self.targets[m] & cycle for m in cycle})
        steps = [start]
        for source, target in zip(path, path[1:]):
            module = source.removesuffix(AT_LOAD)
            line = min(e.line for e in self.edges if e.source == module and e.target == target
                       and (e.at_load or module == source))
            steps.append(f"{target} ({self.files[module].relative_to(self.root)}:{line})")
        others = "" if len(cycle) < len(path) else f"; all {len(cycle)}: {', '.join(sorted(cycle))}"
        return " -> ".join(steps) + others


def build_graph(root: Path, sources: Iterable[str] = SOURCES) -> ImportGraph:
    files: dict[str, Path] = {}
    packages: set[str] = set()
    for source in sources:
        path = root / source
        for file in [path] if path.is_file() else sorted(path.rglob("*.py")):
            parts = list(file.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
                packages.add(".".join(parts))
            files[".".join(parts)] = file
    trees = {name: ast.parse(file.read_text(encoding="utf-8"), filename=str(file)) for name, file in files.items()}
    bound_at_load = {package: _bound_at_load(trees[package]) for package in packages}
    edges: list[Edge] = []
    for name, tree in trees.items():
        edges += _ImportFinder(name, name in packages, files, bound_at_load).edges(tree)
    return ImportGraph(root, files, packages, edges)


def _bound_at_load(tree: ast.Module) -> set[str]:
    """The names a package's __init__ binds as it runs by importing or assigning them."""
    names = set(MODULE_ATTRIBUTES)
    todo: list[ast.AST] = list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).partition(".")[0] for a in node.names)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        todo.extend(ast.iter_child_nodes(node))
    return names


class _ImportFinder(ast.NodeVisitor):
    def __init__(self, module: str, is_package: bool, modules: dict[str, Path],
                 bound_at_load: dict[str, set[str]]) -> None:
        self.module = module
        self.package = module if is_package else module.rpartition(".")[0]
        self.modules = modules
        self.bound_at_load = bound_at_load
        self.out: list[Edge] = []
        self.in_function = 0
        self.computes_names: Optional[bool] = None  # None: never; else whether it does so at load
        self.package_names: dict[str, tuple[str, int, bool]] = {}  # `import P [as name]`: P, line, at load

    def edges(self, tree: ast.Module) -> list[Edge]:
        self.visit(tree)
        attributes: dict[str, set[str]] = {name: set() for name in self.package_names}
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in attributes:
                attributes[node.value.id].add(node.attr)
        for name, (package, line, at_load) in self.package_names.items():
            for attribute in attributes[name] or {"?"}:  # the module itself passed on: any name
                self._from(package, attribute, line, at_load)
        if self.computes_names is not None:
            for node in ast.walk(tree):
                if isinstance(node, ast.Constant) and isinstance(node.value, str) and _MODULE_NAME.match(node.value):
                    named = self._resolve(node.value)
                    if named in self.modules:
                        self._add(named, node.lineno, self.computes_names)
        return self.out

    def visit_FunctionDef(self, node: FunctionNode) -> None:
        self.in_function += 1
        self.generic_visit(node)
        self.in_function -= 1

    visit_AsyncFunctionDef = visit_FunctionDef
    visit_Lambda = visit_FunctionDef

    def visit_If(self, node: ast.If) -> None:
        test = node.test
        if (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
            isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
        ):
            for child in node.orelse:
                self.visit(child)
            return
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if (alias.asname or "." not in alias.name) and alias.name in self.bound_at_load:
                self.package_names[alias.asname or alias.name] = (alias.name, node.lineno, not self.in_function)
            else:
                self._add(alias.name, node.lineno, not self.in_function)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = self._resolve("." * node.level + (node.module or ""))
        for alias in node.names:
            self._from(base, alias.name, node.lineno, not self.in_function)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        called = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        if called in ("import_module", "__import__") and node.args:
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                self._add(self._resolve(first.value), node.lineno, not self.in_function)
            else:
                self.computes_names = bool(self.computes_names) or not self.in_function
        self.generic_visit(node)

    def _from(self, base: str, name: str, line: int, at_load: bool) -> None:
        """`from base import name`, or `base.name` after `import base`."""
        if f"{base}.{name}" in self.modules:
            self._add(f"{base}.{name}", line, at_load)
        elif name in self.bound_at_load.get(base, ()):
            self._add(base, line, at_load, whole=False)
        else:
            self._add(base, line, at_load)

    def _add(self, target: str, line: int, at_load: bool, whole: bool = True) -> None:
        """Edges to what importing `target` runs: it (or its nearest project module above),
        and the __init__ of each package above it that does not hold this module."""
        parts = target.split(".")
        names = (".".join(parts[:n]) for n in range(len(parts), 0, -1))
        known = next((name for name in names if name in self.modules), None)
        if known is None:
            return
        self.out.append(Edge(self.module, known if whole else known + AT_LOAD, line, at_load))
        above = known.split(".")
        for n in range(1, len(above)):
            package = ".".join(above[:n])
            if not (self.module == package or self.module.startswith(package + ".")):
                self.out.append(Edge(self.module, package + AT_LOAD, line, at_load))

    def _resolve(self, name: str) -> str:
        level = len(name) - len(name.lstrip("."))
        if not level:
            return name
        parts = self.package.split(".") if self.package else []
        base = parts[: len(parts) - (level - 1)]
        rest = name[level:]
        return ".".join([*base, rest] if rest else base)


def _strongly_connected(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """Tarjan's algorithm, iterative (a deep chain of imports must not hit the recursion limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[frozenset[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                out.append(frozenset(component))
    return out


def _shortest_loop(start: str, graph: dict[str, set[str]]) -> list[str]:
    came_from: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for child in sorted(graph[node]):
            if child == start:
                path = [node]
                while path[-1] != start:
                    path.append(came_from[path[-1]])
                return [*reversed(path), start]
            if child not in came_from:
                came_from[child] = node
                queue.append(child)
    raise ValueError(f"{start} is in no loop")


# --- the project ------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _project_graph() -> ImportGraph:
    return build_graph(ROOT)


def test_no_module_imports_back_a_module_that_imports_it() -> None:
    graph = _project_graph()
    found = graph.cycles()
    known = set(KNOWN_CYCLES.values())
    problems = [f"import cycle: {graph.describe(c)}" for c in found if c not in known]
    problems += [f"known cycle {name!r} is gone or changed: take it off KNOWN_CYCLES"
                 for name, c in KNOWN_CYCLES.items() if c not in found]
    assert not problems, "\n".join(problems)


def test_the_graph_sees_the_project() -> None:
    """The check reads real edges: an import of each kind is in the graph."""
    graph = _project_graph()
    assert "flowplane.client.core" in graph.targets["flowplane.client [at load]"]  # from .core import ...
    assert "chalicelib.routes.runs" in graph.targets["app"]
    assert "flowplane.flowspec" in graph.targets["flowplane"]  # imported by a computed name
    assert "flowplane.flowspec" not in graph.targets["flowplane [at load]"]  # ... in __getattr__


# --- the check itself, on a tiny tree -----------------------------------------------------


def _graph(tmp_path: Path, files: dict[str, str]) -> ImportGraph:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return build_graph(tmp_path, ["pkg"])


def _cycles(graph: ImportGraph) -> list[list[str]]:
    return [sorted(c) for c in graph.cycles()]


def test_a_cycle_inside_a_function_is_found_and_shown(tmp_path: Path) -> None:
    graph = _graph(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a.py": "from .b import thing\n",
        "pkg/b.py": "def f():\n    from pkg import a\n",
    })
    assert _cycles(graph) == [["pkg.a", "pkg.b"]]
    assert graph.describe(frozenset({"pkg.a", "pkg.b"})) == "pkg.a -> pkg.b (pkg/a.py:1) -> pkg.a (pkg/b.py:2)"


def test_a_chain_without_a_loop_passes(tmp_path: Path) -> None:
    graph = _graph(tmp_path, {
        "pkg/__init__.py": "from .a import x\n",
        "pkg/a.py": "from . import b\nimport pkg.sub.c\n",
        "pkg/b.py": "import json\nfrom typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import x\n",
        "pkg/sub/__init__.py": "",
        "pkg/sub/c.py": "from .. import b\nfrom . import d\n",
        "pkg/sub/d.py": "",
    })
    assert _cycles(graph) == []
    # A sibling package's __init__ runs on the way; the importer's own package does not count.
    assert graph.targets["pkg.a"] == {"pkg.b", "pkg.sub [at load]", "pkg.sub.c"}
    assert graph.targets["pkg.sub.c"] == {"pkg.b", "pkg.sub.d"}


def test_a_name_from_the_own_packages_init_is_an_edge_to_it(tmp_path: Path) -> None:
    graph = _graph(tmp_path, {
        "pkg/__init__.py": "from .a import x\nVERSION = 1\n",
        "pkg/a.py": "from . import VERSION\nx = VERSION\n",
    })
    assert _cycles(graph) == [["pkg [at load]", "pkg.a"]]


def test_a_function_of_a_packages_init_needs_all_of_it(tmp_path: Path) -> None:
    files = {
        "pkg/__init__.py": "VERSION = 1\ndef get():\n    from . import a\n",
        "pkg/a.py": "import pkg\nprint(pkg.VERSION)\n",
    }
    assert _cycles(_graph(tmp_path, files)) == []
    files["pkg/a.py"] = "import pkg\nprint(pkg.VERSION, pkg.get())\n"
    assert _cycles(_graph(tmp_path, files)) == [["pkg", "pkg.a"]]


def test_a_sibling_packages_init_closes_a_cycle(tmp_path: Path) -> None:
    graph = _graph(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a.py": "from pkg.sub.c import y\n",
        "pkg/sub/__init__.py": "from pkg.a import z\n",
        "pkg/sub/c.py": "",
    })
    assert _cycles(graph) == [["pkg.a", "pkg.sub [at load]"]]
    assert graph.describe(frozenset({"pkg.a", "pkg.sub [at load]"})) == (
        "pkg.a -> pkg.sub [at load] (pkg/a.py:1) -> pkg.a (pkg/sub/__init__.py:1)")


def test_a_sibling_packages_init_importing_inside_a_function_is_not_run_on_the_way(tmp_path: Path) -> None:
    graph = _graph(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a.py": "from pkg.sub.c import y\n",
        "pkg/sub/__init__.py": "def f():\n    from pkg.a import z\n",
        "pkg/sub/c.py": "",
    })
    assert _cycles(graph) == []


def test_a_module_importing_itself_and_names_computed_to_import_are_found(tmp_path: Path) -> None:
    graph = _graph(tmp_path, {
        "pkg/__init__.py": "import importlib\nNAMES = {'x': '.a'}\n"
                           "def __getattr__(n):\n    return importlib.import_module(NAMES[n], __name__)\n",
        "pkg/a.py": "import pkg.a\nfrom pkg import x\n",
    })
    assert _cycles(graph) == [["pkg", "pkg.a"], ["pkg.a"]]
