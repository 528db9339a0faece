"""lab5's notebook: committed with its outputs, runs top to bottom with nbclient in a fresh copy
of the project, writes exactly the committed test modules, and the suite it writes fails when
the model or the data stop matching what it claims."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from lab5.run_notebook import NOTEBOOK, execute
from tests.conftest import REPO, clean_env, copy_project

pytestmark = pytest.mark.integration  # a Jupyter kernel runs the notebook

WRITTEN = ("regression_data.py", "regression_quality.py", "test_regression_quality.py")
PASSED_LINE = "5 passed"


def code_cells(notebook) -> list:
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def text_of(cell) -> str:
    return "".join(out.get("text", "") for out in cell.get("outputs", []))


def pytest_cell(notebook):
    return next(c for c in code_cells(notebook) if "-m pytest regression" in c.source)


def test_the_committed_notebook_has_its_outputs():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
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


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    """A fresh copy of the project without the notebook's files, and the notebook after
    nbclient ran it there."""
    root = copy_project(tmp_path_factory.mktemp("notebook") / "project")
    for name in WRITTEN:
        (root / "lab5" / "regression" / name).unlink()
    return root, execute(root / "lab5" / NOTEBOOK.name)


def test_the_notebook_writes_exactly_the_committed_modules(executed):
    root, _ = executed
    for name in WRITTEN:
        written = (root / "lab5" / "regression" / name).read_bytes()
        committed = (REPO / "lab5" / "regression" / name).read_bytes()
        assert written == committed, f"lab5/regression/{name} differs from what the notebook writes"


def test_the_notebook_runs_the_suite_and_it_passes(executed):
    root, notebook = executed
    result = text_of(pytest_cell(notebook))
    assert PASSED_LINE in result and "failed" not in result, result[-2000:]
    for name in ("clean_a", "clean_b", "clean_c", "noisy"):
        assert (root / "lab5" / "regression" / "data" / f"{name}.csv").exists()


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
def original_model(executed):
    root, _ = executed
    yield
    backup = root / "lab5" / "regression" / "data" / "model.orig"
    if backup.exists():
        backup.replace(backup.with_suffix(".skops"))


def test_a_model_that_fits_the_noisy_data_fails_the_suite(executed, original_model):
    # 1-nearest-neighbour memorises the noisy data (R2 0.97 on it; not 1 because a few
    # temperatures repeat): the check no longer flags the noisy dataset, and the suite must
    # say so.
    import pandas as pd
    from sklearn.neighbors import KNeighborsRegressor

    root, _ = executed
    noisy = pd.read_csv(root / "lab5" / "regression" / "data" / "noisy.csv")
    swap_model(root, KNeighborsRegressor(1).fit(noisy[["celsius"]], noisy["fahrenheit"]))
    done = run_written_suite(root)
    assert done.returncode == 1, done.stdout[-3000:]
    assert (
        "FAILED lab5/regression/test_regression_quality.py::test_the_quality_check_flags_the_noisy"
        in done.stdout
    )
    assert re.search(r"noisy: R2 0\.9\d\d, MAE 0\.\d\d F pass the thresholds", done.stdout)


def test_a_model_with_the_wrong_offset_fails_on_clean_data(executed, original_model):
    import pandas as pd
    from sklearn.linear_model import LinearRegression

    root, _ = executed
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
    done = subprocess.run(
        [sys.executable, "-m", "lab5.run_notebook", "--notebook", str(path)],
        env=clean_env(PYTHONPATH=str(REPO)),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and "cell 1: ZeroDivisionError: division by zero" in errors[0]
    assert path.read_bytes() == before  # a failed run saves nothing
    assert done.stdout == ""


def test_run_notebook_help():
    command = [sys.executable, "-m", "lab5.run_notebook", "--help"]
    done = subprocess.run(
        command, env=clean_env(PYTHONPATH=str(REPO)), capture_output=True, text=True
    )
    assert done.returncode == 0 and "--check" in done.stdout
