"""Scoring a fault detector: pure functions of labels, probabilities and groups."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)


def classification_metrics(
    y_true: np.ndarray, proba: np.ndarray, threshold: float
) -> dict[str, float]:
    """Accuracy, precision/recall/F1 of the faulty class, ROC AUC, and the majority-class
    baseline accuracy (what always answering the most common label would score)."""
    y_true = np.asarray(y_true).astype(int)
    y_pred = (np.asarray(proba) >= threshold).astype(int)
    return _metrics(y_true, y_pred, roc_auc_score(y_true, proba), "binary")


def multiclass_metrics(y_true: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """Metrics of a classifier's probability matrix (N, K). Two classes: precision/recall/F1 of
    the second (positive) class, as for the fault detector; more: their macro averages."""
    y_true = np.asarray(y_true).astype(int)
    proba = np.asarray(proba)
    if proba.shape[1] == 2:
        return classification_metrics(y_true, proba[:, 1], 0.5)
    roc_auc = roc_auc_score(y_true, proba, multi_class="ovr", labels=list(range(proba.shape[1])))
    return _metrics(y_true, proba.argmax(axis=1), roc_auc, "macro")


def _metrics(
    y_true: np.ndarray, y_pred: np.ndarray, roc_auc: float, average: str
) -> dict[str, float]:
    """Both kinds' metrics; ``average``: how precision, recall and F1 span the classes."""
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "precision": float(precision_score(y_true, y_pred, average=average, zero_division=0)),
        "recall": float(recall_score(y_true, y_pred, average=average, zero_division=0)),
        "f1": float(f1_score(y_true, y_pred, average=average, zero_division=0)),
        "roc_auc": float(roc_auc),
        "baseline_accuracy": float(np.bincount(y_true).max() / len(y_true)),
    }


def misclassified_grid(
    images: np.ndarray,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    classes: list[str],
    path: Path,
    limit: int = 36,
) -> int:
    """Save a PNG grid of up to ``limit`` misclassified images titled "true -> predicted";
    return how many were drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    wrong = np.flatnonzero(np.asarray(y_true) != np.asarray(y_pred))[:limit]
    cols = 6
    rows = max(1, -(-len(wrong) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.6, rows * 1.8), dpi=100, squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, index in zip(axes.ravel(), wrong, strict=False):
        image = images[index]
        ax.imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap="gray")
        ax.set_title(f"{classes[y_true[index]]}\n-> {classes[y_pred[index]]}", fontsize=7)
    fig.suptitle(f"Misclassified test images ({len(wrong)} shown)")
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)
    return len(wrong)


def grouped_accuracy(
    y_true: np.ndarray, y_pred: np.ndarray, groups: np.ndarray | pd.Series | list[str]
) -> dict[str, float]:
    """Accuracy within each group (station, or fault kind: there it is that kind's recall)."""
    y_true, y_pred, groups = map(np.asarray, (y_true, y_pred, groups))
    return {
        str(g): float(np.mean(y_true[groups == g] == y_pred[groups == g]))
        for g in sorted(set(groups.tolist()))
    }


def plot_confusion_matrix(
    y_true: np.ndarray, y_pred: np.ndarray, labels: list[str], path: Path
) -> None:
    """Save a labelled confusion-matrix heat map as PNG."""
    import matplotlib

    matplotlib.use("Agg")  # no display here, in CI or in Docker
    import matplotlib.pyplot as plt

    matrix = confusion_matrix(y_true, y_pred, labels=list(range(len(labels))))
    fig, ax = plt.subplots(figsize=(4.2, 3.6), dpi=110)
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for (i, j), count in np.ndenumerate(matrix):
        colour = "white" if count > matrix.max() / 2 else "black"
        ax.text(j, i, str(count), ha="center", va="center", color=colour)
    ax.set_title("Confusion matrix (test stations)")
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)
