"""Stage 1/5: data creation.

temperature (default): generates daily temperature readings for several weather stations
(seasonal cycle, weather noise, one much noisier station) with labelled sensor faults: spikes,
stuck readings, drift and missing readings. Some stations go to data/raw/train/, the others to
data/raw/test/, so the model is tested on stations it never saw. Deterministic from the seed.

cifar10, fashion_mnist: reads the images with torchvision's dataset classes (from data_dir,
Debian's package or a one-time download into data/cache), keeps the classes named in params.

Reads:  params.yaml (dataset, data_creation); optionally a CSV of real readings (--csv)
Writes: data/raw/{train,test}/<station>.csv, or data/raw/{train,test}.npz for images, and
        data/raw/manifest.json (dataset, rows, sha256; for images: classes, verified)
"""

from lab1.core import runner
from lab1.core.stages.data_creation import STAGE  # the stage's work: go-to-definition lands there


def main(argv: list[str] | None = None) -> int:
    """Run the stage with ``argv`` (default: the command line); return its exit code."""
    return runner.main(STAGE, __doc__, argv)


if __name__ == "__main__":
    raise SystemExit(runner.main_process(STAGE, __doc__))
