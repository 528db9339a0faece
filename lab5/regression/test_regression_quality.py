"""Prediction quality of the notebook's linear regression on every dataset.

Written by the notebook (lab5/regression_quality.ipynb) with %%writefile and run from it:
    pytest lab5/regression
The suite passes when the model is good on the three clean datasets AND the quality check
flags the noisy one: a model that also "fitted" the noisy data well would make it fail.
"""

from __future__ import annotations

import pytest
import regression_data as data
import regression_quality as quality


@pytest.fixture(scope="module")
def model():
    try:
        return quality.load_model(data.DATA_DIR / "model.skops")
    except (FileNotFoundError, ValueError) as exc:
        pytest.fail(str(exc))  # a failure, never a skip: a missing model is not a pass


@pytest.mark.parametrize("name", data.CLEAN)
def test_good_prediction_on_clean_data(model, name):
    result = quality.assess(model, data.load(name))
    assert result.passed, f"{name}: {'; '.join(result.problems)}"


def test_the_quality_check_flags_the_noisy_data(model):
    result = quality.assess(model, data.load("noisy"))
    assert not result.passed, (
        f"noisy: R2 {result.r2:.3f}, MAE {result.mae:.2f} F pass the thresholds; "
        "the check cannot tell the failing sensor from a good one"
    )
    assert result.mae > 3 * quality.MAX_MAE_F  # far off, not a borderline miss


def test_the_model_learnt_the_true_relation(model):
    # Trained on clean_a only: slope and intercept must be those of F = 1.8 C + 32.
    assert model.coef_[0] == pytest.approx(data.SLOPE, abs=0.02)
    assert model.intercept_ == pytest.approx(data.INTERCEPT, abs=0.2)
