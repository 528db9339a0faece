"""The pipeline's stage list: one source of truth for pipeline.sh, Jenkins, DVC and the tests.
Each stage is its script, lab1/<stage>.py.

``python -m lab1.core.stages`` prints the names, one per line (pipeline.sh reads it). Importing
this package is import-free on purpose, so that this starts in milliseconds.
"""

STAGES = (
    "data_creation",
    "data_preprocessing",
    "model_preparation",
    "model_testing",
    "model_registration",
)
