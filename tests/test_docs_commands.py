"""Every shell command the docs show works as written on a fresh clone, or says why it is not
run here. The commands are collected from the docs themselves, and each one must be in exactly
one of three tables below:

- RUN: run by this module, as written, from the root of a fresh copy of the project whose
  `.venv` is the test environment and is first on PATH (so a bare `python` is `.venv`'s, as for
  a user whose shell has it activated), with the exit code and a piece of the output it must give;
- TESTED: run by the test named (`file::function`; it must exist), often on a small dataset;
- NOT_HERE: not runnable here, and why (Docker Hub, a Jenkins server, AWS, a GPU, a placeholder).

A command the docs show that is in none of them fails the test, so a new command in the docs
cannot go untested silently; an entry whose command the docs no longer show fails too.

Where a command is "shown":
- every Markdown file (README.md, lab*/README.md, docs/, tests/, bench/): every line of a fenced
  ```bash/```sh/```shell block (a trailing `\\` joins the next line; `# comments` are dropped),
  every `$ ` line of any block, every line of another block that starts as a command of this
  project does (below), and every inline code span outside the blocks that starts as a user
  types one of this project's commands:
  `bash `, `.venv/bin/`, `python ` or `make` with a target of the Makefile (or alone). Inline
  spans of other tools (`dvc exp show`, `mlflow ui`, `curl`) name the tool in prose; the blocks
  hold the commands to type for them.
- the Makefile: `make help`'s list (one `make TASK` each).
- each entry point's `--help` (pipeline.sh, every module of lab1-lab5 that runs as a program,
  every bench/ script that does): its lines that start as a command does (as above, or with
  `NAME=value ` before one); what follows 3+ spaces, `->` or `#` on such a line describes it.

`python tests/test_docs_commands.py` prints what is collected, with where each command is.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.project import tracked_files

REPO = Path(__file__).resolve().parents[1]
# Every Markdown file of the project: the READMEs and the reference pages they link to.
DOCS = sorted(name for name in tracked_files(REPO) if name.endswith(".md"))
SHELL_BLOCKS = {"bash", "sh", "shell"}  # every line a command
PROJECT = ("bash ", ".venv/bin/", "python ")
ASSIGNMENTS = re.compile(r"^(?:[A-Z_]+=\S*\s+)*")
DESCRIPTION = re.compile(r"\s{3,}|\s->\s|\s#")
MAIN = 'if __name__ == "__main__":'

# (a) Run here as written: the exit code, and a piece of stdout + stderr.
RUN: dict[str, tuple[int, str]] = {
    "make": (0, "make pipeline "),
    "make help": (0, "make mlflow-run "),
    "bash pipeline.sh --help": (0, "Usage: bash pipeline.sh [OPTIONS]"),
    ".venv/bin/python lab1/model_testing.py --help": (0, "Stage 4/5: model testing."),
    "python -m lab3.monitor --help": (0, "usage: .venv/bin/python -m lab3.monitor"),
    "python -m lab1.core.cli": (0, ""),  # checks options, params and the store: all fine
    "python -m lab4.dvc_pipeline --check": (0, ""),
    ".venv/bin/python -m lab4.dvc_pipeline --check": (0, ""),
    "python -m lab4.dvc_pipeline": (0, ""),  # rewrites dvc.yaml: the test checks it is the same
    ".venv/bin/python -m lab4.dvc_pipeline": (0, ""),
    # "Break something on purpose": one line, before any work, exit 2.
    "bash pipeline.sh -S data_creation.temperature.years=0": (
        2,
        "-S data_creation.temperature.years: 0 must be >= 1",
    ),
    "python bench/shape.py": (0, "layers: lab1.model_testing"),
    # Nothing to remove on a fresh clone; whatever the commands above made goes.
    "bash pipeline.sh --clean": (0, ""),
    "make clean": (0, ""),
}

E2E = "tests/lab1/test_pipeline_e2e.py::"
STAGE_ERRORS = "tests/lab1/test_stage_errors.py::"
LINEAGE = "tests/lab1/test_lineage.py::"
MONITOR = "tests/lab3/test_monitor.py::"
DOCKER = "tests/lab3/test_docker.py::"
CONTAINER = "tests/lab3/test_container.py::"
QUALITY = "tests/lab5/test_quality_suite.py::"
NOTEBOOK = "tests/lab5/test_notebook.py::"
VERSIONS = "tests/lab4/test_dataset_versions.py::"
DVC = "tests/lab4/test_dvc_pipeline.py::"
MAKE_TASKS = "tests/test_docs_commands.py::test_the_make_tasks_run_as_written"
FIRST_RUN = E2E + "test_pipeline_prints_only_the_accuracy_line_on_stdout"
ONE_BY_ONE = E2E + "test_stages_one_by_one_share_a_parent_run"
ROLLBACK = E2E + "test_promotion_records_previous_champion_and_rollback_restores_it"
MLFLOW_RUN = E2E + "test_make_mlflow_run_works_without_an_activated_environment"
REPRODUCE = LINEAGE + "test_reproduce_matches_and_refuses_another_commit"
ANSWERS = LINEAGE + "test_lineage_answers_equal_what_the_runs_logged"
SIMULATED = MONITOR + "test_the_simulation_flags_the_shifted_week_and_not_the_normal_one"
MAKE_MONITOR = MONITOR + "test_make_monitor_as_the_simulation_prints_it_sees_the_shifted_week"
HEALTH = DOCKER + "test_the_health_check_module_says_healthy_only_for_a_200"
BUILD = DOCKER + "test_build_script_tags_commit_and_branch_and_guards_push"
IMAGE = CONTAINER + "test_the_image_serves_the_champion_once_the_trainer_made_one"
LIGHT_STACK = CONTAINER + "test_the_light_compose_stack_trains_registers_and_serves"
LAB4_STEPS = "tests/lab4/test_readme_steps.py::test_the_steps_work_as_written_in_order"
S3_STEPS = DVC + "test_the_pipeline_outputs_go_to_s3_and_come_back_byte_for_byte"
EXERCISE = VERSIONS + "test_the_three_versions_are_what_the_course_asks"
BAD_S3 = VERSIONS + "test_a_bad_s3_remote_is_one_line_within_seconds_before_any_work"
RUNS_NOTEBOOK = NOTEBOOK + "test_running_the_notebook_leaves_the_checkout_as_it_was"
# lab5/README.md's suite block, typed in order in a fresh clone (after its `bash pipeline.sh`).
QUALITY_WALK = QUALITY + "test_the_readme_commands_work_in_order_on_a_fresh_clone"

TWO_NODES = "tests/lab1/test_distributed.py::"
TWO_NODES += "test_two_nodes_train_one_model_that_rank_0_records_and_its_node_registers"

# (b) Run by an existing test: the command's form (pipelines mostly on small data, servers on
# free ports, `make serve` as the command it stands for, .venv/bin/python -m lab3.serve).
TESTED: dict[str, str] = {
    "bash pipeline.sh": "tests/lab1/test_readme_figures.py::"
    "test_the_docs_quote_what_the_default_pipeline_prints",
    "bash pipeline.sh 2>/dev/null": FIRST_RUN,
    "make pipeline": MAKE_TASKS,
    "make lineage": MAKE_TASKS,
    "make ui": MAKE_TASKS,  # on a free port: `make ui PORT=...`
    ".venv/bin/python -m lab1.lineage": MAKE_TASKS,
    "python -m lab1.lineage": MAKE_TASKS,
    "python -m lab1.lineage --json": MAKE_TASKS,
    ".venv/bin/python -m lab1.lineage --json": MAKE_TASKS,
    ".venv/bin/python -m lab1.model_testing": MAKE_TASKS,
    ".venv/bin/python lab1/data_creation.py --csv my.csv": MAKE_TASKS,
    "bash pipeline.sh -S model_preparation.estimator=logistic_regression": MAKE_TASKS,
    "bash pipeline.sh --dataset temperature": MAKE_TASKS,
    "bash pipeline.sh -S model_preparation.estimator=random_forest -S data_creation.seed=7": (
        LINEAGE + "test_two_pipelines_in_one_checkout_take_turns_and_register_their_own_models"
    ),
    ".venv/bin/python -m lab1.lineage --reproduce": REPRODUCE,
    ".venv/bin/python -m lab1.lineage models:/temperature-classifier/3": ANSWERS,
    ".venv/bin/python -m lab1.lineage [models:/NAME/VERSION] [--json] [--reproduce]": ANSWERS,
    "bash pipeline.sh -S data_creation.seed=7": "tests/lab1/test_provenance.py::"
    "test_a_model_trained_on_another_data_seed_is_compared_on_its_own_test_set",
    "bash pipeline.sh --stage data_preprocessing": STAGE_ERRORS
    + "test_raw_data_changed_by_hand_is_refused",
    ".venv/bin/python lab1/model_registration.py --rollback": ROLLBACK,
    "bash pipeline.sh --stage model_testing": E2E
    + "test_stage_mode_passes_the_accuracy_line_through",
    "bash pipeline.sh --stage NAME": ONE_BY_ONE,
    "bash pipeline.sh --stage <name>": ONE_BY_ONE,
    "python -m lab1.pipeline_run": ONE_BY_ONE,
    ".venv/bin/python -m lab1.pipeline_run begin --owner-pid PID": FIRST_RUN,
    ".venv/bin/python -m lab1.pipeline_run begin --context": ONE_BY_ONE,
    ".venv/bin/python -m lab1.pipeline_run end [RUN_ID] --status FINISHED|FAILED|KILLED": (
        ONE_BY_ONE
    ),
    "bash pipeline.sh --dataset fashion_mnist": "tests/lab1/test_images.py::"
    "test_image_pipeline_end_to_end",
    "python -m lab1.core.distributed": "tests/lab1/test_distributed.py::"
    "test_two_processes_train_the_model_one_process_would",
    "python -m lab1.core.distributed --standalone --nproc-per-node N -m lab1.model_preparation"
    " ...": "tests/lab1/test_distributed.py::test_two_processes_train_the_model_one_process_would",
    "bash pipeline.sh --dataset fashion_mnist --stage model_testing": TWO_NODES,
    "bash pipeline.sh --dataset fashion_mnist --stage model_registration": TWO_NODES,
    "make mlflow-run": MLFLOW_RUN,
    "make mlflow-run ENTRY=model_testing": MLFLOW_RUN,
    "make serve": SIMULATED,
    "python -m lab3.serve": SIMULATED,
    ".venv/bin/python -m lab3.serve": SIMULATED,
    "make simulate": SIMULATED,
    "python -m lab3.monitor.simulate": SIMULATED,
    ".venv/bin/python -m lab3.monitor.simulate": SIMULATED,
    "make monitor": SIMULATED,
    "python -m lab3.monitor": SIMULATED,
    ".venv/bin/python -m lab3.monitor": SIMULATED,
    "make monitor SINCE=… UNTIL=… LABELS=…": MAKE_MONITOR,
    "make monitor SINCE=2026-12-05T06:45:30.900807+00:00 UNTIL=2026-12-05T06:45:31.378350+00:00 "
    "LABELS=reports/monitoring/simulation/shifted-0.labels.csv": MAKE_MONITOR,
    ".venv/bin/python -m lab3.monitor --labels labels.csv --pushgateway http://127.0.0.1:9091": (
        MONITOR + "test_a_real_prometheus_scrapes_the_gauges"
    ),
    ".venv/bin/python -m lab3.monitor --retrain -- -S data_creation.seed=7": MONITOR
    + "test_an_alarm_with_retrain_runs_the_pipeline_through_the_gate",
    "MODEL_URI=models/model .venv/bin/python -m lab3.serve --port 8080": DOCKER
    + "test_image_command_and_healthcheck_work_on_a_real_service",
    "python -m lab3.healthcheck URL": HEALTH,
    "python -m lab3.healthcheck [URL]": HEALTH,
    "curl -s localhost:8080/model": "tests/lab3/test_service.py::test_health_model_and_metrics",
    "curl -s localhost:8080/predict -H 'content-type: application/json' -d '{\"instances\": "
    "[[1.5, 2.0, 1.8, 2.2, 2.5, 2.4, 2.9, 9.1, 3.0, 2.7, 2.8, 3.3, 3.0, 2.9, 3.2]]}'": (
        "tests/lab3/test_service.py::test_every_body_form_gives_the_offline_predictions"
    ),
    "bash lab3/build.sh": BUILD,
    "base=$(bash lab3/podman/base.sh)": IMAGE,
    'DOCKER="bash lab3/podman/podman.sh" bash lab3/build.sh --base "$base"': IMAGE,
    "bash lab3/podman/podman.sh run -d --name api -p 8080:8080 mlops-labs:main": IMAGE,
    "bash lab3/podman/podman.sh exec api bash pipeline.sh": IMAGE,
    "bash lab3/podman/podman.sh healthcheck run api": IMAGE,
    "MLFLOW_PORT=5000 API_PORT=8080 TAG=main bash lab3/podman/compose.sh -p mlops -f "
    "lab3/docker-compose.light.yml up -d": LIGHT_STACK,
    "bash lab3/podman/compose.sh -p mlops -f lab3/docker-compose.light.yml down -v": LIGHT_STACK,
    # lab4/README.md's steps, walked in order as written:
    "dvc repro": LAB4_STEPS,
    'git add dvc.lock && git commit -m "dvc repro: the pipeline outputs"': LAB4_STEPS,
    "dvc exp run -S model_preparation.hist_gradient_boosting.learning_rate=0.1": LAB4_STEPS,
    "dvc exp show": LAB4_STEPS,
    "dvc metrics diff": LAB4_STEPS,
    "dvc plots diff": LAB4_STEPS,
    "git checkout params.yaml dvc.lock && dvc checkout": LAB4_STEPS,
    "dvc remote add --local -d storage ../lab4-remote": LAB4_STEPS,
    "dvc push": LAB4_STEPS,
    "dvc status -c": LAB4_STEPS,
    "git clone . ../lab4-clone && cd ../lab4-clone": LAB4_STEPS,
    "dvc pull": LAB4_STEPS,
    "dvc status": LAB4_STEPS,
    "cd -": LAB4_STEPS,
    "dvc remote add --local -d storage s3://BUCKET/PATH": S3_STEPS,
    "dvc remote modify --local storage endpointurl http://127.0.0.1:9000": S3_STEPS,
    "dvc remote modify --local storage access_key_id KEY_ID": S3_STEPS,
    "dvc remote modify --local storage secret_access_key SECRET_KEY": S3_STEPS,
    ".venv/bin/python -m lab4.dataset_versions": EXERCISE,
    ".venv/bin/python -m lab4.dataset_versions --repo ~/ds --remote /srv/dvc-remote": EXERCISE,
    ".venv/bin/moto_server -H 127.0.0.1 -p 9000 &": BAD_S3,
    "export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=us-east-1": (
        EXERCISE
    ),
    "export AWS_ENDPOINT_URL=http://127.0.0.1:9000": EXERCISE,
    ".venv/bin/python -c \"import boto3; boto3.client('s3').create_bucket(Bucket='datasets')\"": (
        EXERCISE
    ),
    ".venv/bin/python -m lab4.dataset_versions --remote s3://datasets/lab4": EXERCISE,
    "dvc remote add -d storage /path/to/remote": EXERCISE,
    "dvc add data/stations.csv && git add data/stations.csv.dvc data/.gitignore": VERSIONS
    + "test_dvc_files_record_the_dataset",
    'git commit -m "dataset v1" && git tag v1 && dvc push': EXERCISE,
    "git checkout v1 && dvc checkout": VERSIONS
    + "test_a_fresh_clone_pulls_every_version_with_the_pushed_hash",
    # lab5/README.md's notebook block, typed in order in a fresh clone by one fixture.
    ".venv/bin/python -m lab5.run_notebook": RUNS_NOTEBOOK,
    ".venv/bin/python -m pytest lab5/regression": NOTEBOOK
    + "test_pytest_runs_the_written_suite_after_the_notebook",
    ".venv/bin/python -m lab5.run_notebook --in-place": NOTEBOOK
    + "test_in_place_saves_the_outputs_into_the_notebook_only",
    ".venv/bin/python -m pytest lab5/quality": QUALITY_WALK,
    ".venv/bin/python -m pytest lab5/quality --model-uri models:/temperature-classifier/1": (
        QUALITY_WALK
    ),
    ".venv/bin/python -m pytest lab5/quality -m data_quality": QUALITY_WALK,
    ".venv/bin/python -m pytest lab5/quality --model-uri models/model "
    "--junitxml=reports/junit-lab5.xml": QUALITY_WALK,
}

BENCH = "a benchmark (minutes on a quiet machine; figures for the README), not a test"
SUITE = "the test command itself: CI (.ci/run) runs it; run from the suite it would nest it"
PYPI = "installs from PyPI (no network here; tests/run.sh runs the set-up before every run)"
REPLICAS = "replicas on 0.0.0.0 behind a load balancer: a team's machines (one replica with "
REPLICAS += "its log: tests/lab3/test_prediction_log.py)"
MOTO = "moto's S3 server stands in: " + EXERCISE
# (c) Not run here, and why.
NOT_HERE: dict[str, str] = {
    "bash tests/run.sh": SUITE,
    "bash tests/run.sh --integration": SUITE,
    "bash tests/run.sh tests/lab2": SUITE,
    "bash tests/run.sh --integration tests/lab2": SUITE,
    "bash tests/run.sh --integration tests/lab5": SUITE,
    "bash tests/run.sh tests/lab1 -k gate": SUITE,
    "make test": SUITE,
    "make test-integration": SUITE,
    "bash .ci/run": SUITE,
    "make setup": PYPI,
    "bash pipeline.sh --setup --dev": PYPI,
    "bash pipeline.sh --setup --images": PYPI,
    ".venv/bin/pip install jupyterlab && .venv/bin/jupyter lab lab5/": PYPI
    + "; the notebook runs under nbclient in "
    + RUNS_NOTEBOOK,
    "bash pipeline.sh --dataset cifar10": "downloads CIFAR-10 (no network here); archives in "
    "its format run through tests/lab1/test_images.py",
    ".venv/bin/python -m pytest -m gpu": "needs a CUDA device (none here: deselected)",
    "bash pipeline.sh --dataset fashion_mnist -S model_preparation.cnn.processes=2": "two CNN "
    "processes on the full dataset (minutes); tests/lab1/test_distributed.py, on a small one",
    ".venv/bin/python -m lab1.core.distributed --nnodes 2 --nproc-per-node 4 --rdzv-backend c10d "
    "--rdzv-endpoint node1.example:29400 --rdzv-id fmnist-42 -m lab1.model_preparation "
    "--dataset fashion_mnist -S model_preparation.cnn.processes=4": "two machines, 4 GPUs each; "
    "its shape on one machine (two launchers, c10d on 127.0.0.1, one process each): " + TWO_NODES,
    ".venv/bin/python bench/cnn_bench.py": BENCH,
    ".venv/bin/python bench/cnn_bench.py --processes 1 2": BENCH,
    ".venv/bin/python bench/cnn_bench.py [--processes 1 2] "
    "[-S model_preparation.cnn.fashion_mnist...]": BENCH,
    ".venv/bin/python bench/pipeline_bench.py": BENCH,
    ".venv/bin/python bench/pipeline_bench.py [--repeat 3]": BENCH,
    ".venv/bin/python bench/serve_bench.py": BENCH,
    ".venv/bin/python bench/serve_bench.py [--model-uri URI]": BENCH,
    ".venv/bin/python bench/serve_bench.py [--seconds 10] [--connections 8]": BENCH,
    ".venv/bin/python bench/serve_bench.py --prediction-log": BENCH,
    ".venv/bin/python bench/serve_bench.py --prediction-log --seconds 8 --rounds 3": BENCH,
    ".venv/bin/python bench/serve_bench.py --against /tmp/before": BENCH,
    ".venv/bin/python bench/dvc_bench.py": BENCH,
    ".venv/bin/python bench/dvc_bench.py [--repeat 5]": BENCH,
    ".venv/bin/python -m lab3.monitor.simulate --weeks 20 --kinds normal climate sensor "
    "shifted": "80 weeks of traffic (minutes); a week of two kinds: " + SIMULATED,
    "python -m lab3.monitor --log postgresql://…": "the team stack's PostgreSQL (a placeholder "
    "URL); monitoring's reader on a real PostgreSQL: tests/lab3/test_prediction_log.py",
    "cp lab3/.env.example lab3/.env && $EDITOR lab3/.env": "an editor, by hand (the file: "
    + DOCKER
    + "test_env_example_sets_no_secret_and_compose_names_each_one)",
    "docker compose -f lab3/docker-compose.yml up --build": "Docker, and PostgreSQL and MinIO "
    "images from Docker Hub (not reachable here); the programs: tests/lab3/test_stack.py",
    "docker compose -f lab3/docker-compose.light.yml up --build": "Docker (under podman: "
    + LIGHT_STACK
    + ")",
    "REGISTRY=registry.example.com/team bash lab3/build.sh --push": "a registry to push to "
    "(the push guard: " + BUILD + ")",
    "sudo apt-get install podman runc mmdebstrap docker-compose "
    "golang-github-containernetworking-plugin-dnsname": "system packages (tests/tools.sh "
    "installs them for the container tests)",
    "MLFLOW_TRACKING_URI=http://mlflow.example:5000 MLFLOW_TRACKING_USERNAME=... "
    "MLFLOW_TRACKING_PASSWORD=... bash pipeline.sh": "a team's server (placeholders); a real "
    "mlflow server with basic auth: tests/lab1/test_tracking_credentials.py",
    "export MLFLOW_TRACKING_URI=http://mlflow.example:5000 "
    "MODEL_URI=models:/fashion_mnist-classifier@champion": "a team's server (placeholder); "
    "the service against a real mlflow server: tests/lab3/test_stack.py",
    "PREDICTION_LOG=reports/predictions-1 .venv/bin/python -m lab3.serve --host 0.0.0.0 "
    "--port 8081 &": REPLICAS,
    "PREDICTION_LOG=reports/predictions-2 .venv/bin/python -m lab3.serve --host 0.0.0.0 "
    "--port 8082 &": REPLICAS,
    "export AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=...": "AWS keys: no account here",
    ".venv/bin/python -m lab4.dataset_versions --remote s3://my-bucket/datasets": "AWS itself: "
    "no account, no network (" + MOTO + ")",
    ".venv/bin/python -m lab4.dataset_versions --remote s3://my-bucket/datasets --endpoint-url "
    "http://127.0.0.1:9000": "a MinIO on port 9000 (" + MOTO + ")",
    ".venv/bin/python -m lab4.dataset_versions --remote s3://bucket/dvc --endpoint-url "
    "http://minio:9000": "a MinIO host (" + MOTO + ")",
    "cd lab2/jenkins": "the first step of starting the Jenkins container (below)",
    "jenkins-jobs --conf jenkins_jobs.ini update lab2/jobs": "sends the job to a Jenkins server "
    "(none here); what it sends, rendered by `jenkins-jobs test`: tests/lab2/test_job_config.py::"
    "test_exported_config_xml_is_what_the_yaml_renders",
    "JENKINS_ADMIN_PASSWORD=change-me REPO_URL=https://github.com/<you>/mlops-labs.git "
    "docker-compose up -d --build": "Docker and the Jenkins image (not here); the compose file "
    "is checked: tests/lab2/test_job_config.py::test_jenkins_compose_file_is_valid",
    ".venv/bin/dvc": "names the program (lab4/README.md: call `.venv/bin/dvc`)",
    'python -c "..."': "quoted as what the health check is not (lab3/README.md)",
}


@dataclass(frozen=True)
class Shown:
    command: str  # whitespace collapsed, as the tables spell it
    source: str  # README.md, lab3/README.md, make help, --help of lab3.monitor ...
    where: str  # file:line, for the failure message


def make_targets() -> set[str]:
    return set(re.findall(r"^([a-z][a-z-]*):", (REPO / "Makefile").read_text(), re.MULTILINE))


def is_command(text: str, targets: set[str]) -> bool:
    """Does this text start as a user types one of this project's commands?"""
    rest = text[ASSIGNMENTS.match(text).end() :]  # type: ignore[union-attr]
    words = rest.split()
    if words[:1] == ["make"]:
        return len(words) == 1 or words[1] in targets
    return rest.startswith(PROJECT)


