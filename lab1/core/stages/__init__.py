"""The pipeline's stages: the list (one source of truth for pipeline.sh, Jenkins, DVC and the
tests) and, one module each, the work of every stage (``run``), which lab1/core/runner.py wraps.

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
