"""The package's layering, read from the source (imports inside functions included): dependencies point down.

- nothing outside lorawiz/cli imports lorawiz.cli (the entry point lorawiz/__main__.py aside);
- no import cycles between modules;
- the pure modules import only the standard library, yaml, pydantic and other pure modules;
- eval/, merge and chat do not import train/; views/ import no training, evaluation or data-loading code.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "lorawiz"
PURE = ("lorawiz.config", "lorawiz.recommend", "lorawiz.fitting", "lorawiz.memory", "lorawiz.throughput",
        "lorawiz.catalog", "lorawiz.presets", "lorawiz.errors", "lorawiz.data.formats", "lorawiz.parallelism",
        "lorawiz.lr_range", "lorawiz.methods", "lorawiz.rules", "lorawiz.lora_size", "lorawiz.run_history",
        "lorawiz.eval.verdicts")
PURE_THIRD_PARTY = {"yaml", "pydantic"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}


def imports_of(name: str) -> list[tuple[str, bool]]:
    """(imported module, under TYPE_CHECKING) for every import statement; `from pkg import sub` names the
    submodule when there is one."""
    tree = ast.parse(MODULES[name].read_text())
    typing_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            typing_only.update(id(child) for child in ast.walk(node))
    found = []
    package = name if MODULES[name].name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, id(node) in typing_only) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base
                                                                                                   else []))
            for alias in node.names:
                full = f"{base}.{alias.name}"
                found.append((full if full in MODULES else base, id(node) in typing_only))
    return found


def lorawiz_imports(name: str) -> set[str]:
    return {target for target, typing in imports_of(name) if target.startswith("lorawiz") and not typing
            and target != name}


def test_only_cli_imports_cli():
    offenders = [(name, target) for name in MODULES if not name.startswith("lorawiz.cli") and name != "lorawiz.__main__"
                 for target in lorawiz_imports(name) if target == "lorawiz.cli" or target.startswith("lorawiz.cli.")]
    assert not offenders


def test_no_import_cycles():
    graph = {name: {t for t in lorawiz_imports(name) if t in MODULES} for name in MODULES}
    # A package's __init__ that only re-exports its own submodules is not a dependency of those submodules.
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                cycles.append(path[path.index(target):] + [target] if target in path else [node, target])
            elif target not in state:
                visit(target, path + [target])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert not cycles, cycles


def _is_pure(name: str) -> bool:
    return any(name == pure or name.startswith(pure + ".") for pure in PURE)


@pytest.mark.parametrize("name", sorted(name for name in MODULES if _is_pure(name)))
def test_pure_modules_import_no_heavy_library(name):
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    for target, typing in imports_of(name):
        top = target.split(".")[0]
        if typing or top in stdlib or top in PURE_THIRD_PARTY:
            continue
        assert top == "lorawiz", f"{name} imports {target}"
        assert _is_pure(target) or target in ("lorawiz", "lorawiz.data.writers"), \
            f"{name} imports {target}, which is not a pure module"


def test_eval_merge_and_chat_do_not_import_train():
    users = [name for name in MODULES if name.startswith(("lorawiz.eval", "lorawiz.export"))
             or name in ("lorawiz.merge", "lorawiz.chat", "lorawiz.models")]
    offenders = [(name, target) for name in users for target in lorawiz_imports(name)
                 if target.startswith("lorawiz.train")]
    assert users and not offenders


def test_views_are_pure_renderers():
    allowed = ("lorawiz.views", "lorawiz.config.schema", "lorawiz.memory", "lorawiz.hardware",
               "lorawiz.eval.metrics", "lorawiz.console", "lorawiz.lr_range")
    offenders = [(name, target) for name in MODULES if name.startswith("lorawiz.views")
                 for target in lorawiz_imports(name) if not target.startswith(allowed)]
    assert not offenders


def test_no_module_over_400_lines_except_data_tables():
    tables = {"lorawiz.catalog", "lorawiz.hardware.specs"}
    long = {name: len(path.read_text().splitlines()) for name, path in MODULES.items() if name not in tables}
    assert not {name: lines for name, lines in long.items() if lines > 400}
