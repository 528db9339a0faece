"""One S3-compatible server for lab4's tests: moto's, checking credentials as AWS does."""

from __future__ import annotations

import pytest

from tests import loopback
from tests.conftest import clean_env

BUCKET = "dvc"


@pytest.fixture(scope="session")
def s3(tmp_path_factory):
    """(endpoint URL, the AWS_* variables of the keys that work) of a server with BUCKET."""
    with loopback.s3_store_with_keys(tmp_path_factory.mktemp("s3"), BUCKET) as served:
        yield served


def env_without_aws(**extra: str) -> dict[str, str]:
    """A user's environment with no AWS settings of the machine's own, plus ``extra``."""
    env = {k: v for k, v in clean_env().items() if not k.startswith("AWS_")}
    return {**env, **extra}
