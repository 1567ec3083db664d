"""The package's layout holds: no import cycles (lazy imports inside functions included), no
module over 500 lines, and the heavy libraries stay out of ``quotegen --help``."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "quotegen"


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules ``name`` imports anywhere in its file (a package's own parents
    left out: importing ``quotegen.x`` runs ``quotegen/__init__`` first in any case)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: list[str] = []
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            targets += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package
                for _ in range(node.level - 1):
                    parent = parent.rpartition(".")[0]
                base = f"{parent}.{base}".rstrip(".")
            targets += [base, *(f"{base}.{alias.name}" for alias in node.names)]
    found = set()
    for target in targets:
        while target and target not in modules:
            target = target.rpartition(".")[0]
        if target and target != name and not name.startswith(target + "."):
            found.add(target)
    return found


def test_no_import_cycles() -> None:
    modules = _modules()
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        for imported in sorted(graph[name]):
            assert imported not in path, "import cycle: " + " -> ".join([*path, imported])
            if imported not in done:
                visit(imported, [*path, imported])
        done.add(name)

    for name in sorted(graph):
        visit(name, [name])


def test_no_module_over_500_lines() -> None:
    """The package and the build tooling beside it (modelbuild/, scripts/)."""
    root = PACKAGE.parent
    paths = [*PACKAGE.rglob("*.py"), *(root / "modelbuild").rglob("*.py")]
    paths += (root / "scripts").glob("*.py")
    sizes = {str(p.relative_to(root)): len(p.read_text("utf-8").splitlines()) for p in paths}
    assert max(sizes.values()) <= 500, sorted(sizes.items(), key=lambda kv: -kv[1])[:3]


def test_help_imports_neither_torch_nor_pydantic_models() -> None:
    code = (
        "import sys; from quotegen.cli import app; import typer.main; "
        "typer.main.get_command(app); "
        "heavy = ('torch', 'transformers', 'quotegen.settings'); "
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


#: The layers, lowest first: a module imports only from its own layer or those below it
#: (docs/architecture.md). The package itself (``quotegen.get_model``) sits on the engine.
LAYERS = (
    (
        "quotegen.config",
        "quotegen.errors",
        "quotegen.console",
        "quotegen.text",
        "quotegen.progress",
    ),
    ("quotegen.settings", "quotegen.schemas", "quotegen.inputs", "quotegen.openai.protocol"),
    ("quotegen.loading",),
    ("quotegen.engine", "quotegen.openai.format"),
    ("quotegen.training", "quotegen.jobs", "quotegen.publish", "quotegen"),
    ("quotegen.server", "quotegen.cli", "quotegen.__main__"),
)


def _layer(name: str) -> int:
    best = (-1, -1)  # (length of the matching prefix, layer)
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (name == prefix or name.startswith(prefix + ".")) and len(prefix) > best[0]:
                best = (len(prefix), index)
    assert best[1] >= 0, f"{name} is in no layer: add it to LAYERS"
    return best[1]


def test_no_import_runs_back_up_the_layers() -> None:
    modules = _modules()
    upward = sorted(
        f"{name} -> {imported}"
        for name, path in modules.items()
        for imported in _imports(name, path, modules)
        if _layer(imported) > _layer(name)
    )
    assert not upward, upward
