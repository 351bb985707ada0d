"""The package's import graph: no cycles, imports pointing one way across the layers.

Every module of ``bayes_ssm`` is parsed with :mod:`ast` (nothing is imported); every import,
at module level or inside a function, is an edge. The layers, lowest first::

    kernels  <-  layers  <-  models  <-  inference  <-  evaluation, plotting  <-  cli

(``priors`` sits with ``kernels``: user-unit priors that ``layers`` and ``models`` use; ``data``
sits with ``models``: the input boundary that ``inference`` uses.) A module may import modules
of its own package and of lower layers only. Also: ``kernels`` import neither numpyro nor
pandas, ``kernels``, ``layers`` and ``models`` never import optax (optimisers live in
``inference``), and ``plotting`` never imports JAX. The checkers are tested on planted violations
below, so the test can fail.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "bayes_ssm"

# Top-level part of the package -> its rank (imports may point to an equal-or-lower rank
# only within the same part, and to a strictly lower rank across parts).
RANKS = {
    "kernels": 0,
    "priors": 0,
    "layers": 1,
    "models": 2,
    "data": 2,
    "inference": 3,
    "evaluation": 4,
    "plotting": 4,
    "cli": 5,
}
# Third-party packages a part must not import.
FORBIDDEN = {
    "kernels": ("numpyro", "pandas", "matplotlib", "arviz", "scoringrules", "optax"),
    "layers": ("optax",),
    # models name their SVI schedule by a string (``svi_schedule``); optimisers live in
    # ``inference`` (``inference/schedules.py``)
    "models": ("optax",),
    "plotting": ("jax", "jaxlib", "numpyro"),
}


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def module_files(root: Path = ROOT) -> dict[str, Path]:
    return {module_name(p, root): p for p in sorted(root.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_nodes(tree: ast.AST):
    """``ast.walk`` without the bodies of ``if TYPE_CHECKING:`` (imports for annotations only,
    never executed, so no edge of the import graph)."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                todo.extend(child.orelse)
            else:
                todo.append(child)


def imports_of(source: str, name: str, is_package: bool) -> set[tuple[str, str | None]]:
    """Every import statement anywhere in ``source`` as ``(module, imported name or None)``,
    with relative imports made absolute."""
    found = set()
    package = name if is_package else name.rpartition(".")[0]
    for node in _runtime_nodes(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update((alias.name, None) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.update((base, alias.name) for alias in node.names)
    return found


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """Module -> the package modules it imports (``from pkg import name`` counts as ``pkg.name``
    when that is a module, else as ``pkg``)."""
    files = module_files(root)
    graph = {}
    for name, path in files.items():
        targets = set()
        for module, imported in imports_of(path.read_text(), name, path.name == "__init__.py"):
            full = f"{module}.{imported}"
            targets.add(full if imported is not None and full in files else module)
        graph[name] = {t for t in targets if t in files and t != name}
    return graph


def third_party_imports(root: Path = ROOT) -> dict[str, set[str]]:
    """Module -> the top-level names of the other packages it imports."""
    out = {}
    for name, path in module_files(root).items():
        modules = imports_of(path.read_text(), name, path.name == "__init__.py")
        out[name] = {m.split(".")[0] for m, _ in modules if m.split(".")[0] != "bayes_ssm"}
    return out


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
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
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(cycles)


def part(module: str) -> str | None:
    """The layer part of a module (``bayes_ssm.models.base`` -> ``models``); None for the
    package's own ``__init__`` (the public namespace, which may name anything)."""
    pieces = module.split(".")
    return pieces[1] if len(pieces) > 1 else None


def upward_imports(graph: dict[str, set[str]], ranks=RANKS) -> list[tuple[str, str]]:
    """Edges that leave their part for a part of equal or higher rank."""
    bad = []
    for src, targets in sorted(graph.items()):
        a = part(src)
        if a is None:
            continue
        for dst in sorted(targets):
            b = part(dst)
            if b is None:
                bad.append((src, dst))  # a module importing the public namespace
            elif a != b and ranks[b] >= ranks[a]:
                bad.append((src, dst))
    return bad


def forbidden_imports(third_party: dict[str, set[str]], forbidden=FORBIDDEN):
    return sorted(
        (src, pkg)
        for src, pkgs in third_party.items()
        for pkg in pkgs
        if part(src) in forbidden and pkg in forbidden[part(src)]
    )


# --- the package ---------------------------------------------------------------------------


def test_every_part_has_a_rank():
    parts = {part(m) for m in module_files()} - {None}
    assert parts <= set(RANKS), sorted(parts - set(RANKS))


def test_no_import_cycles():
    assert find_cycles(import_graph()) == []


def test_imports_point_down_the_layers():
    assert upward_imports(import_graph()) == []


def test_kernels_and_plotting_stay_free_of_their_forbidden_packages():
    assert forbidden_imports(third_party_imports()) == []


# --- the checkers catch planted violations -----------------------------------------------


def test_checkers_catch_planted_violations(tmp_path):
    pkg = tmp_path / "bayes_ssm"
    for sub in ("kernels", "models", "inference", "plotting"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "kernels" / "scan.py").write_text("import numpyro\nfrom bayes_ssm.models import base\n")
    (pkg / "models" / "base.py").write_text("from bayes_ssm.kernels import scan\n")
    (pkg / "models" / "fitted.py").write_text("import optax\n")
    (pkg / "inference" / "fit.py").write_text(
        "def save(self):\n    from bayes_ssm.inference import io\n"
    )
    (pkg / "inference" / "io.py").write_text("from .fit import save\n")
    (pkg / "plotting" / "plot.py").write_text("import jax.numpy as jnp\n")
    (pkg / "models" / "typed.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from bayes_ssm.inference import fit\n"
    )
    graph = import_graph(pkg)
    assert graph["bayes_ssm.models.base"] == {"bayes_ssm.kernels.scan"}
    assert graph["bayes_ssm.models.typed"] == set()  # annotations only: no edge
    assert find_cycles(graph) == [
        ["bayes_ssm.inference.fit", "bayes_ssm.inference.io"],
        ["bayes_ssm.kernels.scan", "bayes_ssm.models.base"],
    ]
    assert upward_imports(graph) == [("bayes_ssm.kernels.scan", "bayes_ssm.models.base")]
    assert forbidden_imports(third_party_imports(pkg)) == [
        ("bayes_ssm.kernels.scan", "numpyro"),
        ("bayes_ssm.models.fitted", "optax"),
        ("bayes_ssm.plotting.plot", "jax"),
    ]


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, [["a", "b", "c"]]),
        ({"a": {"a"}}, []),
    ],
)
def test_find_cycles_on_small_graphs(graph, expected):
    assert find_cycles(graph) == expected
