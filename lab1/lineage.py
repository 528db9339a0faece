"""Where a registered model came from: data, code, params, metrics, runs, and how to reproduce it.

  .venv/bin/python -m lab1.lineage               the champion of params.yaml's dataset
  .venv/bin/python -m lab1.lineage models:/temperature-classifier/3
  .venv/bin/python -m lab1.lineage --json        the same for machines
  .venv/bin/python -m lab1.lineage --reproduce   re-run the pipeline at the recorded params in
                                                  a scratch copy of this checkout and compare

The answers come from what the runs logged (the version's tags and its registration run's
lineage.json). --reproduce refuses when the recorded commit is not this checkout's; it runs
pipeline.sh with this environment and a scratch MLflow store (the project's is not touched) and
compares the test metrics: equal for scikit-learn models (deterministic), within
CNN_TOLERANCE of accuracy for the CNN. Exit 0 when they match, 1 when not.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from lab1.core.cli import params_from_args, run_script, setup_logging, stage_parser
from lab1.core.errors import EXIT_ERROR, EXIT_OK, PipelineError
from lab1.core.paths import PATHS
from lab1.core.tracking import code_state, connect

logger = logging.getLogger("lab1.lineage")

CNN_TOLERANCE = 0.01  # accuracy; a CNN on another machine's kernels may differ a little
EXACT = 1e-6  # the registry keeps metrics with 6 decimals


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = stage_parser(__doc__)
    parser.add_argument(
        "model_uri",
        nargs="?",
        help="models:/NAME@ALIAS or models:/NAME/VERSION (default: the dataset's champion)",
    )
    parser.add_argument("--json", action="store_true", help="print the lineage as JSON")
    parser.add_argument(
        "--reproduce", action="store_true", help="re-run it in a scratch workspace and compare"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.verbose)

    def body() -> int:
        from lab1.core.lineage import version_lineage
        from lab1.core.registry import resolve

        params = params_from_args(args)
        uri = args.model_uri or f"models:/{params.registered_model_name}@champion"
        client = connect()
        lineage = version_lineage(client, resolve(client, uri))
        sys.stdout.write((json.dumps(lineage, indent=2) if args.json else render(lineage)) + "\n")
        return reproduce(lineage) if args.reproduce else EXIT_OK

    return run_script("lineage", body)


def render(lineage: dict[str, Any]) -> str:
    """The lineage as text for a terminal."""
    model, code, data = lineage["model"], lineage["code"], lineage["data"]
    aliases = f" @{', @'.join(model['aliases'])}" if model["aliases"] else ""
    lines = [
        f"model    {model['uri']}{aliases}: {model['decision']} ({model['reason']})",
        *(
            [f"         gated again since: rejected ({model['last_reason']})"]
            if model.get("last_decision") == "rejected"
            else []
        ),
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


def reproduce(lineage: dict[str, Any]) -> int:
    """Re-run the pipeline at ``lineage``'s params in a scratch copy of this checkout; compare."""
    recorded, here = lineage["code"], code_state()
    if recorded.get("commit") != here["git.commit"]:
        raise PipelineError(
            f"{lineage['model']['uri']} was made at commit {str(recorded.get('commit'))[:12]}; "
            f"this checkout is at {here['git.commit'][:12]}: `git checkout "
            f"{str(recorded.get('commit'))[:12]}` first"
        )
    if recorded.get("dirty") == "True" and here["git.dirty"] != "True":
        raise PipelineError(
            f"{lineage['model']['uri']} was made from uncommitted changes ({recorded['diff']}); "
            "apply them first"
        )
    scratch = Path(tempfile.mkdtemp(prefix="mlops-reproduce-"))
    try:
        metrics = _run_pipeline(scratch, lineage["params"])
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return _compare(lineage, metrics)


def _run_pipeline(scratch: Path, params: dict[str, Any]) -> dict[str, Any]:
    """Copy the checkout's files to ``scratch``, set its params.yaml to ``params``, run
    pipeline.sh there (this environment, the scratch's own MLflow store); return metrics.json."""
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=PATHS.root, capture_output=True, check=True
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = PATHS.root / name
        if source.is_file():
            (scratch / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, scratch / name)
    full = _merged(yaml.safe_load(PATHS.params.read_text()), params)  # the recorded values win
    (scratch / "params.yaml").write_text(yaml.safe_dump(full, sort_keys=False))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "MLFLOW_"))}
    env["MLOPS_VENV"] = sys.prefix
    logger.info("reproducing in %s (log: pipeline.log there while it runs)", scratch)
    with open(scratch / "pipeline.log", "w") as log:
        done = subprocess.run(
            ["bash", "pipeline.sh"], cwd=scratch, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    if done.returncode not in (0, 3):  # 3: its gate rejected it; the metrics are still there
        tail = (scratch / "pipeline.log").read_text().splitlines()[-5:]
        raise PipelineError(f"the reproduction failed (exit {done.returncode}): {' | '.join(tail)}")
    return json.loads((scratch / "reports" / "metrics.json").read_text())


def _merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``base`` with every leaf of ``over`` set in it (nested sections merged, not replaced)."""
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merged(merged[key], value)
        else:
            merged[key] = value
    return merged


def _compare(lineage: dict[str, Any], report: dict[str, Any]) -> int:
    """Print recorded vs reproduced; 0 when every metric matches within the tolerance."""
    recorded = {k: v for k, v in lineage["metrics"].items() if k != "test_set"}
    cnn = lineage["params"].get("dataset") in ("cifar10", "fashion_mnist")
    tolerance = CNN_TOLERANCE if cnn else EXACT
    differ = []
    for key, value in sorted(recorded.items()):
        again = report["metrics"].get(key)
        ok = again is not None and abs(again - value) <= tolerance
        sys.stdout.write(
            f"  {key:<18} recorded {value:.6f}  reproduced {again}  {'ok' if ok else 'DIFFERENT'}\n"
        )
        if not ok:
            differ.append(key)
    same_test = report.get("test_digest") == lineage["metrics"]["test_set"]
    sys.stdout.write(f"  test set           {'the same' if same_test else 'DIFFERENT'}\n")
    if differ or not same_test:
        logger.error("not reproduced: %s", ", ".join(differ) or "another test set")
        return EXIT_ERROR
    logger.info("reproduced (tolerance %g)", tolerance)
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
