"""No import cycles among pinbench's modules, function-level imports included (bench/import_graph.py)."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
from conftest import load_bench_script

SCRIPT = Path(__file__).resolve().parent.parent / "bench" / "import_graph.py"


def _checker():
    return load_bench_script("import_graph")


def test_pinbench_has_no_import_cycles():
    checker = _checker()
    graph = checker.import_graph(SCRIPT.parent.parent / "pinbench",
                                 {"pinbench.analysis": SCRIPT.parent.parent / "analysis"})
    assert "pinbench.run" in graph and "pinbench.presets" in graph
    assert "pinbench.analysis.report" in graph  # the analysis folder, under its installed name
    assert any(e.target.startswith("pinbench.analysis") for e in graph["pinbench.tasks.inversion.report"])
    cycles = checker.cycles(graph)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(str(e) for e in c) for c in cycles)


@pytest.mark.parametrize("networkx", [True, False])
def test_the_checker_finds_top_level_and_function_level_cycles(tmp_path, monkeypatch, networkx):
    if not networkx:  # its own search when networkx is not installed
        monkeypatch.setitem(sys.modules, "networkx", None)
    checker = _checker()
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from .b import thing\n")
    (package / "b.py").write_text("def f():\n    from .sub.c import other\n")
    (package / "sub" / "__init__.py").write_text("from . import c\n")
    (package / "sub" / "c.py").write_text(textwrap.dedent("""\
        from typing import TYPE_CHECKING
        if TYPE_CHECKING:
            from ..b import f          # not run: no edge
        import pkg.a
        """))
    (package / "d.py").write_text("from .sub import c\nfrom . import a\n")  # no cycle through d
    graph = checker.import_graph(package)
    assert {(e.target, e.lazy) for e in graph["pkg.b"]} == {("pkg.sub.c", True)}
    assert {e.target for e in graph["pkg.sub.c"]} == {"pkg.a"}
    assert {e.target for e in graph["pkg.d"]} == {"pkg.sub.c", "pkg.a"}
    cycles = checker.cycles(graph)
    assert [[e.source for e in c] for c in cycles] == [["pkg.a", "pkg.b", "pkg.sub.c"]]
    assert [e.lazy for e in cycles[0]] == [False, True, False]
    assert checker.strongly_connected(graph) == [["pkg.a", "pkg.b", "pkg.sub.c"]]