def squash(text: str) -> str:
    return " ".join(text.split())


def from_readme(name: str, targets: set[str]) -> list[Shown]:
    shown, prose = [], []  # prose: the lines outside the blocks (a block's lines blanked)
    fence: str | None = None  # the block's info string while inside one
    pending, start = "", 0
    for number, line in enumerate((REPO / name).read_text().splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith("```"):
            fence = None if fence is not None else stripped[3:].strip()
            prose.append("")
            continue
        prose.append(line if fence is None else "")
        if fence is None:
            continue
        if stripped.startswith("$ "):
            shown.append(Shown(squash(stripped[2:]), name, f"{name}:{number}"))
        else:
            text = re.sub(r"(^|\s)#.*$", "", line).rstrip()  # a comment, not a `#` in a word
            if not text.strip() or not (
                fence in SHELL_BLOCKS or pending or is_command(text, targets)
            ):
                continue
            start = start if pending else number
            pending += " " + text.removesuffix("\\")
            if not text.endswith("\\"):
                shown.append(Shown(squash(pending), name, f"{name}:{start}"))
                pending = ""
    text = "\n".join(prose)
    for span in re.finditer(r"`([^`]+)`", text):  # a span may wrap onto the next line
        if is_command(span.group(1), targets):
            number = text.count("\n", 0, span.start()) + 1
            shown.append(Shown(squash(span.group(1)), name, f"{name}:{number}"))
    return shown


def env_for(root: Path) -> dict[str, str]:
    from tests.project import clean_env

    path = f"{root / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}"
    return clean_env(PATH=path, PYTHONPATH=str(root))


def make_help() -> list[Shown]:
    said = subprocess.run(["make", "-s", "help"], cwd=REPO, capture_output=True, text=True,
                          check=True, timeout=60).stdout  # fmt: skip
    return [Shown(f"make {task}", "make help", "make help")
            for task in re.findall(r"^  make (\S+)", said, re.MULTILINE)]  # fmt: skip


def entry_points() -> list[list[str]]:
    """The argv of each entry point's --help: pipeline.sh, every module of lab1-lab5 that runs
    as a program, every bench/ script that does (not a bench's helper process)."""
    modules, scripts = [], []
    for path in sorted(REPO.glob("lab[1-5]/**/*.py")):
        if path.name == "__main__.py":
            modules.append(".".join(path.parent.relative_to(REPO).parts))
        elif MAIN in path.read_text():
            modules.append(".".join(path.with_suffix("").relative_to(REPO).parts))
    scripts = [
        str(p.relative_to(REPO)) for p in sorted(REPO.glob("bench/*.py")) if MAIN in p.read_text()
    ]
    return [
        ["bash", "pipeline.sh", "--help"],
        *([sys.executable, "-m", module, "--help"] for module in modules),
        *([sys.executable, script, "--help"] for script in scripts),
    ]


def from_help(argv: list[str], targets: set[str]) -> list[Shown]:
    name = argv[2] if argv[1] == "-m" else argv[1]
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=120,
                          env=env_for(REPO))  # fmt: skip
    assert done.returncode == 0, f"{name} --help: exit {done.returncode}: {done.stderr[-2000:]}"
    shown = []
    for line in done.stdout.splitlines():
        text = DESCRIPTION.split(line.strip(), maxsplit=1)[0]
        if text and is_command(text, targets):
            shown.append(Shown(squash(text), f"--help of {name}", f"{name} --help"))
    return shown


