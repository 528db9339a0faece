"""The lineage of one registered model version, from what the runs logged: which data, which
code, which params, which metrics on which test set, which runs, and how to reproduce it.

One home for the answers of the course's reproducibility checklist; ``python -m lab1.lineage``
prints them and the model service's ``GET /model`` serves them. The source is the version's
tags and the ``lineage.json`` its registration run logged (model_registration builds it from the
provenance records of the runs that made the model; provenance.py), cross-checked against what
data_creation's run logged as its output.
"""

from __future__ import annotations

import contextlib
import json
import re
import shlex
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from lab1.core.errors import PipelineError
from lab1.core.paths import PATHS
from lab1.core.stage_io import flatten
from lab1.core.tracking.store import tracking_uri
from lab1.core.tracking.ui import ML_VIEW, run_link, ui_base

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion
    from mlflow.tracking import MlflowClient

ALIAS_URI = re.compile(r"^models:/(?P<name>[^/@]+)@(?P<alias>[^/@]+)$")
VERSION_URI = re.compile(r"^models:/(?P<name>[^/@]+)/(?P<version>\d+)$")


def resolve(client: MlflowClient, uri: str) -> ModelVersion:
    """The registry version ``uri`` names: ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``."""
    from mlflow.exceptions import MlflowException

    alias, version = ALIAS_URI.match(uri), VERSION_URI.match(uri)
    try:
        if alias:
            return client.get_model_version_by_alias(alias["name"], alias["alias"])
        if version:
            return client.get_model_version(version["name"], version["version"])
    except MlflowException as exc:
        raise PipelineError(
            f"{uri}: not in the registry at {tracking_uri()} ({exc.message})"
        ) from None
    raise PipelineError(f"{uri}: expected models:/NAME@ALIAS or models:/NAME/VERSION")


def version_lineage(client: MlflowClient, version: ModelVersion) -> dict[str, Any]:
    """Everything known about how ``version`` was made, as plain data (see the module doc)."""
    from lab1.core.registry import version_metrics

    tags = version.tags or {}
    recorded = _lineage_json(client, tags.get("lineage.run_id"))
    runs = {stage: dict(ids) for stage, ids in recorded.get("runs", {}).items()}
    if tags.get("lineage.run_id"):
        runs["model_registration"] = {"run_id": tags["lineage.run_id"]}
    pipeline_run = tags.get("pipeline_run_id") or None
    if pipeline_run:
        runs["pipeline"] = {"run_id": pipeline_run}
    for entry in runs.values():
        entry["url"] = _run_url(client, entry.get("run_id"))
    data = dict(recorded.get("data", {}))
    data["logged_by_data_creation"] = _logged_output(
        client, runs.get("data_creation", {}).get("run_id"), "data/raw"
    )
    data["test_digest"] = tags.get("test.data_digest")
    code = recorded.get("code") or [{}]
    lineage = {
        "model": {
            "name": version.name,
            "version": str(version.version),
            "uri": f"models:/{version.name}/{version.version}",
            "aliases": list(version.aliases or []),
            "decision": tags.get("gate.decision"),
            "reason": tags.get("gate.reason"),
            "fingerprint": tags.get("model.fingerprint"),
            "url": f"{ui_base()}/#/models/{version.name}/versions/{version.version}?{ML_VIEW}",
        },
        "code": {
            "commit": tags.get("git.commit"),
            "dirty": tags.get("git.dirty"),
            "diff": f"runs:/{tags['lineage.run_id']}/code.diff"
            if tags.get("git.dirty") == "True" and tags.get("lineage.run_id")
            else None,
            "stages_on_other_code": len(code) > 1,
        },
        "data": data,
        "params": recorded.get("params", {}),
        "params_artifact": f"runs:/{pipeline_run}/params.yaml" if pipeline_run else None,
        "metrics": {"test_set": tags.get("test.data_digest"), **version_metrics(version)},
        "runs": runs,
    }
    lineage["reproduce"] = reproduce_command(lineage)
    return lineage


def _lineage_json(client: MlflowClient, run_id: str | None) -> dict[str, Any]:
    """The lineage.json the registration run logged ({} for versions registered without one)."""
    if not run_id:
        return {}
    with tempfile.TemporaryDirectory() as tmp, contextlib.suppress(Exception):
        return json.loads(Path(client.download_artifacts(run_id, "lineage.json", tmp)).read_text())
    return {}


def _run_url(client: MlflowClient, run_id: str | None) -> str | None:
    if not run_id:
        return None
    with contextlib.suppress(Exception):
        experiment = client.get_run(run_id).info.experiment_id
        return run_link(experiment, run_id)
    return None


