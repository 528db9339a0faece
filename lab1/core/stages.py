"""The pipeline's stage list: one source of truth for pipeline.sh, Jenkins, DVC and the tests.

``python -m lab1.core.stages`` prints the names, one per line (pipeline.sh reads it).
Deliberately import-free so that it starts in milliseconds.
"""

STAGES = (
    "data_creation",
    "data_preprocessing",
    "model_preparation",
    "model_testing",
    "model_registration",
)

if __name__ == "__main__":
    import sys

    sys.stdout.write("\n".join(STAGES) + "\n")
