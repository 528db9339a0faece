"""Execute lab5's notebook top to bottom with nbclient.

    .venv/bin/python -m lab5.run_notebook              run it; its executed copy, with the
                                                       outputs, goes to reports/lab5/
    .venv/bin/python -m lab5.run_notebook --in-place   run it and save the outputs into the
                                                       notebook itself (then commit it)

The committed notebook carries the outputs of one run. Every run gives slightly different ones
(pytest's timing at least), so by default the executed copy goes to the git-ignored
reports/lab5/ and the checkout stays as it was; --in-place is for whoever changed the notebook
and commits its new outputs.

The notebook runs in its own folder (lab5/): it writes regression/*.py with %%writefile (the
committed files, byte for byte, unless the notebook was edited), the datasets and the model to
regression/data/ (git-ignored), and runs pytest on regression/. A failing cell saves nothing.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from lab1.core.cli import setup_logging
from lab1.core.io import atomic_path
from lab1.core.paths import PATHS

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
        # One output per stream, with pytest's `\r` progress resolved: what a reader sees,
        # and not split wherever the kernel happened to flush.
        coalesce_streams=True,
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
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--output",
        type=Path,
        help="where the executed copy goes (default: the project's reports/lab5/, same name)",
    )
    where.add_argument(
        "--in-place", action="store_true", help="save the outputs into the notebook itself"
    )
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    args = parser.parse_args(argv)
    setup_logging()
    if args.in_place:
        output = args.notebook
    else:
        output = args.output or PATHS.reports / "lab5" / args.notebook.name
    try:
        notebook = execute(args.notebook, args.timeout)
    except NotebookError as exc:
        logger.error("%s", exc)
        return 1
    import nbformat

    try:
        with atomic_path(output) as tmp:  # a crash never leaves half a notebook
            nbformat.write(notebook, tmp)
    except OSError as exc:
        logger.error("%s: cannot save the executed notebook (%s)", output, exc.strerror or exc)
        return 1
    logger.info("%s: all %d cells ran", args.notebook, len(notebook.cells))
    if args.in_place:
        logger.info("saved with its outputs: %s (commit it)", output)
    else:
        logger.info("the executed copy, with its outputs: %s", output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
