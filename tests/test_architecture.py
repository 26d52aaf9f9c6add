"""The package's shape (docs/ARCHITECTURE.md): layers, no import cycles, no upward imports, stage specs,
no branching on variant names, modules of a readable size."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO

PKG = REPO / "pipelines"

#: Arrows point down only: a module may import its own package and lower layers.
LAYERS: dict[str, int] = {
    "pipelines": 0, "pipelines.errors": 0, "pipelines.config": 0,
    "pipelines.core": 1,
    "pipelines.fairness": 2, "pipelines.variants": 2, "pipelines.beam": 2,
    "pipelines.stages": 3,
    "pipelines.graph": 4,
    "pipelines.report": 5, "pipelines.explore": 5,
    "pipelines.cli": 6, "pipelines.__main__": 7,
}
#: Lower-layer packages a same-layer import may reach (config raises the project's errors).
SAME_LAYER_OK = {("pipelines.config", "pipelines.errors")}


def _modules() -> dict[str, Path]:
    out = {}
    for path in PKG.rglob("*.py"):
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _imports(path: Path, name: str) -> set[str]:
    """Every project module ``path`` imports, at the top or inside functions."""
    found: set[str] = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in MODULES:
                t = t.rpartition(".")[0]
            if t.startswith("pipelines") and t:
                found.add(t)
    found.discard(name)
    return found


GRAPH = {name: _imports(path, name) for name, path in MODULES.items()}


def _owner(module: str) -> str:
    best = max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len)
    return best


def test_every_module_belongs_to_a_layer():
    assert all(_owner(m) for m in MODULES)


def test_no_upward_import():
    bad = []
    for src, targets in GRAPH.items():
        a = _owner(src)
        for dst in targets:
            b = _owner(dst)
            if a == b or (a, b) in SAME_LAYER_OK:
                continue
            if LAYERS[b] >= LAYERS[a]:
                bad.append(f"{src} -> {dst} ({a} layer {LAYERS[a]} imports {b} layer {LAYERS[b]})")
    assert not bad, "\n".join(bad)


def test_config_and_errors_import_nothing_above_them():
    for src, targets in GRAPH.items():
        if _owner(src) in ("pipelines.config", "pipelines.errors"):
            assert {_owner(t) for t in targets} <= {"pipelines", "pipelines.config", "pipelines.errors"}, src


def test_no_import_cycle():
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    assert not cycles, cycles


def test_private_modules_are_imported_only_inside_their_package():
    bad = []
    for src, targets in GRAPH.items():
        for dst in targets:
            parts = dst.split(".")
            private = [i for i, p in enumerate(parts) if p.startswith("_") and p not in ("__main__",)]
            if private:
                owner = ".".join(parts[: private[0]])
                if not (src == owner or src.startswith(owner + ".")):
                    bad.append(f"{src} -> {dst}")
    assert not bad, "\n".join(bad)


def test_every_stage_declares_its_outputs_and_lives_in_its_own_folder():
    from pipelines.graph import STAGES

    for stage in STAGES:
        assert stage.outputs, stage.name
        folder = PKG / "stages" / stage.name
        assert (folder / "spec.py").is_file() and (folder / "run.py").is_file(), stage.name
        assert stage.fn.__module__.startswith(f"pipelines.stages.{stage.name}."), stage.name


def test_no_code_compares_a_variant_name_or_kind():
    from pipelines.config import DEFAULT_VARIANTS, VARIANT_KINDS

    names = {v.name for v in DEFAULT_VARIANTS} | set(VARIANT_KINDS)
    bad = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Compare):
                consts = [c.value for c in [node.left, *node.comparators] if isinstance(c, ast.Constant)]
                if any(isinstance(c, str) and c in names for c in consts):
                    bad.append(f"{name}:{node.lineno}")
    assert not bad, f"comparisons with a variant name or kind: {bad}"


def test_fairlearn_is_used_by_the_evaluation():
    users = [n for n, p in MODULES.items() if "fairlearn" in p.read_text(encoding="utf-8")
             and n.startswith("pipelines.fairness")]
    assert users


@pytest.mark.parametrize("name", sorted(MODULES))
def test_modules_stay_readable(name):
    lines = len(MODULES[name].read_text(encoding="utf-8").splitlines())
    assert lines <= 420, f"{name} has {lines} lines"
