"""pipeline.sh's long waits say what they wait for: its with_progress, run as pipeline.sh runs it
(the function itself, taken from the script, with its log helper)."""

from __future__ import annotations

import re
import subprocess

from lab1.core.paths import PATHS


def pipeline_function(name: str) -> str:
    """The text of shell function ``name`` in pipeline.sh."""
    script = (PATHS.root / "pipeline.sh").read_text()
    # A one-line function, or one whose body ends at the first "}" line.
    found = re.search(rf"^{name}\(\) {{(?:[^\n]*}}$|.*?^}}$)", script, re.M | re.S)
    assert found, f"pipeline.sh has no function {name}"
    return found.group(0)


def test_a_long_install_says_every_ten_seconds_that_it_still_works():
    script = "\n".join(
        [
            pipeline_function("log"),
            pipeline_function("with_progress"),
            'with_progress "installing requirements.lock" sleep 11.5; echo "rc=$?"',
            'with_progress "failing" false; echo "rc=$?"',
        ]
    )
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["rc=0", "rc=1"], done.stdout
    beats = [line for line in done.stderr.splitlines() if "still working" in line]
    assert len(beats) == 1, done.stderr
    assert beats[0].endswith("pipeline.sh: installing requirements.lock: still working (10 s)")
