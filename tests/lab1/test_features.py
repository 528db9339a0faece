"""Window features: pure, stateless, climate-independent, and aware of each fault kind."""

import numpy as np
import pytest

from lab1.core.features import (
    FEATURE_NAMES,
    WindowFeatures,
    build_preprocessor,
    extract_windows,
    fill_missing,
    window_columns,
    window_features,
)
from tests.project import preprocessing


def feature(windows, name, rule="interpolate"):
    return window_features(np.atleast_2d(windows), rule)[:, FEATURE_NAMES.index(name)]


def test_columns_and_windows():
    assert window_columns(2) == ["t_m2", "t_m1", "t_0", "t_p1", "t_p2"]
    rows = extract_windows(np.arange(10.0), 2)
    assert rows.shape == (6, 5)
    np.testing.assert_array_equal(rows[0], [0, 1, 2, 3, 4])
    assert extract_windows(np.arange(3.0), 2).shape == (0, 5)


def test_missing_rules():
    row = np.array([[1.0, np.nan, 3.0, np.nan, np.nan]])
    np.testing.assert_allclose(fill_missing(row, "interpolate"), [[1, 2, 3, 3, 3]])
    np.testing.assert_allclose(fill_missing(row, "window_median"), [[1, 2, 3, 2, 2]])
    np.testing.assert_allclose(fill_missing(np.full((1, 3), np.nan), "interpolate"), [[0, 0, 0]])
    with pytest.raises(ValueError, match="missing_rule='zero'"):
        fill_missing(row, "zero")


def test_the_models_copy_of_the_missing_rules_is_params_yamls_choice_list():
    """features.py keeps its own copy (the logged model imports nothing of the project)."""
    from lab1.core import features, params

    assert features.MISSING_RULES == params.MISSING_RULES


def test_features_do_not_depend_on_the_climate():
    rng = np.random.default_rng(0)
    windows = rng.normal(0, 2, size=(50, 15))
    shifted = window_features(windows + 25.0, "interpolate")  # a hot station, same weather
    np.testing.assert_allclose(window_features(windows, "interpolate"), shifted, atol=1e-9)


def test_each_fault_kind_moves_its_feature():
    calm = np.linspace(5, 6, 15)
    spike = calm.copy()
    spike[7] += 12
    assert feature(spike, "abs_dev_from_median")[0] > 10 > feature(calm, "abs_dev_from_median")[0]
    stuck = calm.copy()
    stuck[5:9] = stuck[5]
    assert feature(stuck, "equal_run")[0] >= 2 and feature(calm, "equal_run")[0] == 0
    missing = calm.copy()
    missing[7] = np.nan
    assert feature(missing, "day_missing")[0] == 1 and feature(missing, "n_missing")[0] == 1


def test_transformer_is_stateless_and_checks_width():
    transformer = WindowFeatures(window=2)
    with pytest.raises(ValueError, match=r"expected 5 readings per row .* got shape \(1, 3\)"):
        transformer.fit(np.zeros((1, 3)))
    assert list(transformer.get_feature_names_out()) == list(FEATURE_NAMES)


def test_preprocessor_scales_with_train_statistics_only():
    rng = np.random.default_rng(1)
    train, test = rng.normal(0, 1, (300, 15)), rng.normal(0, 5, (300, 15))
    pre = build_preprocessor(preprocessing(window=7)).fit(train)
    scaled_train, scaled_test = pre.transform(train), pre.transform(test)
    np.testing.assert_allclose(scaled_train.mean(axis=0)[2:], 0, atol=1e-9)
    # The test data is five times noisier; fitted on train only, its spread stays visible.
    assert scaled_test[:, FEATURE_NAMES.index("window_std")].mean() > 3
