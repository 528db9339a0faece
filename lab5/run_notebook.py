"""Execute lab5's notebook top to bottom with nbclient, as the test command does.

    .venv/bin/python -m lab5.run_notebook            run it and save it with its outputs
    .venv/bin/python -m lab5.run_notebook --check    run it, save nothing (exit 1 if a cell fails)

The notebook runs in its own folder (lab5/): it writes regression/*.py with %%writefile, the
datasets and the model to regression/data/ (git-ignored), and runs pytest on regression/.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from lab1.core.cli import setup_logging
from lab1.core.io import atomic_path

NOTEBOOK = Path(__file__).resolve().parent / "regression_quality.ipynb"
logger = logging.getLogger("lab5.run_notebook")


class NotebookError(Exception):
    """A cell failed or the notebook cannot be read (one line)."""


def execute(path: Path, timeout_s: int = 600):
    """Run every cell of ``path`` in a fresh python3 kernel started in the notebook's folder;
    return the executed notebook (nbformat node). NotebookError names the failing cell."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    try:
        notebook = nbformat.read(path, as_version=4)
    except (OSError, ValueError) as exc:
        raise NotebookError(f"{path}: cannot read the notebook ({exc})") from None
    client = NotebookClient(
        notebook,
        timeout=timeout_s,
        kernel_name="python3",
        record_timing=False,  # timings would change the file on every run
        resources={"metadata": {"path": str(path.parent)}},
    )
    try:
        client.execute()
    except CellExecutionError as exc:
        cell = next((i for i, c in enumerate(notebook.cells) if _failed(c)), None)
        raise NotebookError(f"{path}: cell {cell}: {exc.ename}: {exc.evalue}") from None
    return notebook


def _failed(cell) -> bool:
    return any(out.get("output_type") == "error" for out in cell.get("outputs", []))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--notebook", type=Path, default=NOTEBOOK, help="default: %(default)s")
    parser.add_argument("--check", action="store_true", help="run it but do not save it")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    args = parser.parse_args(argv)
    setup_logging()
    try:
        notebook = execute(args.notebook, args.timeout)
    except NotebookError as exc:
        logger.error("%s", exc)
        return 1
    if not args.check:
        import nbformat

        with atomic_path(args.notebook) as tmp:  # a crash never leaves half a notebook
            nbformat.write(notebook, tmp)
    logger.info(
        "%s: all %d cells ran%s",
        args.notebook,
        len(notebook.cells),
        "" if args.check else "; saved with outputs",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
