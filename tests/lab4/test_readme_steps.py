"""lab4/README.md's steps, walked as a student types them: every command of the blocks under
"## The steps", read from the README itself, in order and as written, in a git repository made
from a copy of the project. `git status` after each command is what the README says it is."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lab1.core.stages import STAGES
from tests.lab4.test_dvc_pipeline import DVC, output_files, ran
from tests.project import REPO, Project, clean_env, copy_project, param_change

pytestmark = pytest.mark.e2e  # the pipeline twice under DVC, then a push and a pull

README = REPO / "lab4" / "README.md"
SECTION = "## The steps"
EXPERIMENT = "dvc exp run -S model_preparation.hist_gradient_boosting.learning_rate=0.1"

# `git status --porcelain` after the commands the README says change it; every other command
# leaves it as it was. Matched on the command's start.
STATUS_AFTER = {
    "dvc repro": ["?? dvc.lock"],  # until the commit on the step's last line
    "git add dvc.lock && git commit ": [],
    EXPERIMENT: [" M dvc.lock", " M params.yaml"],  # the experiment's results, in the workspace
    "git checkout params.yaml dvc.lock && dvc checkout": [],
    "git clone ": [],  # a new repository, clean
}


def steps(text: str) -> list[str]:
    """The commands of the ```bash blocks of the README's section SECTION, comments dropped."""
    assert f"\n{SECTION}\n" in text, f"{README}: no section {SECTION!r}"
    section = text.split(f"\n{SECTION}\n", 1)[1].split("\n## ", 1)[0]
    commands = []
    for block in re.findall(r"^```bash\n(.*?)^```", section, re.MULTILINE | re.DOTALL):
        for line in block.splitlines():
            command = re.sub(r"(^|\s)#.*$", "", line).strip()  # a comment, not a `#` in a word
            assert not command.endswith("\\"), f"{line!r}: the walk takes one line a command"
            if command:
                commands.append(command)
    return commands


def walked_commands() -> list[str]:
    """What the walk runs (tests/test_docs_commands.py lists them as tested here)."""
    return steps(README.read_text())


def run(command: str, shell: dict[str, str], env: dict[str, str], tmp: Path):
    """Run one command line in bash where the previous one left the student's shell: ``shell``
    holds its PWD and OLDPWD, and is updated, so that a `cd` (and `cd -`) carries over to the
    next command as in one shell."""
    where = tmp / "shell"
    script = f'{command}\nstatus=$?\necho "$PWD\n$OLDPWD" > "$WALK_SHELL"\nexit $status'
    done = subprocess.run(
        ["bash", "-c", script],
        cwd=shell["PWD"],
        env={**env, "OLDPWD": shell["OLDPWD"], "WALK_SHELL": str(where)},
        capture_output=True,
        text=True,
        timeout=900,
    )
    shell["PWD"], shell["OLDPWD"] = where.read_text().splitlines()
    return done


def git_status(cwd: Path) -> list[str]:
    done = subprocess.run(
        ["git", "status", "--porcelain"], cwd=cwd, capture_output=True, text=True, check=True
    )
    return sorted(done.stdout.splitlines())