def collect() -> list[Shown]:
    targets = make_targets()
    shown = [s for name in DOCS for s in from_readme(name, targets)] + make_help()
    with ThreadPoolExecutor(4) as pool:  # the --help of ~25 entry points, each a process
        for found in pool.map(lambda argv: from_help(argv, targets), entry_points()):
            shown += found
    return shown


@pytest.fixture(scope="module")
def shown() -> list[Shown]:
    return collect()


def test_every_command_the_docs_show_is_run_tested_or_excused(shown):
    tables = {"RUN": set(RUN), "TESTED": set(TESTED), "NOT_HERE": set(NOT_HERE)}
    twice = Counter(c for table in tables.values() for c in table)
    assert not [c for c, n in twice.items() if n > 1], "a command is in two tables"
    known = set().union(*tables.values())
    unknown = sorted({f"{s.where}: {s.command}" for s in shown if s.command not in known})
    assert not unknown, "shown in the docs, but in none of RUN, TESTED, NOT_HERE:\n" + "\n".join(
        unknown
    )
    stale = sorted(known - {s.command for s in shown})
    assert not stale, "in the tables, but no longer shown in the docs:\n" + "\n".join(stale)
    # Every source gave something: a collector that silently finds nothing would pass above.
    sources = {s.source for s in shown}
    assert {*DOCS, "make help", "--help of pipeline.sh", "--help of lab3.monitor"} <= sources


