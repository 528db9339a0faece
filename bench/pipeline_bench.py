"""Benchmark of the default pipeline on a warm environment. Prints figures; asserts nothing.

  .venv/bin/python bench/pipeline_bench.py [--repeat 3]

Runs in a temporary copy of the project (your data/ and MLflow store are not touched):
  1. wall time of `bash pipeline.sh` (default params), after one warm-up run;
  2. per stage, run as the same separate process pipeline.sh starts: wall time split into the
     stage's own work, MLflow calls (the `mlflow_s` metric each stage run logs: store connection,
     run start/end, logging, model logging) and the rest (process start, imports, exit);
  3. the parent run's begin/end processes (pure tracking);
  4. the floor: the same work (generate, write, read, features, fit, save, predict, score) in
     one process with no MLflow and no process boundaries.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lab1.core.stages import STAGES  # noqa: E402
from tests.conftest import Project, clean_env, copy_project  # noqa: E402


def timed(command: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return elapsed, done.stdout


def pipeline_wall(project: Project, repeat: int) -> list[float]:
    env = clean_env()
    timed(["bash", "pipeline.sh"], project.root, env)  # warm-up: creates the store, fills caches
    return [timed(["bash", "pipeline.sh"], project.root, env)[0] for _ in range(repeat)]


def stage_breakdown(project: Project) -> tuple[dict[str, dict[str, float]], float, float]:
    """Run begin, the five stages and end as pipeline.sh does; read each run's own timings."""
    env = clean_env(PYTHONPATH=str(project.root))
    python = [sys.executable, "-m"]
    # This process ends the run, so it is the owner.
    begin = [*python, "lab1.pipeline_run", "begin", "--owner-pid", str(os.getpid())]
    begin_s, stdout = timed(begin, project.root, env)
    parent = stdout.strip().splitlines()[-1]
    env["MLOPS_PARENT_RUN_ID"] = parent
    walls = {stage: timed([*python, f"lab1.{stage}"], project.root, env)[0] for stage in STAGES}
    end_s, _ = timed([*python, "lab1.pipeline_run", "end", parent, "--status", "FINISHED"],
                     project.root, env)  # fmt: skip
    client = project.client()
    runs = client.search_runs(
        [client.get_run(parent).info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent}'",
    )
    rows = {}
    for run in runs:
        stage = run.data.tags["mlflow.runName"]
        duration, mlflow_s = run.data.metrics["duration_s"], run.data.metrics["mlflow_s"]
        rows[stage] = {
            "wall": walls[stage],
            "work": duration - mlflow_s,
            "mlflow": mlflow_s,
            "startup": walls[stage] - duration,
        }
    return {s: rows[s] for s in STAGES}, begin_s, end_s


def single_process_floor(workdir: Path) -> tuple[float, float]:
    """(import seconds, work seconds) of the same work in one process without tracking."""
    start = time.perf_counter()
    import numpy as np
    import pandas as pd
    import skops.io
    from sklearn.pipeline import Pipeline

    from lab1.core.datasets import make_raw
    from lab1.core.evaluation import classification_metrics, plot_confusion_matrix
    from lab1.core.features import build_preprocessor, extract_windows, window_columns
    from lab1.core.gate import decide
    from lab1.core.models import build_estimator
    from lab1.core.params import load_params

    imports = time.perf_counter() - start
    start = time.perf_counter()
    params = load_params(ROOT / "params.yaml")
    window = params.data_preprocessing.window
    splits = make_raw(params)
    arrays = {}
    for split, frames in splits.items():
        windows, labels = [], []
        for name, frame in frames.items():
            path = workdir / f"{split}-{name}.csv"
            frame.to_csv(path, index=False)
            frame = pd.read_csv(path, keep_default_na=False, na_values={"temperature": [""]})
            windows.append(extract_windows(frame["temperature"].to_numpy(float), window))
            labels.append(frame["is_faulty"].to_numpy()[window:-window])
        arrays[split] = (np.vstack(windows), np.concatenate(labels))
    (x_train, y_train), (x_test, y_test) = arrays["train"], arrays["test"]
    columns = window_columns(window)
    pre = build_preprocessor(window, params.data_preprocessing.missing_rule)
    pre.fit(pd.DataFrame(x_train, columns=columns))
    features = pre.transform(pd.DataFrame(x_train, columns=columns))
    pd.DataFrame(features).to_parquet(workdir / "train.parquet")
    estimator = build_estimator(params.model_preparation).fit(features, y_train)
    model = Pipeline([("preprocess", pre), ("classify", estimator)])
    skops.io.dump(model, workdir / "model.skops")
    proba = model.predict_proba(pd.DataFrame(x_test, columns=columns))[:, 1]
    metrics = classification_metrics(y_test, proba, params.model_testing.threshold)
    plot_confusion_matrix(y_test, (proba >= 0.5).astype(int), ["normal", "faulty"],
                          workdir / "cm.png")  # fmt: skip
    decide(metrics, None, params.gate)
    return imports, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=3, help="timed pipeline runs (median)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        project = Project(copy_project(Path(tmp) / "project"))
        walls = pipeline_wall(project, args.repeat)
        rows, begin_s, end_s = stage_breakdown(project)
        imports_s, floor_s = single_process_floor(Path(tmp))

    wall = statistics.median(walls)
    print(f"default pipeline, warm env: median {wall:.1f} s over {len(walls)} runs "
          f"({', '.join(f'{w:.1f}' for w in walls)})")  # fmt: skip
    print(f"{'stage':20s} {'wall':>6s} {'work':>6s} {'mlflow':>7s} {'start+imports+exit':>19s}")
    for stage, row in rows.items():
        print(f"{stage:20s} {row['wall']:6.2f} {row['work']:6.2f} {row['mlflow']:7.2f} "
              f"{row['startup']:19.2f}")  # fmt: skip
    print(f"{'parent begin':20s} {begin_s:6.2f} {'':6s} {begin_s:7.2f}")
    print(f"{'parent end':20s} {end_s:6.2f} {'':6s} {end_s:7.2f}")
    total = sum(r["wall"] for r in rows.values()) + begin_s + end_s
    work = sum(r["work"] for r in rows.values())
    mlflow_in_runs = sum(r["mlflow"] for r in rows.values())
    fixed = [r["wall"] - r["work"] for r in rows.values()]
    tracking = mlflow_in_runs + begin_s + end_s
    model_log = rows["model_preparation"]["mlflow"]
    print(f"sum of processes: {total:.1f} s; stage work {work:.1f} s")
    print(f"fixed overhead per stage (start + imports + tracking): "
          f"{min(fixed):.1f}-{max(fixed):.1f} s, mean {statistics.mean(fixed):.1f} s")  # fmt: skip
    print(f"MLflow calls (in-run mlflow_s + parent begin/end processes): {tracking:.1f} s "
          f"= {100 * tracking / total:.0f}% of the processes' wall time")  # fmt: skip
    print(f"model_preparation's MLflow time incl. log_model: {model_log:.2f} s")
    print(f"floor, one process, no tracking: imports {imports_s:.1f} s + work {floor_s:.1f} s "
          f"= {imports_s + floor_s:.1f} s")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
