"""lab5's notebook: committed with its outputs; the README's commands, typed in a fresh clone,
run it top to bottom, write exactly the committed test modules and leave the checkout as it was
(--in-place aside); and the suite it writes fails when the model or the data stop matching what
it claims."""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

from lab5.run_notebook import NOTEBOOK
from tests.conftest import REPO, clean_env, copy_project
from tests.lab5.readme import Step, block_commands, git_clone, run_as_written

pytestmark = pytest.mark.integration  # a Jupyter kernel runs the notebook

WRITTEN = ("regression_data.py", "regression_quality.py", "test_regression_quality.py")
NOTEBOOK_PATH = f"lab5/{NOTEBOOK.name}"
MODULE_PATHS = tuple(f"lab5/regression/{name}" for name in WRITTEN)
PASSED_LINE = "5 passed"


def code_cells(notebook) -> list:
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def text_of(cell) -> str:
    return "".join(out.get("text", "") for out in cell.get("outputs", []))


def pytest_cell(notebook):
    return next(c for c in code_cells(notebook) if "-m pytest regression" in c.source)


def assert_ran_top_to_bottom(notebook) -> None:
    """The outputs of one run, top to bottom, in which the suite passed."""
    cells = code_cells(notebook)
    # Ran top to bottom once: execution counts 1, 2, 3, ... in order, no errors.
    assert [cell.execution_count for cell in cells] == list(range(1, len(cells) + 1))
    for cell in cells:
        assert not [o for o in cell.outputs if o.output_type == "error"], cell.source[:80]
    images = [o for c in cells for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(images) == 2  # the datasets, and the model over them
    result = text_of(pytest_cell(notebook))
    assert PASSED_LINE in result and "failed" not in result, result[-2000:]
    for name in WRITTEN:
        assert any(c.source.startswith(f"%%writefile regression/{name}") for c in cells), name


def test_the_committed_notebook_has_its_outputs():
    assert_ran_top_to_bottom(nbformat.read(NOTEBOOK, as_version=4))


NOTEBOOK_STEPS = {
    # The README's "1. The notebook" block, in its order: what each command must do.
    ".venv/bin/python -m lab5.run_notebook": "runs it; the executed copy goes to reports/lab5/",
    ".venv/bin/python -m pytest lab5/regression": "the suite it wrote, on its data and model",
    ".venv/bin/python -m lab5.run_notebook --in-place": "runs it; saves it with its outputs",
}


@dataclass(frozen=True)
class Walk:
    root: Path
    steps: dict[str, Step]
    mtimes: dict[str, int]  # st_mtime_ns of the notebook and its modules in the fresh clone

    def rewritten(self, relative: str) -> bool:
        return (self.root / relative).stat().st_mtime_ns != self.mtimes[relative]


@pytest.fixture(scope="module")
def walked(tmp_path_factory: pytest.TempPathFactory) -> Walk:
    """lab5/README.md's notebook commands, typed one after the other in a fresh clone."""
    commands = block_commands("## 1. The notebook")
    assert commands == list(NOTEBOOK_STEPS), "the README's notebook block changed: update this"
    root = git_clone(tmp_path_factory.mktemp("notebook") / "project")
    mtimes = {p: (root / p).stat().st_mtime_ns for p in (NOTEBOOK_PATH, *MODULE_PATHS)}
    return Walk(root, {c: run_as_written(root, c) for c in commands}, mtimes)


def executed_copy(walked: Walk) -> Path:
    """The path the default run named on stderr as its executed copy."""
    step = walked.steps[".venv/bin/python -m lab5.run_notebook"]
    named = re.findall(r"the executed copy, with its outputs: (\S+)$", step.done.stderr, re.M)
    assert len(named) == 1, step.done.stderr[-3000:]
    return Path(named[0])


def test_running_the_notebook_leaves_the_checkout_as_it_was(walked):
    step = walked.steps[".venv/bin/python -m lab5.run_notebook"]
    assert step.done.returncode == 0, step.output[-3000:]
    assert step.done.stdout == ""
    assert step.status == "", step.status  # the committed notebook and modules unchanged
    assert executed_copy(walked) == walked.root / "reports" / "lab5" / NOTEBOOK.name


def test_the_notebook_writes_exactly_the_committed_modules(walked):
    # The run rewrote each module (%%writefile), and git saw no change: byte for byte the same.
    assert all(walked.rewritten(path) for path in MODULE_PATHS)
    assert walked.steps[".venv/bin/python -m lab5.run_notebook"].status == ""


def test_the_notebook_runs_the_suite_and_it_catches_the_noisy_data(walked):
    notebook = nbformat.read(executed_copy(walked), as_version=4)
    assert_ran_top_to_bottom(notebook)
    result = text_of(pytest_cell(notebook))
    assert "test_the_quality_check_flags_the_noisy_data PASSED" in result, result[-2000:]
    verdicts = next(c for c in code_cells(notebook) if '"verdict"' in c.source)
    table = verdicts.outputs[0]["data"]["text/plain"]
    rows = {line.split()[0]: line for line in table.splitlines()[1:]}
    assert re.search(r"MAE \d+\.\d\d F > 1\.0; R2 0\.\d+ < 0\.95$", rows["noisy"]), table
    assert all(rows[name].endswith(" good") for name in ("clean_a", "clean_b", "clean_c")), table
    for name in ("clean_a", "clean_b", "clean_c", "noisy"):
        assert (walked.root / "lab5" / "regression" / "data" / f"{name}.csv").exists()


def test_pytest_runs_the_written_suite_after_the_notebook(walked):
    step = walked.steps[".venv/bin/python -m pytest lab5/regression"]
    assert step.done.returncode == 0, step.output[-3000:]
    assert re.search(r"^=+ 5 passed in ", step.done.stdout, re.M), step.done.stdout[-3000:]
    assert step.status == "", step.status


def test_in_place_saves_the_outputs_into_the_notebook_only(walked):
    step = walked.steps[".venv/bin/python -m lab5.run_notebook --in-place"]
    assert step.done.returncode == 0, step.output[-3000:]
    saved = walked.root / NOTEBOOK_PATH
    assert f"saved with its outputs: {saved} (commit it)" in step.done.stderr
    assert walked.rewritten(NOTEBOOK_PATH)
    # Its outputs differ from the committed ones (pytest's timing at least); nothing else moved.
    assert step.status in ("", f" M {NOTEBOOK_PATH}\n"), step.status
    assert_ran_top_to_bottom(nbformat.read(saved, as_version=4))


def run_written_suite(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "lab5/regression", "-p", "no:cacheprovider", "-q"],
        cwd=root,
        env=clean_env(PYTEST_DISABLE_PLUGIN_AUTOLOAD="1"),
        capture_output=True,
        text=True,
        timeout=300,
    )


