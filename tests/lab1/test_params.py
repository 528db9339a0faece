"""params.yaml loading: typed, validated, overridable, one-line errors."""

from pathlib import Path

import pytest
import yaml

from lab1.core.errors import ParamsError, UsageError
from lab1.core.params import Params, load_params
from lab1.core.paths import PATHS


def test_repo_params_load_and_hash_is_stable():
    params = load_params(PATHS.params)
    assert isinstance(params, Params)
    assert params.dataset == "temperature"
    assert params.digest() == load_params(PATHS.params).digest()
    assert params.experiment_name == "lab1-temperature"


def test_override_changes_value_and_hash():
    base = load_params(PATHS.params)
    changed = load_params(PATHS.params, ["model_preparation.seed=7"])
    assert changed.model_preparation.seed == 7
    assert changed.digest() != base.digest()


def test_override_parses_yaml_values():
    params = load_params(
        PATHS.params,
        [
            "model_preparation.random_forest.max_depth=null",
            "data_creation.temperature.test_stations=[moscow]",
            "model_registration.temperature.min_accuracy=1",  # an int for a float is fine
        ],
    )
    assert params.model_preparation.random_forest.max_depth is None
    assert params.data_creation.temperature.test_stations == ["moscow"]
    assert params.gate.min_accuracy == 1.0


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model_preparation.seed=x", r"-S model_preparation\.seed: 'x' must be int"),
        ("model_preparation.seed=true", r"-S model_preparation\.seed: True must be int"),
        (
            "model_preparation.sed=1",
            r"no key 'model_preparation\.sed' \(did you mean 'seed'\?\) \(known: cnn, estimator",
        ),
        ("nosuch.key=1", r"no key 'nosuch'"),
        ("dataset=mnist", r"-S dataset: 'mnist' is not one of: temperature, cifar10"),
        ("model_preparation.estimator=svm", r"estimator: 'svm' is not one of"),
        ("data_creation.temperature.stations=moscow", r"stations: 'moscow' must be a list"),
        ("model_preparation.seed", r"expected section\.key=value"),
    ],
)
def test_bad_override_is_one_clear_line_and_a_usage_error(override, message):
    with pytest.raises(UsageError, match=message) as caught:  # a command-line mistake: exit 2
        load_params(PATHS.params, [override])
    assert "\n" not in str(caught.value)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(text)
    return path


def test_unknown_key_in_file_names_file_and_key(tmp_path):
    data = yaml.safe_load(PATHS.params.read_text())
    data["model_testing"]["treshold"] = 1  # a misspelt key beside the right one
    path = write(tmp_path, yaml.safe_dump(data))
    match = rf"{path}: model_testing\.treshold: unknown key \(did you mean 'threshold'\?\)"
    with pytest.raises(ParamsError, match=match):
        load_params(path)


def test_missing_key_in_file(tmp_path):
    data = yaml.safe_load(PATHS.params.read_text())
    data["model_testing"] = None  # its only key deleted
    path = write(tmp_path, yaml.safe_dump(data))
    with pytest.raises(ParamsError, match=r"model_testing: must be a mapping, got None"):
        load_params(path)


def test_garbled_yaml_and_missing_file(tmp_path):
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(write(tmp_path, "dataset: [unclosed"))
    with pytest.raises(ParamsError, match="params file not found"):
        load_params(tmp_path / "nope.yaml")


def test_the_experiment_name_command_prints_params_yaml_s(capsys, tmp_path):
    """`python -m lab1.core.cli --experiment-name` (the Makefile's mlflow-run): the name, or
    one ERROR line naming the file and exit 1 for a broken params.yaml."""
    from lab1.core.cli import check_main
    from lab1.core.paths import project_at

    assert check_main(["--experiment-name"]) == 0
    assert capsys.readouterr().out == "lab1-temperature\n"
    assert check_main(["--experiment-name", "-S", "dataset=cifar10"]) == 0
    assert capsys.readouterr().out == "lab1-cifar10\n"
    (tmp_path / "params.yaml").write_text("dataset: [\n")
    with project_at(tmp_path):
        assert check_main(["--experiment-name"]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and "params.yaml: not valid YAML" in captured.err
    assert len(captured.err.strip().splitlines()) == 1


def test_the_resolved_params_name_the_real_experiment_and_model(tmp_path):
    import yaml

    params = load_params(PATHS.params, ["dataset=fashion_mnist"])
    resolved = yaml.safe_load(params.resolved_yaml())
    assert resolved["tracking"]["experiment"] == "lab1-fashion_mnist"
    assert resolved["tracking"]["registered_model"] == "fashion_mnist-classifier"
    # Still a params file: it loads back to the same params.
    (tmp_path / "params.yaml").write_text(params.resolved_yaml())
    assert load_params(tmp_path / "params.yaml").experiment_name == params.experiment_name
