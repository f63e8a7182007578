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


# ---- the light commands load no torch ---------------------------------------------------------

LIGHT = """
import contextlib, io, sys
from pinbench.cli import main
for argv in {commands!r}:
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(argv)
        except SystemExit as exc:  # --help
            code = exc.code
    assert code == 0, (argv, code)
print(sorted(m for m in ("torch", "transformers", "ray") if m in sys.modules))
"""


def test_help_listing_and_dry_runs_load_no_torch(tmp_path):
    """`pinbench --help`, `list`, `datasets`, `models` and `sweep --dry-run` read configs, suites
    and data files only: 0.1 to 0.7 CPU-seconds instead of 2 with torch (docs/performance.md)."""
    import subprocess

    from pinbench.registry import METHODS, TASKS

    # each task's and method's fields in the help (a '%' in a field's docstring crashed argparse)
    commands = [["--help"], ["train", "--help"], ["eval", "--help"], ["list"], ["datasets"], ["models"],
                *([command, "--task", task, "--help"] for task in TASKS.names() for command in ("train", "eval")),
                *(["train", "--method", method, "--help"] for method in METHODS.names()),
                *(["sweep", name, "--dry-run"] for name in ("quickstart", "paper-fsc", "paper-tst", "paper-inversion"))]
    proc = subprocess.run([sys.executable, "-c", LIGHT.format(commands=commands)], capture_output=True, text=True,
                          cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def test_each_builtin_config_and_description_is_the_classes_own():
    """The registry names a built-in's config class and reads its description without importing
    the class (registry.py); both must be what the class itself says."""
    from pinbench.registry import METHODS, TASKS, Registry

    for registry in (TASKS, METHODS):
        fresh = Registry(registry.kind, registry._builtin, configs=registry._configs)
        for name in registry.names():
            if name not in registry._builtin:
                continue
            light = fresh.config_class(name), fresh.description(name)
            cls = fresh.get(name)
            assert light[0] is cls.config_class, name
            assert light[1] == " ".join((cls.__doc__ or "").strip().split("\n\n")[0].split()) != "", name
