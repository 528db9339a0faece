"""lab5/README.md's commands, walked as a student types them: in a git clone of the project,
one after the other, each as written, and `git status` after each."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.project import REPO, clean_env, copy_project
from tests.test_docs_commands import from_readme, make_targets

README = "lab5/README.md"


def block_commands(heading: str) -> list[str]:
    """The commands of the first shell block under ``heading`` in lab5/README.md, in order,
    collected as tests/test_docs_commands.py collects them (comments dropped, lines joined)."""
    lines = (REPO / README).read_text().splitlines()
    start = lines.index(heading)
    fences = [i for i in range(start, len(lines)) if lines[i].startswith("```")]
    first, last = fences[0] + 1, fences[1] + 1  # 1-based line numbers around the block
    return [
        shown.command
        for shown in from_readme(README, make_targets())
        if shown.source == README and first < int(shown.where.rsplit(":", 1)[1]) < last
    ]


def git_clone(dest: Path) -> Path:
    """A fresh clone of the project at ``dest`` (its files committed once), whose .venv is the
    environment the tests run in."""
    root = copy_project(dest)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(root)]
    for argv in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "clone"]):
        subprocess.run([*git, *argv], check=True, capture_output=True)
    (root / ".venv").symlink_to(sys.prefix)
    # .gitignore's `.venv/` matches a folder, as a student's .venv is; this one is a link.
    with (root / ".git" / "info" / "exclude").open("a") as exclude:
        exclude.write("/.venv\n")
    return root


def git_status(root: Path) -> str:
    """`git status --porcelain`: empty when the checkout is clean (ignored files aside)."""
    done = subprocess.run(
        ["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True, check=True
    )
    return done.stdout


@dataclass(frozen=True)
class Step:
    command: str
    done: subprocess.CompletedProcess
    status: str  # git status --porcelain right after it

    @property
    def output(self) -> str:
        return self.done.stdout + self.done.stderr


def run_as_written(root: Path, command: str, timeout: float = 900, **env: str) -> Step:
    """``command`` typed in a shell at the clone's root (no PYTHONPATH, as in a user's shell)."""
    done = subprocess.run(
        ["bash", "-c", command],
        cwd=root,
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return Step(command, done, git_status(root))
