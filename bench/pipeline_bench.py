"""Benchmark of the default pipeline on a warm environment. Prints figures; asserts nothing.

  .venv/bin/python bench/pipeline_bench.py [--repeat 3]

Runs in a temporary copy of the project (your data/ and MLflow store are not touched), in the
environment that runs it (pytest is not needed):
  1. wall time of `bash pipeline.sh` (default params), median of --repeat runs after one warm-up;
  2. per stage of the last run: the process's wall time (pipeline.sh logs it), its MLflow run's
     span (`duration_s`: the work and its MLflow calls) and the rest (process start, imports,
     connecting to the store, exit); plus pipeline.sh's own time (option checks, the parent
     run's begin and end, the report);
  3. the course-form floor (the runtime target's yardstick): the five stages as five bare
     Python processes (bench/course_form.py) that import what they need, MLflow included, and
     make the same MLflow calls, with no project machinery; the pipeline's target is <= 1.3x;
  4. for information, the one-process floor: the same work (generate, write, read, features,
     fit, save, predict, score) in one process with no MLflow and no process boundaries.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lab1.core.stages import STAGES  # noqa: E402
from tests.project import Project, clean_env, copy_project  # noqa: E402

STAGE_WALL = re.compile(r"stage (\w+): exit \d+ after ([\d.]+) s")


def timed(command: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, str]:
    """(wall seconds, stderr) of a command that must succeed."""
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return elapsed, done.stderr


def pipeline_walls(project: Project, repeat: int) -> tuple[list[float], str]:
    """Wall times of ``repeat`` warm runs and the stderr of the last one."""
    env = clean_env()
    timed(["bash", "pipeline.sh"], project.root, env)  # warm-up: creates the store, fills caches
    runs = [timed(["bash", "pipeline.sh"], project.root, env) for _ in range(repeat)]
    return [wall for wall, _ in runs], runs[-1][1]


def stage_breakdown(project: Project, stderr: str) -> dict[str, dict[str, float]]:
    """Per stage of the last pipeline run: wall (pipeline.sh's log), run, startup."""
    walls = {m.group(1): float(m.group(2)) for m in STAGE_WALL.finditer(stderr)}
    client = project.client()
    runs = project.runs()
    parent = [r for r in runs if r.data.tags.get("mlops.role") == "pipeline"][-1]
    children = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
    )
    rows = {}
    for run in children:
        stage = run.data.tags["mlflow.runName"]
        metrics = run.data.metrics
        duration = metrics["duration_s"]
        rows[stage] = {
            "wall": walls[stage],
            "run": duration,
            "startup": walls[stage] - duration,
            "log_model": metrics.get("log_model_s", 0.0),
        }
    return {s: rows[s] for s in STAGES}


def course_form_floor(workdir: Path) -> float:
    """Seconds of the five course-form stage processes, one after another, as children of one
    parent run (made here, not timed: pipeline.sh's begin and end are in its own figure)."""
    import mlflow

    uri = f"sqlite:///{workdir / 'course-form.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("course-form")  # the new store's tables: once, not timed
    with mlflow.start_run(run_name="pipeline") as parent:
        parent_id = parent.info.run_id
    env = clean_env()
    start = time.perf_counter()
    for stage in STAGES:
        script = [sys.executable, str(ROOT / "bench" / "course_form.py"), stage, str(workdir)]
        timed([*script, uri, parent_id], ROOT, env)
    return time.perf_counter() - start


def single_process_floor(workdir: Path) -> tuple[float, float]:
    """(import seconds, work seconds) of the same work in one process without tracking."""
    start = time.perf_counter()
    import numpy as np
    import pandas as pd
    import skops.io
    from sklearn.pipeline import Pipeline

    from lab1.core.datasets import temperature
    from lab1.core.evaluation import classification_metrics, plot_confusion_matrix
    from lab1.core.features import build_preprocessor, extract_windows, window_columns
    from lab1.core.gate import decide
    from lab1.core.models import build_estimator
    from lab1.core.params import load_params

    imports = time.perf_counter() - start
    start = time.perf_counter()
    params = load_params(ROOT / "params.yaml")
    window = params.data_preprocessing.window
    section = params.data_creation.temperature
    frames = temperature.generate(section, params.data_creation.seed)
    splits = temperature.split_by_station(frames, section.test_stations)
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
    pre = build_preprocessor(params.data_preprocessing)
    pre.fit(pd.DataFrame(x_train, columns=columns))
    features = pre.transform(pd.DataFrame(x_train, columns=columns))
    pd.DataFrame(features).to_parquet(workdir / "train.parquet")
    estimator = build_estimator(params.model_preparation).fit(features, y_train)
    model = Pipeline([("preprocess", pre), ("classify", estimator)])
    skops.io.dump(model, workdir / "model.skops")
    proba = model.predict_proba(pd.DataFrame(x_test, columns=columns))[:, 1]
    metrics = classification_metrics(y_test, proba, params.model_testing.threshold)
    plot_confusion_matrix(
        y_test, (proba >= 0.5).astype(int), ["normal", "faulty"], workdir / "cm.png"
    )
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
        walls, stderr = pipeline_walls(project, args.repeat)
        rows = stage_breakdown(project, stderr)
        (Path(tmp) / "course").mkdir()
        course = statistics.median(course_form_floor(Path(tmp) / "course") for _ in walls)
        imports_s, floor_s = single_process_floor(Path(tmp))

    wall = statistics.median(walls)
    floor = imports_s + floor_s
    print(
        f"default pipeline, warm env: median {wall:.1f} s over {len(walls)} runs "
        f"({', '.join(f'{w:.1f}' for w in walls)})"
    )
    header = ("stage (last run)", "wall", "run", "start+imports+connect+exit")
    print("{:20s} {:>6s} {:>6s} {:>27s}".format(*header))
    for stage, row in rows.items():
        print(f"{stage:20s} {row['wall']:6.2f} {row['run']:6.2f} {row['startup']:27.2f}")
    rest = walls[-1] - sum(r["wall"] for r in rows.values())
    print(f"{'pipeline.sh itself':20s} {rest:6.2f}   (checks, parent run begin/end, report)")
    log_model = rows["model_preparation"]["log_model"]
    print(f"logging the model (model_preparation's wait for log_model): {log_model:.2f} s")
    print(f"course-form floor: {course:.1f} s (five bare processes with MLflow; median)")
    print(f"pipeline / course-form floor: {wall / course:.2f}x (target <= 1.3x)")
    print(
        f"floor, one process, no tracking: imports {imports_s:.1f} s + work {floor_s:.1f} s "
        f"= {floor:.1f} s"
    )
    print(f"pipeline / one-process floor: {wall / floor:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
