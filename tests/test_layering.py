"""The package is a stack of layers, and imports only run down it (module-level and function-level alike):

    errors, io  <  config  <  layout, records  <  the library  <  tasks  <  pipeline, verify, validate  <  sweep  <  cli

The library is everything else (data, models, distill/, quant/, bench/, reports/, ...). Besides the layers:
no import cycle between modules; no stage imports another stage (stages meet in the run folder, through
compress/layout.py); no task imports another task; outside compress/tasks/ only the registry is imported; no
benchmark imports a stage; function-local imports of compress modules only in cli.py (they keep --help fast).
"""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest

from compress import tasks

ROOT = Path(__file__).resolve().parents[1]
LAYERS = [
    {"compress", "compress.errors", "compress.io"},
    {"compress.config"},
    {"compress.layout", "compress.records"},
    None,  # the library: every module not named in another layer
    {"compress.tasks"},
    {"compress.pipeline", "compress.verify", "compress.validate"},
    {"compress.sweep"},
    {"compress.cli", "compress.__main__"},
]
LIBRARY = LAYERS.index(None)


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer(module: str) -> int:
    """The layer of a module: that of the longest named prefix, else the library's."""
    best, best_len = LIBRARY, -1
    for i, names in enumerate(LAYERS):
        for name in names or ():
            if (module == name or module.startswith(name + ".")) and len(name) > best_len and name != "compress":
                best, best_len = i, len(name)
    return 0 if module == "compress" else best


def imports(root: Path) -> dict[str, list[tuple[str, int, bool]]]:
    """{module: [(imported compress module, line, inside a function)]} for every module under root/compress."""
    graph = {}
    package_root = root
    for path in sorted((root / "compress").rglob("*.py")):
        name = module_name(path, package_root)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        found = []
        local_lines = {n.lineno for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                       for n in ast.walk(f) if isinstance(n, (ast.Import, ast.ImportFrom))}
        for node in ast.walk(tree):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: resolve against this module's package
                    pkg = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                    base = ".".join(pkg[: len(pkg) - node.level + 1] + ([base] if base else []))
                # `from compress import tasks` imports the submodule compress.tasks
                targets = [f"{base}.{a.name}" if _is_module(root, f"{base}.{a.name}") else base for a in node.names]
            for t in targets:
                if t == "compress" or t.startswith("compress."):
                    found.append((t, node.lineno, node.lineno in local_lines))
        graph[name] = found
    return graph


def _is_module(root: Path, dotted: str) -> bool:
    path = root.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def problems(root: Path) -> list[str]:
    graph = imports(root)
    out = []
    for module, found in graph.items():
        for target, line, local in found:
            if layer(target) > layer(module):
                out.append(f"{module}:{line} imports {target}, a higher layer ({layer(target)} > {layer(module)})")
            if local and module not in ("compress.cli",) and target != module:
                out.append(f"{module}:{line} imports {target} inside a function (only cli.py may, for a fast --help)")
            out += _task_problems(module, target, line)
    out += _cycles(graph)
    return out


def _task_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[2] if len(parts) > 2 and parts[:2] == ["compress", "tasks"] else None


def _task_problems(module: str, target: str, line: int) -> list[str]:
    mine, theirs = _task_of(module), _task_of(target)
    if theirs is None:
        return []
    if mine is None:
        return [f"{module}:{line} imports {target}: outside compress/tasks/ only the registry (compress.tasks) is imported"]
    if mine != theirs:
        return [f"{module}:{line} imports {target}: a task imports no other task"]
    stages = {s for t in tasks.names() for s in tasks.get(t).stages}
    if module in stages and target in stages:
        return [f"{module}:{line} imports {target}: a stage imports no other stage (read its files through ctx.layout)"]
    return []


def _cycles(graph: dict[str, list[tuple[str, int, bool]]]) -> list[str]:
    edges = {m: {t for t, _, _ in found if t in graph and t != m} for m, found in graph.items()}
    out, state = [], {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for t in sorted(edges[m]):
            if state.get(t) == 1:
                out.append("import cycle: " + " -> ".join(path[path.index(t):] + [t]))
            elif t not in state:
                visit(t, path + [t])
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m, [m])
    return out


def test_the_package_imports_only_downwards_and_without_cycles():
    assert problems(ROOT) == []


@pytest.mark.parametrize("module, line, expected", [
    ("compress/config/__init__.py", "from compress import pipeline", "a higher layer"),
    ("compress/data.py", "def late():\n    from compress import models\n", "inside a function"),
    ("compress/tasks/classification/bench.py", "from compress.tasks.classification import quantize", "no other stage"),
    ("compress/reports/compare.py", "from compress.tasks.causal_lm import lm", "only the registry"),
    ("compress/models.py", "import compress.students", "import cycle"),
])
def test_an_inserted_wrong_import_is_caught(tmp_path, module, line, expected):
    shutil.copytree(ROOT / "compress", tmp_path / "compress", ignore=shutil.ignore_patterns("__pycache__"))
    target = tmp_path / module
    target.write_text(target.read_text(encoding="utf-8") + "\n" + line + "\n", encoding="utf-8")
    found = problems(tmp_path)
    assert any(expected in p for p in found), found


def test_no_benchmark_imports_a_stage():
    stages = {s for t in tasks.names() for s in tasks.get(t).stages}
    for path in sorted((ROOT / "benchmarks").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                named = {node.module} | {f"{node.module}.{a.name}" for a in node.names}
                assert not named & stages, f"{path.name}:{node.lineno} imports a stage ({sorted(named & stages)})"
