"""What a monitoring run tells its reader: what moved, how much it matters (quality when labels
say it, "quality unknown" when none do) and the next step, in the command's last line, the
report and the MLflow run's description; and --retrain that would only remake the same model."""

from __future__ import annotations

import logging
from html import escape

import numpy as np
import pytest

from lab1.core.params import GateParams, load_params
from lab3.monitor import __main__ as monitor_cli
from lab3.monitor import checks, publish, report, traffic
from tests.lab3.test_monitor_log import COLUMNS, gate, profile
from tests.project import REPO

ROWS = 300


def moved_traffic() -> traffic.Traffic:
    """Readings far more variable than the profile's: most measures move."""
    rng = np.random.default_rng(3)
    inputs = rng.normal(10, 15, (ROWS, 15)).cumsum(axis=1) / 4
    keys = [(f"r{i // 7}", i % 7) for i in range(ROWS)]
    probabilities = rng.random(ROWS)
    return traffic.Traffic("m", "1", COLUMNS, keys, inputs, probabilities,
                           (probabilities > 0.5).astype(int), 0)  # fmt: skip


def judged(labels: str | None, tested: float | None = 0.929) -> checks.Result:
    served = moved_traffic()
    given = None
    if labels is not None:  # "right": every answer was right; "wrong": every one was wrong
        truth = served.predicted if labels == "right" else 1 - served.predicted
        pairs = zip(served.keys, truth, strict=True)
        given = {key: (int(t), "stuck" if t else "") for key, t in pairs}
    settings = load_params(REPO / "params.yaml").monitoring
    return checks.run_checks(served, profile(), settings, gate(), given, tested)


def test_without_labels_an_alarm_says_quality_is_unknown_and_to_collect_labels():
    result = judged(None)
    assert result.alarms and "measures moved" in result.alarms[0]
    line = result.verdict()
    assert line.startswith("ALARM: the inputs drifted")
    assert "No labels: quality unknown" in line
    assert "Next: collect labels" in line and "--labels FILE" in line


def test_with_labels_and_quality_held_it_says_so_and_to_accept_not_retrain():
    result = judged("right")
    line = result.verdict()
    assert "Quality held: accuracy 1.000, F1 1.000 on 300 labelled rows" in line
    assert "(test accuracy when registered: 0.929)" in line
    assert "nothing to retrain for" in line and "new normal" in line


def test_with_labels_and_quality_fallen_it_says_which_data_to_retrain_on():
    line = judged("wrong", tested=None).verdict()
    assert "Quality fell: accuracy 0.000" in line and "surely under" in line
    assert "--retrain -- -S data_creation.temperature.csv_path=FILE" in line
    assert "test accuracy when registered" not in line  # a version without the tag


def test_quality_near_the_gate_prints_digits_enough_and_names_only_what_fell():
    """0.8797 against a minimum of 0.88 at three decimals read "0.880, surely under 0.880"; and
    the F1, well above its minimum, is not said to be under it."""
    result = judged(None)
    settings = load_params(REPO / "params.yaml").monitoring
    floors = GateParams(min_accuracy=0.88, min_f1=0.85)
    result.quality = {"accuracy": 0.8797, "accuracy_high": 0.8799, "f1": 0.95, "f1_high": 0.97}
    alarm = checks.alarms(result, settings, floors)[-1]
    assert alarm.startswith(
        "accuracy on served traffic 0.8797, surely under 0.8800 (95 % interval up to 0.8799"
    )
    matters, _next = checks.advise(result, settings, floors)
    assert matters.startswith("quality fell: accuracy 0.8797, F1 0.950 on ")
    assert matters.endswith("surely under the gate's min_accuracy 0.8800")
    result.quality |= {"accuracy": 0.88, "accuracy_high": 0.91}  # a tie holds
    matters, _next = checks.advise(result, settings, floors)
    assert "accuracy 0.880, F1 0.950" in matters
    assert matters.endswith("at or above the gate's min_accuracy 0.880, min_f1 0.850")


@pytest.mark.parametrize("labels", [None, "right", "wrong"])
def test_the_report_and_the_runs_description_carry_the_whole_verdict(labels, tmp_path):
    result = judged(labels)
    page = report.render(result, "t", "w", "l", {})
    assert "Look at this model" not in page
    assert f"<b>How much it matters:</b> {escape(result.matters)}." in page
    assert f"<b>Next step:</b> {escape(result.next_step)}." in page
    note = publish.description(result, tmp_path / "r.html")
    assert note.startswith("**Alarm.**") and result.matters in note and result.next_step in note
    assert publish.short_verdict(result).startswith("ALARM, ")


def test_served_quality_is_named_apart_from_the_pipelines_test_metrics():
    figures = judged("right").metrics()
    assert {"served_accuracy", "served_f1", "served_recall_stuck"} <= figures.keys()
    assert not {"accuracy", "f1", "recall_stuck"} & figures.keys()


def test_retrain_without_new_data_does_not_remake_the_same_model(monkeypatch, caplog):
    ran = []
    spy = lambda command, **_: ran.append(command) or 0  # noqa: E731 (the pipeline: not run here)
    monkeypatch.setattr(monitor_cli.subprocess, "call", spy)
    monkeypatch.delenv("MLOPS_OVERRIDES", raising=False)
    with caplog.at_level(logging.WARNING, "lab3.monitor"):
        monitor_cli.retrain(["-S", "model_preparation.n_estimators=50"], "4")
    assert ran == []
    said = caplog.text
    assert "not retraining" in said and "data version 4 was trained on" in said
    assert "-S data_creation.temperature.csv_path=FILE" in said
    # With other data it runs the pipeline, given by the command line or MLOPS_OVERRIDES.
    monitor_cli.retrain(["-S", "data_creation.seed=7"], "4")
    monkeypatch.setenv("MLOPS_OVERRIDES", "data_creation.temperature.csv_path=/tmp/x.csv")
    monitor_cli.retrain([], "4")
    assert [command[2:] for command in ran] == [["-S", "data_creation.seed=7"], []]
