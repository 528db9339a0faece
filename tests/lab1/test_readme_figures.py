"""The docs' measured figures against a real run, so that they cannot go stale silently: the
default pipeline's accuracy line, quoted in the READMEs, the default model's test metrics that
lab1/README.md's data section gives, and the metrics line of its lineage example."""

from __future__ import annotations

import json
import re

import pytest

from tests.conftest import REPO, Project, tracked_files

pytestmark = pytest.mark.e2e  # the default pipeline, full size
DOCS = [REPO / name for name in tracked_files(REPO) if name.endswith(".md")]
LAB1 = REPO / "lab1" / "README.md"


def test_the_docs_quote_what_the_default_pipeline_prints(project: Project):
    done = project.pipeline()
    assert done.returncode == 0, done.stderr[-3000:]
    printed = done.stdout.splitlines()[-1]
    for doc in DOCS:
        for line in doc.read_text().splitlines():
            if "--dataset" in line:
                continue  # another dataset's figure (the CNN's), not the default pipeline's
            for quoted in re.findall(r"Model test accuracy is: \d\.\d{3}", line):
                where = doc.relative_to(REPO)
                assert quoted == printed, f"{where} says {quoted!r}, a run {printed!r}"
    metrics = json.loads((project.root / "reports" / "metrics.json").read_text())["metrics"]
    said = re.search(
        r"default model achieves on the test stations: accuracy (\S+) \(baseline (\S+)\), F1 (\S+)",
        " ".join(LAB1.read_text().split()),
    )
    assert said, "lab1/README.md's data section no longer gives the default model's metrics"
    measured = tuple(f"{metrics[k]:.3f}" for k in ("accuracy", "baseline_accuracy", "f1"))
    assert tuple(value.rstrip(",") for value in said.groups()) == measured
    # The lineage example: `python -m lab1.lineage`'s metrics line, as the default run logged it.
    example = re.search(
        r"^metrics  on test set (\w+): accuracy (\S+), \S+ (\S+), f1 (\S+),", LAB1.read_text(), re.M
    )
    assert example, "lab1/README.md's lineage example no longer shows the metrics line"
    test_digest = json.loads((project.root / "reports" / "metrics.json").read_text())["test_digest"]
    logged = tuple(f"{metrics[k]:.4f}" for k in ("accuracy", "baseline_accuracy", "f1"))
    assert example.group(1) == test_digest
    assert tuple(value.rstrip(",") for value in example.groups()[1:]) == logged
