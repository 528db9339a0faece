"""`make help` and the README's Tasks table say the same of each task: the same settings
(NAME=value) and the same durations."""

from __future__ import annotations

import re
import subprocess

from tests.project import REPO

SETTING = re.compile(r"\b([A-Z]+)=(\w+)")
SECONDS = re.compile(r"(\d+) s\b")


def help_lines() -> dict[str, str]:
    said = subprocess.run(["make", "-s", "help"], cwd=REPO, capture_output=True, text=True,
                          check=True, timeout=30).stdout  # fmt: skip
    return dict(re.findall(r"^  make (\S+)\s+(.*)$", said, re.MULTILINE))


def readme_rows() -> dict[str, str]:
    text = (REPO / "README.md").read_text()
    return dict(re.findall(r"^\| `make (\S+)` \| (.*) \|$", text, re.MULTILINE))


def test_make_help_and_the_readme_tasks_table_agree():
    helped, rows = help_lines(), readme_rows()
    assert set(rows) <= set(helped), set(rows) - set(helped)
    for task, row in rows.items():
        # Every setting both name has the same value (DATASET=fashion_mnist for the CNN).
        ours, theirs = dict(SETTING.findall(helped[task])), dict(SETTING.findall(row))
        for name in ours.keys() & theirs.keys():
            assert ours[name] == theirs[name], (task, name, ours[name], theirs[name])
        # A duration is the same in both, where both give one.
        if SECONDS.search(helped[task]) and SECONDS.search(row):
            assert SECONDS.findall(helped[task]) == SECONDS.findall(row), task
    assert "DATASET=fashion_mnist" in helped["pipeline"]
    assert SECONDS.findall(helped["simulate"]) == ["10"]
