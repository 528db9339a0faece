"""Image datasets and the CNN: real torchvision loaders on archives in the real formats, clear
errors, training that learns, and model files that load without unpickling."""

from __future__ import annotations

import urllib.request

import numpy as np
import pytest
import yaml

from lab1.core.datasets.images import (
    DEBIAN_FASHION_MNIST,
    load_split,
    make_images,
    save_split,
)
from lab1.core.errors import DataError
from lab1.core.params import load_params
from lab1.core.paths import PATHS
from tests.lab1.image_archives import pattern_images, write_cifar10, write_fashion_mnist
from tests.project import changed

pytestmark = pytest.mark.images  # torchvision reads the archives; the CNN needs torch

PARAMS = load_params(PATHS.params)


def cifar_section(**changes):
    return changed(PARAMS.data_creation.cifar10, **changes)


def test_cifar10_folder_read_by_torchvision_with_verification_off(tmp_path):
    root = write_cifar10(tmp_path / "mine")
    data = make_images(
        "cifar10", cifar_section(data_dir=str(root), verify=False), 0, tmp_path / "cache"
    )
    assert data.classes == ["cat", "dog"] and data.verified is False
    assert data.train_images.shape[1:] == (32, 32, 3) and data.train_images.dtype == np.uint8
    assert set(np.unique(data.train_labels)) == {0, 1}  # relabelled in params order
    assert 0 < len(data.train_labels) < 500 and len(data.test_labels) < 100


def test_cifar10_folder_fails_the_official_md5_check_with_a_hint(tmp_path):
    root = write_cifar10(tmp_path / "mine")
    with pytest.raises(DataError, match=r"md5 check; .* set data_creation\.cifar10\.verify=false"):
        make_images("cifar10", cifar_section(data_dir=str(root)), 0, tmp_path / "cache")


def test_cifar10_missing_and_no_network_says_where_and_what_to_do(tmp_path, monkeypatch):
    # urlopen() keeps the opener it first builds, dead proxy included, for the whole process:
    # put the old one back afterwards (it once failed every later loopback check of the tier).
    monkeypatch.setattr(urllib.request, "_opener", None)
    for proxy in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.setenv(proxy, "http://127.0.0.1:9")  # a closed port: no download possible
    with pytest.raises(DataError) as caught:
        make_images("cifar10", cifar_section(), 0, tmp_path / "cache")
    message = str(caught.value)
    assert str(tmp_path / "cache" / "cifar-10-batches-py") in message
    assert "download failed" in message and "data_creation.cifar10.data_dir" in message
    assert "\n" not in message


def test_cifar10_unknown_class_is_named(tmp_path):
    root = write_cifar10(tmp_path / "mine")
    section = cifar_section(data_dir=str(root), verify=False, classes=["cat", "unicorn"])
    with pytest.raises(DataError, match=r"classes has 'unicorn' \(classes: airplane"):
        make_images("cifar10", section, 0, tmp_path / "cache")


def test_fashion_mnist_idx_folder_read_by_torchvision(tmp_path):
    folder = write_fashion_mnist(tmp_path / "idx")
    section = changed(PARAMS.data_creation.fashion_mnist, data_dir=str(folder), verify=False)
    data = make_images("fashion_mnist", section, 0, tmp_path / "cache")
    assert data.train_images.shape == (600, 28, 28, 1) and len(data.test_labels) == 200
    assert data.classes[0] == "T-shirt/top" and len(data.classes) == 10
    with pytest.raises(DataError, match="md5 differs from torchvision's published sum"):
        make_images("fashion_mnist", changed(section, verify=True), 0, tmp_path / "cache2")


def test_fashion_mnist_from_the_debian_package_is_verified(tmp_path):
    assert DEBIAN_FASHION_MNIST.exists(), "tests/tools.sh installs dataset-fashion-mnist"
    section = changed(PARAMS.data_creation.fashion_mnist, max_train=500, max_test=100)
    data = make_images("fashion_mnist", section, 0, tmp_path / "cache")
    assert data.verified and data.source == str(DEBIAN_FASHION_MNIST)
    assert len(data.train_labels) == 500 and len(np.unique(data.train_labels)) == 10


def test_splits_never_unpickle(tmp_path):
    path = tmp_path / "s.npz"
    save_split(path, np.zeros((2, 4, 4, 1), np.uint8), np.array([0, 1]))
    images, labels = load_split(path)
    assert images.shape == (2, 4, 4, 1) and labels.tolist() == [0, 1]
    np.savez(tmp_path / "evil.npz", images=np.array([object()], dtype=object), labels=[0])
    with pytest.raises(DataError, match="not a readable image split"):
        load_split(tmp_path / "evil.npz")


