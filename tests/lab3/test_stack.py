"""The team-scale stack of lab3/docker-compose.yml, run as processes on loopback (no Docker here):
a real PostgreSQL backend, an S3-compatible artifact store (moto's server; MinIO cannot be
installed here), a real `mlflow server` with proxied artifacts, pipeline.sh run against it twice,
and the model service serving the registry's champion."""

from __future__ import annotations

import json
import shutil
import urllib.request

import numpy as np
import pytest

from lab1.core import registry
from lab1.core.model_io import load_model
from lab1.core.processed import input_columns, read_split
from tests import loopback
from tests.conftest import SMALL, Project, copy_project
from tests.lab3.conftest import wait_for

NAME = "temperature-classifier"


def call(url: str, body: dict | None = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"content-type": "application/json"})
    with loopback.LOCAL.open(request, timeout=30) as answer:
        return json.loads(answer.read())


@pytest.mark.e2e
def test_pipeline_and_service_against_postgres_s3_and_mlflow_server(tmp_path, monkeypatch):
    project = Project(copy_project(tmp_path / "project"))
    stack = tmp_path / "stack"
    s3_env = dict(loopback.S3_KEYS)
    with (
        loopback.postgres() as database,
        loopback.s3_store(stack) as endpoint,
        loopback.mlflow_server(
            stack,
            database,
            "s3://mlflow/artifacts",
            env={**s3_env, "MLFLOW_S3_ENDPOINT_URL": endpoint},
        ) as tracking,
    ):
        # Clients know only the server's URL: no database or S3 credentials.
        first = project.pipeline(*SMALL, MLFLOW_TRACKING_URI=tracking)
        assert first.returncode == 0, first.stderr[-3000:]
        assert first.stdout.splitlines()[-1].startswith("Model test accuracy is: ")
        offline_v1 = tmp_path / "v1-model"
        shutil.copytree(project.root / "models" / "model", offline_v1)
        second = project.pipeline(
            *SMALL, "-S", "model_preparation.estimator=random_forest", MLFLOW_TRACKING_URI=tracking
        )
        assert second.returncode in (0, 3), second.stderr[-3000:]  # 3: gate kept version 1

        # The runs and versions are in PostgreSQL, the model files in the S3 bucket.
        import psycopg

        with psycopg.connect(database.replace("postgresql+psycopg", "postgresql")) as db:
            versions = db.execute(
                "SELECT count(*) FROM model_versions WHERE name = %s", (NAME,)
            ).fetchone()[0]
            runs = db.execute("SELECT count(*) FROM runs").fetchone()[0]
        assert versions == 2 and runs == 12  # two pipelines: a parent and five children each
        listed = loopback.s3_client(endpoint).list_objects_v2(Bucket="mlflow")
        keys = [o["Key"] for o in listed.get("Contents", [])]
        assert sum(key.endswith("/model.skops") for key in keys) == 2

        monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking)
        client = registry_client(tracking)
        champion = registry.champion(client, NAME)
        other = "2" if champion.version == "1" else "1"
        test = read_split(project.root / "data" / "processed" / "test.parquet")
        sample = test[input_columns(test)].head(300)
        body = {
            "instances": [
                [None if np.isnan(v) else float(v) for v in row] for row in sample.to_numpy()
            ]
        }
        offline = {
            "1": load_model(offline_v1).predict_proba(sample),
            "2": load_model(project.root / "models" / "model").predict_proba(sample),
        }
        assert not np.array_equal(offline["1"].argmax(1), offline["2"].argmax(1))

        service_env = {
            "MLFLOW_TRACKING_URI": tracking,
            "POLL_INTERVAL_S": "0.5",
            "MODEL_URI": f"models:/{NAME}@champion",
        }
        with loopback.model_service(stack, service_env) as service:
            info = call(f"{service}/model")
            assert (info["name"], info["version"]) == (NAME, champion.version)
            assert info["source_run_id"] == champion.tags["source_run_id"]
            assert info["data_digest"] == champion.tags["data.digest"]
            assert info["test_metrics"]["accuracy"] == pytest.approx(
                float(champion.tags["test.accuracy"])
            )
            online = call(f"{service}/predict", body)
            np.testing.assert_allclose(
                online["probabilities"], offline[champion.version], rtol=0, atol=1e-12
            )

            # The service follows the alias to the other version, with no restart.
            registry.promote(client, NAME, other, champion.version)
            wait_for(lambda: call(f"{service}/model")["version"] == other, timeout=60)
            online = call(f"{service}/predict", body)
            np.testing.assert_allclose(online["probabilities"], offline[other], rtol=0, atol=1e-12)
            assert online["predictions"] == offline[other].argmax(1).tolist()
            metrics = loopback.LOCAL.open(f"{service}/metrics", timeout=10).read().decode()
            assert "service_model_loads 2.0" in metrics


def registry_client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(uri, registry_uri=uri)
