"""Estimators by name. scikit-learn classifiers here; the CNN joins in its own module."""

from __future__ import annotations

from sklearn.base import ClassifierMixin
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from lab1.core.params import ModelPreparationParams


def build_estimator(params: ModelPreparationParams) -> ClassifierMixin:
    """An unfitted classifier named by ``params.estimator`` with its section's hyper-parameters."""
    hyper = params.estimator_params()
    if params.estimator == "logistic_regression":
        return LogisticRegression(**hyper, random_state=params.seed)
    if params.estimator == "random_forest":
        # n_jobs=1: the stages are measured on 2 cores and joblib's worker start-up costs more
        # than it saves on a few thousand rows.
        return RandomForestClassifier(**hyper, random_state=params.seed, n_jobs=1)
    if params.estimator == "hist_gradient_boosting":
        return HistGradientBoostingClassifier(
            **hyper, random_state=params.seed, early_stopping=False
        )
    raise ValueError(f"unknown estimator {params.estimator!r}")  # params validation stops this
