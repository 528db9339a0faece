"""The code keeps the shape issue 23 asked for (bench/shape.py prints the same figures): each
stage script is its stage and short, reaches its work without string imports, and the library
stays small-moduled and free of import cycles."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from lab1.core.stages import STAGES

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import shape  # noqa: E402  (bench/shape.py: the measurements)


@pytest.mark.parametrize("name", STAGES)
def test_a_stage_script_is_its_stage_in_at_most_120_lines(name):
    script = ROOT / "lab1" / f"{name}.py"
    text = script.read_text()
    assert 40 <= text.count("\n") <= 120
    tree = ast.parse(text)
    # Its work and its MLflow calls are in the script: it opens the stage's run and records.
    assert f'stage.run("{name}", params)' in text
    assert "mlflow.log_params(" in text
    assert any(
        call in text for call in ("mlflow.log_metrics(", "mlflow.set_tags(", "mlflow.log_input(")
    )
    # No string imports on the way from the script to its work.
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    attributes = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    assert not {"importlib", "__import__", "import_module"} & (names | attributes)


def test_no_module_over_350_lines_and_no_function_over_60():
    too_long = []
    for lab in shape.LABS:
        for path in shape.sources(lab):
            text = path.read_text()
            if text.count("\n") > 350:
                too_long.append(f"{path.relative_to(ROOT)}: {text.count(chr(10))} lines")
            for node in ast.walk(ast.parse(text)):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    length = (node.end_lineno or 0) - node.lineno + 1
                    if length > 60:
                        too_long.append(f"{path.relative_to(ROOT)}: {node.name}() {length} lines")
    assert not too_long


def test_the_library_has_no_import_cycle_and_params_imports_nothing_above_it():
    graph = shape.import_graph()
    state: dict[str, int] = {}

    def visit(module: str, path: tuple[str, ...]) -> None:
        state[module] = 1
        for dep in graph[module]:
            assert state.get(dep) != 1, " -> ".join((*path, module, dep))
            if dep not in state:
                visit(dep, (*path, module))
        state[module] = 2

    for module in graph:
        if module not in state:
            visit(module, ())
    assert graph["lab1.core.params"] <= {"lab1.core.params_file", "lab1.core.errors"}
    assert graph["lab1.core.params_file"] <= {"lab1.core.errors"}