def test_each_test_named_in_the_table_exists():
    missing = []
    for command, test in TESTED.items():
        path, _, name = test.partition("::")
        file = REPO / path
        if not file.is_file() or not re.search(rf"^def {name}\(", file.read_text(), re.MULTILINE):
            missing.append(f"{command}: {test}")
    assert not missing, "no such test:\n" + "\n".join(missing)


def test_every_dvc_remote_step_shown_is_one_the_s3_test_runs(shown):
    """The docs' `dvc remote` steps for the project's outputs are the ones .dvc/config
    documents, which the S3 test runs as written, or lab4/README.md's steps, which their walk
    runs as written and checks `git status` after: a step that writes the remote's settings into
    the tracked .dvc/config (no `--local`) would leave the checkout dirty."""
    from tests.lab4.test_dvc_pipeline import documented_remote_commands
    from tests.lab4.test_readme_steps import walked_commands

    tested = {" ".join(["dvc", *c]) for c in documented_remote_commands(REPO / ".dvc" / "config")}
    tested |= set(walked_commands())
    steps = {s.command for s in shown if s.command.startswith("dvc remote ")}
    exercise = {"dvc remote add -d storage /path/to/remote"}  # lab4's scratch repository
    assert steps - exercise <= tested, steps - exercise - tested


