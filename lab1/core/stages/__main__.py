"""Print the stage names, one per line (pipeline.sh reads them)."""

import sys

from lab1.core.stages import STAGES

sys.stdout.write("\n".join(STAGES) + "\n")
