"""Each backend stands alone: torch_impl imports without JAX, jax_impl without PyTorch.

Each check runs in a fresh interpreter whose import system refuses the other framework, so an
accidental import (even a lazy one reached at import time) fails here.
"""

import subprocess
import sys
import textwrap

import pytest

BLOCKER = textwrap.dedent(
    """
    import sys

    BLOCKED = {blocked!r}

    class Blocker:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"{{name}} is blocked in this test")
            return None

    sys.meta_path.insert(0, Blocker())
    """
)

CASES = {
    "torch_impl": (
        ["jax", "jaxlib", "flax", "optax"],
        """
        import torch, torch_impl
        import torch_impl.ops, torch_impl.models, torch_impl.data, torch_impl.train, torch_impl.teacher
        import twintricks.checks
        assert torch_impl.__all__
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
        assert not loaded, loaded
        print("ok")
        """,
    ),
    "jax_impl": (
        ["torch", "torchvision"],
        """
        import jax, jax_impl
        import jax_impl.ops, jax_impl.models, jax_impl.data, jax_impl.train, jax_impl.teacher
        import twintricks.checks
        assert jax_impl.__all__
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
        assert not loaded, loaded
        print("ok")
        """,
    ),
}


@pytest.mark.parametrize("package", list(CASES))
def test_backend_imports_without_the_other_framework(package):
    blocked, body = CASES[package]
    code = BLOCKER.format(blocked=blocked) + textwrap.dedent(body)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().endswith("ok")


def test_the_blocker_blocks():
    """The harness itself must be able to fail: importing the blocked framework raises."""
    code = BLOCKER.format(blocked=["torch"]) + "import torch\n"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "blocked" in proc.stderr


# ----------------------------------------------------------------------------- the package layers

import ast  # noqa: E402
import pathlib  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
#: Each package may import only the packages of lower layers (and not its sibling backend).
LAYERS = {"twintricks": 0, "torch_impl": 1, "jax_impl": 1, "parity": 2, "twintricks_bench": 3, "twintricks_cli": 4}
MAX_LINES = 1000
#: Files still over the limit, each with the work that splits it. The test fails as soon as one is
#: back under (remove it here then), so the list cannot outlive the split.
OVER_THE_LIMIT: dict = {}  # file -> why it may exceed MAX_LINES until split (none now)


def _modules() -> dict[str, pathlib.Path]:
    out = {}
    for package in LAYERS:
        for path in sorted((ROOT / package).rglob("*.py")):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            out[name.removesuffix(".__init__")] = path
    return out


def import_graph(modules: dict[str, pathlib.Path]) -> dict[str, set[str]]:
    """module → the modules of ours it imports, at module level or inside a function alike (an
    import inside a function is still an import, and still a circle)."""

    def ours(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                targets = [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            edges |= {t for t in map(ours, targets) if t and t != name}
        graph[name] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import circles: strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def _wrong_way(graph):
    top = lambda m: m.split(".")[0]  # noqa: E731
    return sorted(f"{a} imports {b}" for a, bs in graph.items() for b in bs
                  if top(a) != top(b) and LAYERS[top(b)] >= LAYERS[top(a)])


def test_no_import_circle_and_no_upward_import():
    graph = import_graph(_modules())
    assert not cycles(graph), cycles(graph)
    assert not _wrong_way(graph), _wrong_way(graph)


def test_the_import_checks_can_fail():
    graph = {"twintricks.a": {"parity.b"}, "parity.b": {"twintricks.a"}, "torch_impl.c": {"jax_impl.d"}, "jax_impl.d": set()}
    assert cycles(graph) == [["parity.b", "twintricks.a"]]
    assert _wrong_way(graph) == ["torch_impl.c imports jax_impl.d", "twintricks.a imports parity.b"]


def test_no_source_file_over_a_thousand_lines():
    long = {str(p.relative_to(ROOT)): n for p in _modules().values() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    new = {f: n for f, n in long.items() if f not in OVER_THE_LIMIT}
    assert not new, f"split these by concern (at most {MAX_LINES} lines): {new}"
    done = set(OVER_THE_LIMIT) - set(long)
    assert not done, f"{sorted(done)} now at most {MAX_LINES} lines: remove them from OVER_THE_LIMIT"


def test_pyflakes_is_clean():
    import io

    from pyflakes.api import checkRecursive
    from pyflakes.reporter import Reporter

    out = io.StringIO()
    found = checkRecursive([str(ROOT / p) for p in (*LAYERS, "tests")], Reporter(out, out))
    assert not found, out.getvalue()[-3000:]