def test_cnn_learns_a_learnable_pattern():
    """Training is wired correctly: on images whose class is a visible square, it gets there."""
    from lab1.core import cnn

    labels = np.random.default_rng(1).integers(0, 4, size=1200)
    images = pattern_images(labels, 16, 1, seed=2)
    section = changed(PARAMS.model_preparation.cnn["cifar10"], epochs=4, width=8, batch_size=64)
    aug = changed(PARAMS.data_preprocessing.augmentation["cifar10"], crop_padding=0)  # flip on
    model, history = cnn.train(images, labels, 4, cnn.channel_stats(images), section, aug, 0)
    assert history[-1].train_loss < history[0].train_loss
    assert max(r.val_accuracy for r in history) >= 0.95
    test_labels = np.arange(40) % 4
    proba = cnn.predict_proba(cnn.Probabilities(model), pattern_images(test_labels, 16, 1, 9))
    assert np.allclose(proba.sum(axis=1), 1, atol=1e-5)
    assert np.mean(proba.argmax(1) == test_labels) >= 0.95


def test_cnn_training_is_deterministic():
    from lab1.core import cnn

    labels = np.arange(200) % 2
    images = pattern_images(labels, 16, 1, seed=3)
    section = changed(PARAMS.model_preparation.cnn["cifar10"], epochs=1, width=4, batch_size=50)
    aug = PARAMS.data_preprocessing.augmentation["cifar10"]
    runs = [
        cnn.train(images, labels, 2, cnn.channel_stats(images), section, aug, 7)[1][0]
        for _ in range(2)
    ]
    assert runs[0].train_loss == runs[1].train_loss
    assert runs[0].val_accuracy == runs[1].val_accuracy


def test_logged_models_load_without_unpickling(tmp_path, monkeypatch):
    """The CNN is logged in MLflow's pt2 format (torch.export), the scikit-learn model in skops;
    both load and give the same answers as before saving."""
    import mlflow

    from lab1.core import cnn
    from lab1.core.model_io import keep_copy, load_torch_model, torch_options

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    from lab1.core.mlflow_ui import experiment_id
    from lab1.core.tracking import connect

    experiment = experiment_id(connect(), "images")  # artifacts beside the store, not ./mlruns
    labels = np.arange(64) % 2
    images = pattern_images(labels, 16, 1, seed=4)
    model = cnn.ImageClassifier(*cnn.channel_stats(images), classes=2, width=4, dropout=0.0)
    model.eval()
    with mlflow.start_run(experiment_id=experiment) as run:  # as model_preparation does
        served = cnn.Probabilities(model).eval()
        options = torch_options(served, images[:2], ["a", "b"])
        info = mlflow.pytorch.log_model(served, name="model", **options)
        keep_copy(info, tmp_path / "model")
    assert info.run_id == run.info.run_id
    mlmodel = yaml.safe_load((tmp_path / "model" / "MLmodel").read_text())
    assert mlmodel["metadata"] == {"classes": ["a", "b"]}
    flavor = mlmodel["flavors"]["pytorch"]
    saved = sorted(p.name for p in (tmp_path / "model" / flavor["model_data"]).iterdir())
    assert saved == ["model.pt2"]  # torch.export's archive, not a pickled module (model.pth)
    loaded = load_torch_model(tmp_path / "model")
    expected = cnn.predict_proba(cnn.Probabilities(model), images)
    np.testing.assert_allclose(cnn.predict_proba(loaded, images), expected, atol=1e-5)
    assert cnn.predict_proba(loaded, images[:5]).shape == (5, 2)  # any batch size


@pytest.mark.e2e
@pytest.mark.parametrize("dataset", ["fashion_mnist", "cifar10"])
def test_image_pipeline_end_to_end(project, dataset, tmp_path):
    """A tiny run of each image dataset through pipeline.sh, on files in the real formats."""
    import re

    writer = write_cifar10 if dataset == "cifar10" else write_fashion_mnist
    folder = writer(tmp_path / "data")
    source = [
        "-S",
        f"data_creation.{dataset}.data_dir={folder}",
        "-S",
        f"data_creation.{dataset}.verify=false",
    ]
    done = project.pipeline(
        "--dataset",
        dataset,
        *source,
        "-S",
        f"model_preparation.cnn.{dataset}.epochs=3",
        "-S",
        f"model_preparation.cnn.{dataset}.width=8",
        "-S",
        f"model_preparation.cnn.{dataset}.batch_size=64",
        "-S",
        f"data_preprocessing.augmentation.{dataset}.crop_padding=0",
        "-S",
        f"model_registration.{dataset}.min_accuracy=0.6",
        "-S",
        f"model_registration.{dataset}.min_f1=0.3",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert re.fullmatch(r"Model test accuracy is: \d\.\d{3}", done.stdout.splitlines()[-1])
    assert (project.root / "reports" / "misclassified.png").exists()
    runs = project.runs(f"lab1-{dataset}")
    by_name = {r.data.tags["mlflow.runName"]: r for r in runs}
    assert by_name["data_creation"].data.tags["data.verified"] == "False"  # recorded
    training = by_name["model_preparation"]
    client = project.client()
    history = client.get_metric_history(training.info.run_id, "val_accuracy")
    assert [m.step for m in history] == [1, 2, 3]  # one step per epoch
    version = client.get_model_version_by_alias(f"{dataset}-classifier", "champion")
    assert version.tags["gate.decision"] == "promoted"
