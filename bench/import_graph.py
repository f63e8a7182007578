"""The import graph of pinbench's modules, and its cycles.

Every ``import`` / ``from ... import`` statement of a module under ``pinbench/`` is an edge to the
pinbench module it names, at the top of the file or inside a function: a function-level import is
still a dependency, it only runs later (and a circle of them is one refactoring away from an
ImportError). ``from .x import name`` points at the submodule ``x.name`` when that is a module, at
``x`` otherwise. Not edges: a package's implicit import of its parent packages (always initialised
first), imports under ``if TYPE_CHECKING:``, and ``importlib.import_module`` strings (the
registries' lazy ``"module:Class"`` built-ins).

Usage: python bench/import_graph.py [--root pinbench] [--map pinbench.analysis=analysis] [--edges]
Prints every cycle (each edge with its file line and whether it is top-level or lazy) and exits 1
if there is one; ``tests/test_import_graph.py`` runs it.
"""

from __future__ import annotations

import argparse
import ast
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    line: int
    lazy: bool  # inside a function (runs when called, not at import)

    def __str__(self) -> str:
        return f"{self.source} -> {self.target} (line {self.line}, {'function-level' if self.lazy else 'top-level'})"


def modules_of(root: Path, name: str | None = None) -> dict[str, Path]:
    """Dotted module name -> file, for every .py under ``root`` (a package directory installed as
    ``name``, by default the directory's own name)."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = [name or root.name, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST):
    """(node, inside a function) for every import statement, skipping ``if TYPE_CHECKING:`` blocks."""
    def visit(node, lazy):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _type_checking(child.test):
                for other in child.orelse:
                    yield from visit(ast.Module(body=[other], type_ignores=[]), lazy)
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                yield child, lazy
            yield from visit(child, lazy or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))
    yield from visit(tree, False)


def edges_of(module: str, path: Path, modules: dict[str, Path]) -> list[Edge]:
    is_package = path.name == "__init__.py"
    package = module.split(".") if is_package else module.split(".")[:-1]
    out = []
    for node, lazy in _imports(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        targets = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            if node.level:
                base = package[:len(package) - (node.level - 1)] if node.level > 1 else package
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                targets.append(sub if sub in modules else target)
        for target in targets:
            # `import pinbench.a.b` names pinbench.a.b; keep the longest known module prefix
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != module:
                out.append(Edge(module, target, node.lineno, lazy))
    return out


def import_graph(root: Path, mapped: dict[str, Path] | None = None) -> dict[str, list[Edge]]:
    """Module -> its edges to other modules of the package; ``mapped`` adds folders installed under
    another name (pyproject's package-dir: the checkout's analysis/ is pinbench.analysis)."""
    modules = modules_of(root)
    for name, folder in (mapped or {}).items():
        modules.update(modules_of(folder, name))
    return {m: edges_of(m, p, modules) for m, p in modules.items()}


def strongly_connected(graph: dict[str, list[Edge]]) -> list[list[str]]:
    """Tarjan's components of more than one module (each a set of modules that import each other)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []
    counter = 0

    def connect(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted({e.target for e in graph.get(v, [])}):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(graph) + 100))
    for v in sorted(graph):
        if v not in index:
            connect(v)
    return sorted(components)


def cycles(graph: dict[str, list[Edge]], limit: int = 50) -> list[list[Edge]]:
    """Elementary cycles (up to ``limit``), each as its edges: networkx's ``simple_cycles`` when it
    is installed, else one shortest cycle through each module of each strongly connected component."""
    first_edge = {}
    for source, edges in graph.items():
        for e in sorted(edges, key=lambda e: (e.lazy, e.line)):  # a top-level edge shows first
            first_edge.setdefault((source, e.target), e)
    found: list[list[str]] = []
    try:
        import networkx as nx

        g = nx.DiGraph(list(first_edge))
        for cycle in nx.simple_cycles(g):
            found.append(cycle)
            if len(found) >= limit:
                break
    except ImportError:
        for component in strongly_connected(graph):
            members = set(component)
            for start in component:
                # BFS from start back to start inside the component
                parent, frontier, done = {start: None}, [start], None
                while frontier and done is None:
                    nxt = []
                    for v in frontier:
                        for w in sorted({e.target for e in graph[v]} & members):
                            if w == start:
                                done = v
                                break
                            if w not in parent:
                                parent[w] = v
                                nxt.append(w)
                        if done is not None:
                            break
                    frontier = nxt
                path, v = [], done
                while v is not None:
                    path.append(v)
                    v = parent[v]
                cycle = path[::-1]
                if sorted(cycle) not in [sorted(c) for c in found]:
                    found.append(cycle)
    out = []
    for cycle in found:
        i = cycle.index(min(cycle))  # start each at its smallest module, for a stable listing
        cycle = cycle[i:] + cycle[:i]
        out.append([first_edge[(a, b)] for a, b in zip(cycle, cycle[1:] + cycle[:1])])
    return sorted(out, key=lambda c: [e.source for e in c])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=str(Path(__file__).resolve().parent.parent / "pinbench"),
                        help="the package directory (default: this checkout's pinbench/)")
    parser.add_argument("--map", action="append", default=None, metavar="PACKAGE=DIR",
                        help="a folder installed as PACKAGE (default: pinbench.analysis=analysis/ beside --root)")
    parser.add_argument("--edges", action="store_true", help="also print every edge")
    args = parser.parse_args(argv)
    root = Path(args.root)
    if args.map is None:
        analysis = root.parent / "analysis"
        mapped = {"pinbench.analysis": analysis} if analysis.is_dir() else {}
    else:
        mapped = {k: Path(v) for k, _, v in (m.partition("=") for m in args.map)}
    graph = import_graph(root, mapped)
    n_edges = sum(len({e.target for e in edges}) for edges in graph.values())
    lazy = sum(1 for edges in graph.values() for e in edges if e.lazy)
    print(f"{len(graph)} modules, {n_edges} module-to-module imports ({lazy} import statements inside functions)")
    if args.edges:
        for edges in graph.values():
            for e in edges:
                print(f"  {e}")
    found = cycles(graph)
    if not found:
        print("no import cycles")
        return 0
    print(f"{len(found)} import cycle(s):")
    for cycle in found:
        print("  " + " -> ".join([e.source for e in cycle] + [cycle[0].source]))
        for e in cycle:
            print(f"      {e}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
