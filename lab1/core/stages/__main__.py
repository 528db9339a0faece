"""``python -m lab1.core.stages``: print the stage names, one per line (pipeline.sh reads them).
``python -m lab1.core.stages --check NAME``: exit 0 if NAME is a stage, else one line and 2."""

import sys

from lab1.core.errors import EXIT_USAGE, did_you_mean, error_line
from lab1.core.stages import STAGES

if len(sys.argv) == 3 and sys.argv[1] == "--check":
    name = sys.argv[2]
    if name not in STAGES:
        sys.stderr.write(
            error_line(
                "pipeline.sh",
                f"unknown stage {name!r}{did_you_mean(name, STAGES)} (stages: {', '.join(STAGES)})",
            )
        )
        raise SystemExit(EXIT_USAGE)
else:
    sys.stdout.write("\n".join(STAGES) + "\n")
