"""The library the stage scripts share.

Kept import-light on purpose: importing ``lab1.core`` must not pull in MLflow, pandas or
scikit-learn, so that tiny helpers (``python -m lab1.core.report``) start in milliseconds.
"""