def _logged_output(client: MlflowClient, run_id: str | None, name: str) -> str | None:
    """The digest ``run_id`` logged for its output dataset ``name`` (None if it logged none)."""
    if not run_id:
        return None
    with contextlib.suppress(Exception):
        inputs = client.get_run(run_id).inputs
        for item in inputs.dataset_inputs if inputs else []:
            context = {t.key: t.value for t in item.tags}.get("mlflow.data.context")
            if item.dataset.name == name and context == "output":
                return str(item.dataset.digest)
    return None


def reproduce_command(lineage: dict[str, Any]) -> str:
    """The shell command that re-runs the pipeline at the recorded code and params: the params
    that differ from params.yaml at that commit become -S overrides."""
    commit = lineage["code"].get("commit") or "HEAD"
    base = _params_at(commit)
    options = [f"-S {shlex.quote(o)}" for o in overrides(lineage["params"], base)]
    command = " ".join(["bash pipeline.sh", *options])
    if commit not in ("HEAD", "unknown"):
        command = f"git checkout {commit[:12]} && {command}"
    if lineage["code"].get("diff"):
        command += f"  # plus the uncommitted changes in {lineage['code']['diff']}"
    return command


def _params_at(commit: str) -> dict[str, Any]:
    """params.yaml as it was at ``commit`` (the checkout's own file if git cannot say)."""
    with contextlib.suppress(OSError, subprocess.SubprocessError, yaml.YAMLError):
        done = subprocess.run(
            ["git", "show", f"{commit}:params.yaml"],
            cwd=PATHS.root,
            capture_output=True,
            text=True,
            timeout=10,
        )
        if done.returncode == 0:
            return dict(yaml.safe_load(done.stdout))
    if not PATHS.params.exists():  # e.g. a service image without the project's params
        return {}
    return dict(yaml.safe_load(PATHS.params.read_text()))


def overrides(params: dict[str, Any], base: dict[str, Any]) -> list[str]:
    """``key=value`` (value as YAML, like `dvc exp run -S`) for every leaf of ``params`` that
    ``base`` does not have with the same value."""
    found = []
    flat_base = flatten(base)
    for key, value in flatten(params).items():
        if key not in flat_base or flat_base[key] != value:
            text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
            found.append(f"{key}={text.removesuffix('...').strip()}")
    return found


def render(lineage: dict[str, Any]) -> str:
    """The lineage as text for a terminal."""
    model, code, data = lineage["model"], lineage["code"], lineage["data"]
    aliases = f" @{', @'.join(model['aliases'])}" if model["aliases"] else ""
    lines = [
        f"model    {model['uri']}{aliases}: {model['decision']} ({model['reason']})",
        f"         fingerprint {model['fingerprint']}; {model['url']}",
        f"code     commit {code['commit']}, uncommitted changes: {code['dirty']}"
        + (f" (diff: {code['diff']})" if code["diff"] else ""),
    ]
    if code["stages_on_other_code"]:
        lines.append("         WARNING: the stages ran on different code (see lineage.json)")
    logged = data.get("logged_by_data_creation")
    same = "the same digest" if logged == data.get("raw_digest") else f"{logged}: DIFFERENT"
    lines += [
        f"data     raw {data.get('raw_digest')} (data_creation logged {same}), "
        f"processed {data.get('processed_digest')}, test set {data.get('test_digest')}",
        f"         source {data.get('data.source', 'synthetic, from the seed')}"
        + (f", sha256 {data['data.source_sha256']}" if data.get("data.source_sha256") else "")
        + f"; verified: {data.get('data.verified', 'unknown')}",
        "metrics  on test set "
        + f"{lineage['metrics']['test_set']}: "
        + ", ".join(f"{k} {v:.4f}" for k, v in lineage["metrics"].items() if k != "test_set"),
        "runs     "
        + "\n         ".join(
            f"{stage:<19} {ids.get('run_id')}  {ids.get('url') or ''}"
            for stage, ids in lineage["runs"].items()
        ),
        "params   "
        + (f"(also logged as {lineage['params_artifact']})" if lineage["params_artifact"] else ""),
        *("  " + line for line in _yaml(lineage["params"]).splitlines()),
        f"reproduce  {lineage['reproduce']}",
    ]
    return "\n".join(lines)


def _yaml(tree: dict[str, Any]) -> str:
    """Block style for sections, flow style for lists: params as params.yaml writes them."""
    return yaml.safe_dump(tree, sort_keys=False, default_flow_style=None, width=100)
