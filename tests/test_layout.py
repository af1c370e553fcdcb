"""The layout a newcomer reads in a minute: small modules, and imports that run one way
(the library's parts below `gejax.training`, the commands' glue above it)."""

import ast
from pathlib import Path

import gejax

ROOT = Path(gejax.__file__).parent
MAX_LINES = 320


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """The gejax modules `path` imports, anywhere in it (`from gejax import x` counts as
    gejax.x where x is a module)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("gejax")}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("gejax"):
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}
    return out


def _graph() -> dict[str, set[str]]:
    files = {_module(p): p for p in ROOT.rglob("*.py")}
    return {name: {m for m in _imports(p) if m in files} for name, p in files.items()}


def test_no_module_is_over_the_limit():
    long = {str(p.relative_to(ROOT)): n for p in ROOT.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_no_import_runs_back_up_into_training():
    graph = _graph()
    below = {m for name in graph if name.startswith("gejax.training")
             for m in graph[name] if not m.startswith("gejax.training")}
    seen, todo = set(), list(below)
    while todo:  # everything training needs, directly or not, outside itself
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        assert not any(m.startswith("gejax.training") for m in graph[name]), \
            f"{name} is imported by gejax.training and imports it back"
        todo += graph[name]


def test_the_check_sees_an_import_back_up(tmp_path):
    """The walk above finds a back-import: a module that training imports, importing it."""
    path = tmp_path / "m.py"
    path.write_text("from gejax.training import loop\nimport gejax.checkpoint\n")
    assert {"gejax.training", "gejax.training.loop", "gejax.checkpoint"} <= _imports(path)
