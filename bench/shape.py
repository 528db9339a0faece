"""The code's shape, as issue 23 measures it: lines of the .py files that are not tests per lab,
files over 350 lines, functions over 60, import cycles, and the longest chain of runtime imports
(``if TYPE_CHECKING:`` blocks skipped; imports inside functions counted) from each lab1 script.

    python bench/shape.py
"""

from __future__ import annotations

import ast
import functools
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LABS = ("lab1", "lab2", "lab3", "lab4", "lab5")


def is_test(path: Path) -> bool:
    return path.name.startswith("test_") or path.name == "conftest.py"


def sources(lab: str) -> list[Path]:
    return sorted(p for p in (ROOT / lab).rglob("*.py") if not is_test(p))


def runtime_imports(tree: ast.AST) -> list[ast.ImportFrom | ast.Import]:
    """Import statements that run: those under ``if TYPE_CHECKING:`` do not."""
    found: list[ast.ImportFrom | ast.Import] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for branch in node.orelse:
                visit(branch)
            return
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = {}
    for path in sources("lab1"):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        modules[name] = path
    graph = {}
    for name, path in modules.items():
        deps = set()
        for node in runtime_imports(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    deps.add(full if full in modules else node.module)
            elif isinstance(node, ast.Import):
                deps |= {alias.name for alias in node.names}
        graph[name] = {d for d in deps if d in modules and d != name}
    return graph


def main() -> int:
    for lab in LABS:
        print(f"{lab}: {sum(p.read_text().count(chr(10)) for p in sources(lab))} lines")
    for lab in LABS:
        for path in sources(lab):
            text = path.read_text()
            if (lines := text.count("\n")) > 350:
                print(f"file over 350 lines: {path.relative_to(ROOT)} ({lines})")
            for node in ast.walk(ast.parse(text)):
                if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    continue
                if (length := (node.end_lineno or 0) - node.lineno + 1) > 60:
                    where = path.relative_to(ROOT)
                    print(f"function over 60 lines: {where} {node.name} ({length})")
    graph = import_graph()

    @functools.cache
    def chain(module: str, seen: frozenset[str] = frozenset()) -> tuple[str, ...]:
        if module in seen:
            print(f"import cycle through {module}")
            return ()
        longest = max((chain(d, seen | {module}) for d in graph[module]), key=len, default=())
        return (module, *longest)

    for script in sorted(m for m in graph if m.count(".") == 1):
        layers = chain(script)
        print(f"{len(layers)} layers: " + " -> ".join(m.removeprefix("lab1.core.") for m in layers))
    return 0


if __name__ == "__main__":
    sys.exit(main())
