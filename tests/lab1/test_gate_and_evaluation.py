"""The quality gate and the evaluation metrics: pure functions."""

import json

import numpy as np
import pytest

from lab1.core.evaluation import classification_metrics, grouped_accuracy, plot_confusion_matrix
from lab1.core.gate import Reference, decide, side_by_side
from lab1.core.params import GateParams

RULES = GateParams(min_accuracy=0.9, min_f1=0.8)


def test_first_good_model_is_promoted():
    decision = decide({"accuracy": 0.93, "f1": 0.87}, None, RULES)
    assert decision.passed and "no champion yet" in decision.reason


@pytest.mark.parametrize(
    ("candidate", "reference", "reason"),
    [
        ({"accuracy": 0.85, "f1": 0.9}, None, "accuracy 0.850 < min_accuracy 0.900"),
        ({"accuracy": 0.95, "f1": 0.5}, None, "f1 0.500 < min_f1 0.800"),
        (
            {"accuracy": 0.92, "f1": 0.9},
            Reference(0.94, "champion version 1"),
            "accuracy 0.920 < 0.940 of champion version 1",
        ),
    ],
)
def test_gate_rejects_with_the_reason(candidate, reference, reason):
    decision = decide(candidate, reference, RULES)
    assert not decision.passed and reason in decision.reason and decision.label == "rejected"


def test_a_tie_with_the_champion_passes_and_names_both_numbers_and_the_settings():
    decision = decide({"accuracy": 0.94, "f1": 0.9}, Reference(0.94, "champion version 2"), RULES)
    assert decision.passed
    assert "accuracy 0.940, f1 0.900 pass min_accuracy 0.900, min_f1 0.800" in decision.reason
    assert "(at least as good as champion version 2: 0.940)" in decision.reason


def test_a_refusal_prints_as_many_digits_as_make_its_comparison_true():
    """0.8797 < 0.88 printed at three decimals read "0.880 < min_accuracy 0.880"."""
    rules = GateParams(min_accuracy=0.88, min_f1=0.8)
    decision = decide({"accuracy": 0.8797, "f1": 0.9}, None, rules)
    assert "accuracy 0.8797 < min_accuracy 0.8800" in decision.reason
    champion = Reference(0.8801, "champion version 3")
    decision = decide({"accuracy": 0.88, "f1": 0.79996}, champion, rules)
    assert "f1 0.79996 < min_f1 0.80000" in decision.reason
    assert "accuracy 0.8800 < 0.8801 of champion version 3" in decision.reason


@pytest.mark.parametrize(
    ("numbers", "percent", "printed"),
    [
        ((0.8797, 0.88), False, ("0.8797", "0.8800")),
        ((0.88, 0.88), False, ("0.880", "0.880")),  # equal: alike, at the least precision
        ((0.87, 0.8799, 0.88), False, ("0.8700", "0.8799", "0.8800")),
        ((0.0504, 0.05), True, ("5.04%", "5.00%")),
        ((0.3, 0.25), True, ("30%", "25%")),
        ((0.25, 0.25), True, ("25%", "25%")),
    ],
)
def test_numbers_side_by_side_differ_in_print_as_they_differ(numbers, percent, printed):
    assert side_by_side(*numbers, percent=percent) == printed


@pytest.mark.parametrize("loss", [0.009, 0.001, 1e-5])
def test_a_loss_never_passes_however_small(loss):
    decision = decide({"accuracy": 0.94 - loss, "f1": 0.9}, Reference(0.94, "version 2"), RULES)
    assert not decision.passed and "at least as well as the champion" in decision.reason


def test_a_tie_read_back_from_a_six_decimal_tag_is_a_tie():
    accuracy = 13 / 14  # 0.928571428...; the registry keeps "0.928571"
    decision = decide({"accuracy": accuracy, "f1": 0.9}, Reference(0.928571, "v1"), RULES)
    assert decision.passed
    assert not decide({"accuracy": 0.928571, "f1": 0.9}, Reference(0.928572, "v1"), RULES).passed


def test_a_model_that_never_flags_cannot_pass():
    y = np.array([0] * 70 + [1] * 30)
    metrics = classification_metrics(y, np.zeros(100), 0.5)
    assert metrics["accuracy"] == metrics["baseline_accuracy"] == 0.7
    assert metrics["f1"] == 0.0
    assert not decide(metrics, None, RULES).passed


def test_metrics_and_groups():
    y = np.array([0, 0, 1, 1])
    metrics = classification_metrics(y, np.array([0.1, 0.6, 0.7, 0.9]), 0.5)
    assert metrics["accuracy"] == 0.75 and metrics["recall"] == 1.0 and metrics["roc_auc"] == 1.0
    assert grouped_accuracy(y, np.array([0, 1, 1, 1]), np.array(["a", "a", "b", "b"])) == {
        "a": 0.5,
        "b": 1.0,
    }


def test_confusion_matrix_plot_is_a_png(tmp_path):
    path = tmp_path / "cm.png"
    plot_confusion_matrix(np.array([0, 1, 1]), np.array([0, 1, 0]), ["normal", "faulty"], path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_rejection_says_registered_only_of_a_new_model(caplog):
    """A version gated again under a tighter gate stays registered: its rejection must not say
    "not registered"; a new model's rejection does."""
    from lab1.core.registration import log_decision

    again = {"decision": "rejected", "version": "1", "reason": "f1 0.85 < 0.95"}
    new = {"decision": "rejected", "version": None, "reason": "accuracy 0.920 < 0.929"}
    with caplog.at_level("WARNING"):
        log_decision("m", again)
        log_decision("m", new)
    first, second = (record.getMessage() for record in caplog.records)
    assert "version 1 gated again and rejected" in first and "not registered" not in first
    assert "rejected, not registered" in second


@pytest.mark.parametrize(
    ("before", "verdict"),
    [
        (None, "rejected, not registered; no champion yet"),
        ("2", "rejected, not registered; champion stays version 2"),
    ],
)
def test_the_summary_of_a_rejection_names_the_champion_or_that_there_is_none(
    before, verdict, tmp_path
):
    from lab1.core.report import summary

    (tmp_path / "reports").mkdir()
    decision = {"registered_model": "m", "decision": "rejected", "version": None}
    decision |= {"champion_before": before, "reason": "accuracy 0.8797 < min_accuracy 0.8800"}
    (tmp_path / "reports" / "registration.json").write_text(json.dumps(decision))
    assert summary(tmp_path)[0] == f"decision  {verdict}"