def swap_model(root: Path, model) -> Path:
    """Replace the notebook's model with ``model``; returns the saved original to restore."""
    path = root / "lab5" / "regression" / "data" / "model.skops"
    backup = path.with_suffix(".orig")
    if not backup.exists():
        path.rename(backup)
    import skops.io

    skops.io.dump(model, path)
    return backup


@pytest.fixture
def original_model(walked):
    yield
    backup = walked.root / "lab5" / "regression" / "data" / "model.orig"
    if backup.exists():
        backup.replace(backup.with_suffix(".skops"))


def test_a_model_that_fits_the_noisy_data_fails_the_suite(walked, original_model):
    # 1-nearest-neighbour memorises the noisy data (R2 0.97 on it; not 1 because a few
    # temperatures repeat): the check no longer flags the noisy dataset, and the suite must
    # say so.
    import pandas as pd
    from sklearn.neighbors import KNeighborsRegressor

    root = walked.root
    noisy = pd.read_csv(root / "lab5" / "regression" / "data" / "noisy.csv")
    swap_model(root, KNeighborsRegressor(1).fit(noisy[["celsius"]], noisy["fahrenheit"]))
    done = run_written_suite(root)
    assert done.returncode == 1, done.stdout[-3000:]
    assert (
        "FAILED lab5/regression/test_regression_quality.py::test_the_quality_check_flags_the_noisy"
        in done.stdout
    )
    assert re.search(r"noisy: R2 0\.9\d\d, MAE 0\.\d\d F pass the thresholds", done.stdout)


def test_a_model_with_the_wrong_offset_fails_on_clean_data(walked, original_model):
    import pandas as pd
    from sklearn.linear_model import LinearRegression

    root = walked.root
    clean = pd.read_csv(root / "lab5" / "regression" / "data" / "clean_a.csv")
    swap_model(root, LinearRegression().fit(clean[["celsius"]], clean["fahrenheit"] + 3.0))
    done = run_written_suite(root)
    assert done.returncode == 1
    for name in ("clean_a", "clean_b", "clean_c"):
        assert re.search(rf"AssertionError: {name}: MAE [23]\.\d\d F > 1\.0", done.stdout), name


def test_the_suite_fails_without_the_notebook_outputs(tmp_path):
    root = copy_project(tmp_path / "project")  # the notebook never ran here: no data, no model
    done = run_written_suite(root)
    assert done.returncode == 1 and "skipped" not in done.stdout
    assert "model.skops: not found; run lab5/regression_quality.ipynb first" in done.stdout


def test_run_notebook_reports_the_failing_cell(tmp_path):
    broken = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell("x = 1"),
            nbformat.v4.new_code_cell("1 / 0"),
        ]
    )
    path = tmp_path / "broken.ipynb"
    nbformat.write(broken, path)
    before = path.read_bytes()
    output = tmp_path / "executed.ipynb"
    command = ["--notebook", str(path), "--output", str(output)]
    done = subprocess.run(
        [sys.executable, "-m", "lab5.run_notebook", *command],
        env=clean_env(PYTHONPATH=str(REPO)),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and "cell 1: ZeroDivisionError: division by zero" in errors[0]
    assert path.read_bytes() == before and not output.exists()  # a failed run saves nothing
    assert done.stdout == ""


def test_run_notebook_help():
    command = [sys.executable, "-m", "lab5.run_notebook", "--help"]
    done = subprocess.run(
        command, env=clean_env(PYTHONPATH=str(REPO)), capture_output=True, text=True
    )
    assert done.returncode == 0 and "--in-place" in done.stdout