def dvc(cwd: Path, *args: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        [DVC, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"dvc {' '.join(args)}: {done.stderr[-3000:]}"
    return done.stdout


def test_the_steps_work_as_written_in_order(tmp_path):
    # The student's checkout: a git repository of the project, DVC's tools on PATH (an activated
    # .venv), one year of readings (committed) to keep the two pipeline runs short. Step 3 puts
    # its remote and its clone beside it, in tmp_path.
    root = copy_project(tmp_path / "project")
    param_change("data_creation.temperature.years", 1)(root)
    (root / ".venv").symlink_to(sys.prefix)
    env = clean_env(
        PATH=f"{root / '.venv' / 'bin'}:{clean_env()['PATH']}",
        COLUMNS="1000",  # `dvc exp show` as wide as it needs: no column cut to "…"
        GIT_AUTHOR_NAME="student",
        GIT_AUTHOR_EMAIL="student@example.com",
        GIT_COMMITTER_NAME="student",
        GIT_COMMITTER_EMAIL="student@example.com",
    )
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "the project"]):
        subprocess.run(["git", *args], cwd=root, env=env, check=True, capture_output=True)
    # A student's .venv is a folder, which .gitignore's `.venv/` covers; this one is a link.
    (root / ".git" / "info" / "exclude").write_text("/.venv\n")
    assert git_status(root) == []

    commands = walked_commands()
    assert len(commands) > 10, commands
    said: dict[str, list[str]] = {}  # each command's stdout, once per time it ran
    shell, status = {"PWD": str(root), "OLDPWD": str(root)}, []
    for command in commands:
        done = run(command, shell, env, tmp_path)
        cwd = Path(shell["PWD"])
        output = done.stdout + done.stderr
        assert done.returncode == 0, f"{command}: exit {done.returncode}\n{output[-3000:]}"
        for wrong in ("failed to load", "Traceback", "ERROR"):
            assert wrong not in output, f"{command}:\n{output[-3000:]}"
        for start, after in STATUS_AFTER.items():
            if command.startswith(start):
                status = after
        assert git_status(cwd) == status, f"after {command}"
        said.setdefault(command, []).append(done.stdout)
    assert cwd.resolve() == root.resolve(), "the steps end back in the checkout"
    clone = tmp_path / "lab4-clone"

    def output_of(command: str) -> list[str]:
        assert command in said, f"the steps no longer run {command!r}"
        return said[command]

    # Step 1: the first repro runs every stage, the second none.
    first, second = output_of("dvc repro")
    assert ran(first) == list(STAGES) and ran(second) == []
    assert "Data and pipelines are up to date" in second

    # Step 2: the experiment re-runs what the parameter affects, and every comparison finds the
    # metrics of the commit and of the experiment.
    rerun = ["model_preparation", "model_testing", "model_registration"]
    assert ran(output_of(EXPERIMENT)[0]) == rerun
    (table,) = output_of("dvc exp show")
    assert not re.search(r"(^|\s)!(\s|$)", table, re.MULTILINE), table  # `!`: failed to load
    assert "metrics.accuracy" in table, table
    rows = json.loads(dvc(root, "exp", "show", "--json", env=env))
    main = rows[1]  # [0] is the workspace, then the commit with its experiments under it
    experiments = [rev for exp in main["experiments"] for rev in exp["revs"]]
    assert len(experiments) == 1
    rates = []
    for row in (main, *experiments):
        metrics = row["data"]["metrics"]["reports/metrics.json"]
        assert "error" not in metrics and metrics["data"]["metrics"]["accuracy"] > 0.5, row
        params = row["data"]["params"]["params.yaml"]["data"]["model_preparation"]
        rates.append(params["hist_gradient_boosting"]["learning_rate"])
    assert rates[1] == 0.1 and rates[0] != 0.1, rates
    # `dvc metrics diff` lists the metrics that differ, each with both values ("-": none).
    header, *lines = output_of("dvc metrics diff")[0].splitlines()
    assert re.split(r"\s{2,}", header.strip())[2:4] == ["HEAD", "workspace"], header
    assert lines and all(re.split(r"\s{2,}", line.strip())[2] != "-" for line in lines), lines
    assert (root / "dvc_plots" / "index.html").is_file()  # where `dvc plots diff` wrote
    # The checkout's outputs are the commit's again: what dvc.lock (unchanged) names.
    assert "up to date" in dvc(root, "status", env=env)

    # Both registered versions lead back to DVC's hash of the data they were trained on.
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    raw_md5 = next(
        out["md5"] for out in lock["stages"]["data_creation"]["outs"] if out["path"] == "data/raw"
    )
    versions = Project(root).client().search_model_versions("name='temperature-classifier'")
    assert len(versions) == 2
    assert {v.tags["dvc.data_md5"] for v in versions} == {raw_md5}
    assert {v.tags["dvc.stage"] for v in versions} == {"model_registration"}

    # Step 3: the remote is in sync, and the fresh clone pulled every output, byte for byte,
    # with no stage to re-run.
    assert "in sync" in output_of("dvc status -c")[0]
    assert "up to date" in output_of("dvc status")[0]
    pulled = output_files(Project(clone))
    assert pulled == output_files(Project(root))
    assert any(name.startswith("models/") for name in pulled)
    assert "reports/metrics.json" in pulled and "reports/registration.json" in pulled
    assert git_status(root) == [] and git_status(clone) == []
