"""The drift statistics against independent computations: scipy's two-sample test on the full
samples (the profile keeps only quantiles of the training one), and PSI written out by hand."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats

from lab1.core import profile as profiles
from tests.lab3.conftest import run_monitor
from tests.project import REPO, clean_env


@pytest.mark.parametrize("shift", [0.0, 0.05, 0.6])
@pytest.mark.parametrize("discrete", [False, True])
def test_ks_from_the_profile_is_scipys_on_the_full_training_sample(shift, discrete):
    rng = np.random.default_rng(3)
    train = rng.normal(0, 1, 6000)
    served = rng.normal(shift, 1, 300)
    if discrete:  # a count with ties, like n_missing
        train, served = np.round(train * 2), np.round(served * 2)
    statistic, p_value = profiles.ks(profiles.describe(train), served)
    full = stats.ks_2samp(train, served, method="asymp")
    # The profile stands for the sample by QUANTILE_LEVELS quantiles: the statistic is off by
    # at most one quantile step, and the p-value moves with it (its log, at most by ~1.5 here).
    assert statistic == pytest.approx(full.statistic, abs=1 / profiles.QUANTILE_LEVELS + 1e-9)
    assert math.log10(p_value) == pytest.approx(math.log10(full.pvalue), abs=0.6)
    assert (p_value < 0.001) == (full.pvalue < 0.001) == (shift == 0.6)


def psi_by_hand(train: np.ndarray, served: np.ndarray) -> float:
    """Deciles of the training sample as bins (value on an edge: the bin above), shares floored
    at 1e-4, sum of (served - training) x ln(served / training)."""
    edges = np.percentile(train, [10, 20, 30, 40, 50, 60, 70, 80, 90])

    def shares(values: np.ndarray) -> list[float]:
        bins = [sum(v >= e for e in edges) for v in values]
        return [max(bins.count(b) / len(values), 1e-4) for b in range(10)]

    return sum(
        (s - t) * math.log(s / t) for t, s in zip(shares(train), shares(served), strict=True)
    )


@pytest.mark.parametrize("scale", [1.0, 1.3, 3.0])
def test_psi_is_the_hand_computation(scale):
    rng = np.random.default_rng(4)
    train, served = rng.gamma(2.0, 1.0, 4000), rng.gamma(2.0, scale, 500)
    assert profiles.psi(profiles.describe(train), served) == pytest.approx(
        psi_by_hand(train, served), rel=1e-9, abs=1e-12
    )


def test_psi_of_a_textbook_case():
    reference = {"edges": [1.0, 2.0, 3.0], "shares": [0.25] * 4}
    served = np.repeat([0.5, 1.5, 2.5, 3.5], [10, 20, 30, 40])  # shares .1 .2 .3 .4
    expected = sum((s - 0.25) * math.log(s / 0.25) for s in (0.1, 0.2, 0.3, 0.4))
    assert profiles.psi(reference, served) == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(0.2282, abs=1e-4)


def test_a_flag_gets_one_bin_per_value():
    flag = np.array([0] * 90 + [1] * 10, float)
    described = profiles.describe(flag)
    assert described["edges"] == [0.5] and described["shares"] == [0.9, 0.1]
    assert profiles.psi(described, flag) == 0.0


def test_the_profile_holds_no_training_rows():
    rng = np.random.default_rng(5)
    windows = rng.normal(10, 3, size=(5000, 15))
    built = profiles.build(windows, rng.integers(0, 2, 5000), rng.random(5000), {
        "window": 7, "missing_rule": "interpolate"})  # fmt: skip
    sizes = {len(m["quantiles"]) for m in built["measures"].values()}
    assert sizes == {profiles.QUANTILE_LEVELS}  # a fixed size, whatever the training set's


def test_bad_input_is_one_line_naming_what_is_wrong(tmp_path):
    log = tmp_path / "log"
    log.mkdir()
    line = (
        '{"time": "2026-12-01T03:20:00.123Z", "request_id": "r1", "model": "m", "version": "1", '
        '"columns": ["t_0"], "inputs": [[1.0]], "classes": ["normal", "faulty"], '
        '"probabilities": [[0.9, 0.1]], "labels": ["normal"]}\n'
    )
    (log / "predictions-20261201T032000Z.jsonl").write_text(line)
    labels = tmp_path / "labels.csv"
    labels.write_text("request_id,row,label\nr1,0,broken\n")
    window = ["--since", "2026-12-01T00:00", "--until", "2026-12-02T00:00"]
    cases = {
        "bad label": (["--log", str(log), "--labels", str(labels), *window], 1,
                      f"{labels}:2: label 'broken'"),
        "empty window": (["--log", str(log), "--since", "2025-01-01", "--until",
                          "2025-01-02"], 1, f"{log}: no logged predictions between 2025-01-01"),
        "bad time": (["--since", "last tuesday"], 2, "--since: invalid"),
    }  # fmt: skip
    for name, (args, code, words) in cases.items():
        done = run_monitor(*args)
        assert done.returncode == code, (name, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and words in lines[0], (name, done.stderr)
        assert done.stdout == "" and "Traceback" not in done.stderr


def test_an_unanswering_tracking_server_is_named_without_its_password(tmp_path):
    """MLFLOW_TRACKING_URI=http://user:password@host: the monitor's one line hides the password."""
    from tests.loopback import free_port

    log = tmp_path / "log"
    log.mkdir()
    (log / "predictions-20261201T032000Z.jsonl").write_text(
        '{"time": "2026-12-01T03:20:00.123Z", "request_id": "r1", "model": "m", "version": "1", '
        '"columns": ["t_0"], "inputs": [[1.0]], "classes": ["normal", "faulty"], '
        '"probabilities": [[0.9, 0.1]], "labels": ["normal"]}\n'
    )
    port = free_port()
    uri = f"http://admin:se@cret@127.0.0.1:{port}"
    done = subprocess.run(
        [sys.executable, "-m", "lab3.monitor", "--log", str(log), "--since", "2026-12-01T00:00",
         "--until", "2026-12-02T00:00"],
        cwd=REPO,
        env=clean_env(PYTHONPATH=str(REPO), MLFLOW_TRACKING_URI=uri),
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert f"http://***@127.0.0.1:{port}: the tracking server does not answer" in done.stderr
    assert "cret" not in done.stderr + done.stdout and "admin" not in done.stderr, done.stderr