@pytest.fixture(scope="module")
def fresh_clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh copy of the project whose .venv is the environment the tests run in."""
    from tests.project import copy_project

    root = copy_project(tmp_path_factory.mktemp("clone") / "project")
    (root / ".venv").symlink_to(sys.prefix)
    return root


def write_readings(root: Path) -> None:
    """my.csv: a year of a user's daily readings at the stations params.yaml names."""
    params = yaml.safe_load((root / "params.yaml").read_text())
    stations = params["data_creation"]["temperature"]["stations"]
    days = [f"2023-{m:02}-{d:02}" for m in range(1, 13) for d in range(1, 29)]
    rows = [f"{day},{s},{(7 * k + 3 * i) % 25 - 5}" for i, s in enumerate(stations)
            for k, day in enumerate(days)]  # fmt: skip
    (root / "my.csv").write_text("date,station,temperature\n" + "\n".join(rows) + "\n")


@pytest.mark.parametrize("command", sorted(RUN))
def test_the_quick_commands_work_as_written(command, fresh_clone):
    code, said = RUN[command]
    done = subprocess.run(["bash", "-c", command], cwd=fresh_clone, env=env_for(fresh_clone),
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == code, f"{command}: exit {done.returncode}\n{output[-3000:]}"
    assert said in output, f"{command}: no {said!r} in\n{output[-3000:]}"
    assert "Traceback" not in output, output[-3000:]
    dvc_yaml = (fresh_clone / "dvc.yaml").read_text()
    assert dvc_yaml == (REPO / "dvc.yaml").read_text(), (
        "dvc.yaml changed: the committed one is stale"
    )


@pytest.mark.integration
def test_the_make_tasks_run_as_written(project):
    """The README's first hour, in a fresh copy of the project, one command after the other
    as a user types them: `make pipeline`, another estimator the gate rejects, `make lineage`
    (and the commands it stands for), a stage alone, a user's CSV, `make ui`, `make clean`."""
    from lab1.core.workspace import users_of
    from tests.lab3.conftest import wait_for
    from tests.loopback import free_port

    root = project.root
    (root / ".venv").symlink_to(sys.prefix)
    env = env_for(root)

    def make(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", "-c", " ".join(args)], cwd=root, env=env,
                              capture_output=True, text=True, timeout=timeout)  # fmt: skip

    done = make("make pipeline")
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines()[-1].startswith("Model test accuracy is: ")
    for command in ("make lineage", ".venv/bin/python -m lab1.lineage", "python -m lab1.lineage"):
        done = make(command, timeout=120)
        assert done.returncode == 0, f"{command}: {done.stderr[-3000:]}"
        assert "models:/temperature-classifier/1" in done.stdout, done.stdout
        assert "bash pipeline.sh" in done.stdout  # the command that rebuilds it
    done = make("python -m lab1.lineage --json", timeout=120)
    assert done.returncode == 0 and '"temperature-classifier"' in done.stdout, done.stderr[-3000:]
    # Step 3 of the README's first hour: the same again (params.yaml's dataset, named), then
    # another estimator, which the gate rejects.
    done = make("bash pipeline.sh --dataset temperature")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "unchanged: version 1 already is champion" in done.stderr, done.stderr[-3000:]
    done = make("bash pipeline.sh -S model_preparation.estimator=logistic_regression")
    assert done.returncode == 3, done.stderr[-3000:]
    assert "0.920 < 0.929" in done.stderr, done.stderr[-3000:]  # the README's figures
    done = make(".venv/bin/python -m lab1.model_testing", timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("Model test accuracy is: "), done.stdout
    write_readings(root)
    done = make(".venv/bin/python lab1/data_creation.py --csv my.csv", timeout=300)
    assert done.returncode == 0 and "wrote 8 station files" in done.stderr, done.stderr[-3000:]
    port = free_port()
    ui = subprocess.Popen(
        ["make", "ui", f"PORT={port}"],
        cwd=root,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # make and the UI it starts: one group, this test's
    )
    try:
        said = []
        for line in ui.stdout or ():
            said.append(line)
            if "MLflow UI ready" in line:
                break
        assert any(f"http://127.0.0.1:{port}" in line for line in said), "".join(said)
    finally:
        os.killpg(ui.pid, signal.SIGTERM)
        ui.wait(timeout=60)
    # make can be gone while a process of the UI still closes the store (seen on a loaded
    # machine); until it has, make clean rightly refuses, naming it.
    wait_for(lambda: not users_of(root / ".mlflow"), timeout=60)
    done = make("make clean", timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert not (root / ".mlflow").exists() and not (root / "data").exists()


if __name__ == "__main__":  # what is collected, for whoever updates the tables
    for item in collect():
        print(f"{item.where:32} {item.command}")
