"""The monitoring loop on a real pipeline's model: the README's simulation against the running
service, the report in a browser, the gauges scraped by a real Prometheus, same-distribution
traffic across seeds, and the trigger that retrains through the gate."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.parse
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from lab1.core.params import load_params
from tests.browser import chromium, page_text
from tests.loopback import LOCAL, Process, free_port, wait_http
from tests.project import SMALL, Project, clean_env

pytestmark = pytest.mark.e2e
ACCURACY_LINE = re.compile(r"^Model test accuracy is: \d\.\d{3}$")


def env_of(project: Project) -> dict[str, str]:
    return clean_env(PYTHONPATH=str(project.root))


def monitor(project: Project, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lab3.monitor", *args],
        cwd=project.root,
        env=env_of(project),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def trained(module_project: Project) -> Project:
    done = module_project.pipeline(*SMALL)
    assert done.returncode == 0, done.stderr[-3000:]
    return module_project


@pytest.fixture(scope="module")
def simulated(trained: Project, tmp_path_factory) -> subprocess.CompletedProcess:
    """`make serve` and `python -m lab3.monitor.simulate`, as the README has them."""
    env, port = env_of(trained), free_port()
    argv = [sys.executable, "-m", "lab3.serve", "--port", str(port)]
    log = tmp_path_factory.mktemp("service") / "service.log"
    service = Process("model-service", argv, log, env=env, cwd=trained.root)
    try:
        wait_http(service, f"http://127.0.0.1:{port}/ready")
        return subprocess.run(
            [sys.executable, "-m", "lab3.monitor.simulate", "--url", f"http://127.0.0.1:{port}"],
            cwd=trained.root,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        service.stop()


def monitoring_runs(project: Project) -> list:
    """The monitoring runs: in their own experiment, beside the pipeline's."""
    runs = project.runs("lab1-temperature-monitoring")
    assert all(r.data.tags.get("mlops.kind") == "monitoring" for r in runs)
    return runs


def week_window(project: Project, kind: str) -> tuple[str, str]:
    """The logged times of the simulation's week of ``kind``: --since and --until."""
    times = [
        json.loads(line)["time"]
        for path in (project.root / "reports" / "predictions").glob("*.jsonl")
        for line in path.read_text().splitlines()
        if f"-{kind}-" in json.loads(line)["request_id"]
    ]
    last = datetime.fromisoformat(max(times).replace("Z", "+00:00")) + timedelta(seconds=1)
    return min(times), last.isoformat()


def test_the_simulation_flags_the_shifted_week_and_not_the_normal_one(trained, simulated):
    assert simulated.returncode == 0, simulated.stderr[-3000:]
    assert simulated.stdout == ""
    assert "normal   weeks with an alarm: 0 of 1" in simulated.stderr
    assert "shifted  weeks with an alarm: 1 of 1" in simulated.stderr
    champion = trained.client().get_model_version_by_alias("temperature-classifier", "champion")
    runs = {r.info.run_id: r for r in monitoring_runs(trained)}
    assert len(runs) == 2
    # The pipeline's story holds the pipeline's runs only.
    assert not [r for r in trained.runs() if r.data.tags.get("mlops.kind") == "monitoring"]
    for run in runs.values():  # linked to the served version and its logged model
        assert run.data.tags["model.version"] == str(champion.version)
        assert run.data.tags["model.id"] == champion.source.removeprefix("models:/")
        metrics = set(run.data.metrics)
        assert {"drift_share", "prediction_psi", "missing_share", "served_accuracy"} <= metrics
        assert "accuracy" not in metrics  # the pipeline's test accuracy is another figure
        artifacts = [a.path for a in trained.client().list_artifacts(run.info.run_id)]
        assert any(a.endswith(".html") for a in artifacts)
    alarms = sorted(r.data.tags["monitoring.alarm"] != "none" for r in runs.values())
    assert alarms == [False, True]
    # The alarm's run says in its description what moved, how much it matters, what next.
    (alarm,) = [r for r in runs.values() if r.data.tags["monitoring.alarm"] != "none"]
    note = alarm.data.tags["mlflow.note.content"]
    assert "What moved" in note and "**How much it matters:** quality " in note
    assert "**Next step:**" in note
    assert alarm.data.tags["monitoring.verdict"].startswith("ALARM, quality")
    assert alarm.info.run_name.startswith(f"v{champion.version} ALARM, quality")  # at a glance
    logged = trained.client().get_logged_model(runs[next(iter(runs))].data.tags["model.id"])
    assert "drift_share" in {m.key for m in logged.metrics}  # on the model's own page too


def test_make_monitor_as_the_simulation_prints_it_sees_the_shifted_week(trained, simulated):
    """`make monitor` alone judges 7 days, the weeks mixed; the simulation's last line gives
    the window of the shifted week, and that command raises the alarm with its next step."""
    printed = re.search(r"the last shifted week again: (make monitor \S+ \S+ \S+)$",
                        simulated.stderr, re.MULTILINE)  # fmt: skip
    assert printed, simulated.stderr[-2000:]
    venv = trained.root / ".venv"
    if not venv.exists():
        venv.symlink_to(sys.prefix)
    done = subprocess.run(printed.group(1).split(), cwd=trained.root, env=env_of(trained),
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    # The monitor exits 3 (an alarm); make says so in words, last, and ends with 0.
    assert done.returncode == 0 and "***" not in done.stderr, done.stderr[-3000:]
    said = done.stderr.splitlines()[-1]
    assert said.startswith("make monitor: an alarm") and "Exit 3 is a decision" in said, said
    verdict = done.stderr.splitlines()[-2]  # the monitor's last line, before make's
    assert "280 rows" in verdict and "ALARM: the inputs drifted" in verdict, verdict
    assert ". Quality " in verdict and "Next: " in verdict  # labels given: quality is known


@pytest.mark.browser
def test_the_report_reads_in_a_browser_without_the_network(trained, simulated):
    reports = trained.root / "reports" / "monitoring" / "simulation"
    with chromium() as driver:
        for week, verdict in (("shifted-0", "Next step:"), ("normal-0", "Nothing to act")):
            driver.get((reports / f"{week}.html").as_uri())
            text = page_text(driver)
            assert verdict in text and "temperature-classifier version" in text
            assert len(driver.find_elements("css selector", "svg")) == 20  # 19 features + answer
            assert driver.find_elements("css selector", "script") == []
            loaded = driver.execute_script("return performance.getEntriesByType('resource')")
            assert loaded == []  # nothing fetched: no CDN, no font, no image
        # A person sees why: the shifted week's reasons in words, the moved rows marked.
        driver.get((reports / "shifted-0.html").as_uri())
        assert "measures moved" in page_text(driver) or "answers drifted" in page_text(driver)
        assert driver.find_elements("css selector", "tr.moved")
        # Tied to the version: its lineage, and links to it and its runs in the MLflow UI.
        assert "Trained from data" in page_text(driver)
        hrefs = [a.get_attribute("href") for a in driver.find_elements("css selector", "a")]
        assert any("/#/models/temperature-classifier/versions/" in h for h in hrefs), hrefs
        assert sum("/runs/" in h for h in hrefs) == 2  # this monitoring run, the training run


def test_a_real_prometheus_scrapes_the_gauges(trained, simulated, tmp_path, monkeypatch):
    gateway_port, prometheus_port = free_port(), free_port()
    shipped = (Path(trained.root) / "lab3" / "monitor" / "prometheus.yml").read_text()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        shipped.replace("127.0.0.1:9091", f"127.0.0.1:{gateway_port}").replace(
            "scrape_interval: 15s", "scrape_interval: 1s"
        )
    )
    gateway = Process(
        "pushgateway",
        ["prometheus-pushgateway", f"--web.listen-address=127.0.0.1:{gateway_port}"],
        tmp_path / "gateway.log",
    )
    prometheus = Process(
        "prometheus",
        ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{prometheus_port}"],
        tmp_path / "prometheus.log",
    )  # fmt: skip
    try:
        wait_http(gateway, f"http://127.0.0.1:{gateway_port}/-/ready")
        wait_http(prometheus, f"http://127.0.0.1:{prometheus_port}/-/ready")
        since, until = week_window(trained, "shifted")
        # In this process, as the subprocess tests above cannot count towards coverage.
        from lab3.monitor.__main__ import main as monitor_main

        labels = trained.root / "reports/monitoring/simulation/shifted-0.labels.csv"
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{trained.root}/.mlflow/mlflow.db")
        code = monitor_main([
            "--params", str(trained.root / "params.yaml"),
            "--log", str(trained.root / "reports" / "predictions"),
            "--report", str(tmp_path / "report.html"),
            "--since", since, "--until", until, "--labels", str(labels),
            "--pushgateway", f"http://127.0.0.1:{gateway_port}",
        ])  # fmt: skip
        assert code == 3 and "Next step:" in (tmp_path / "report.html").read_text()
        run = max(monitoring_runs(trained), key=lambda r: r.info.start_time)
        series = scraped(prometheus_port, "monitoring_drift_share")
        assert series["metric"]["version"] == run.data.tags["model.version"]
        assert float(series["value"][1]) == pytest.approx(run.data.metrics["drift_share"])
        assert float(scraped(prometheus_port, "monitoring_alarm")["value"][1]) == 1.0
        # Every series the shipped Grafana dashboard plots is one Prometheus has.
        names = query(prometheus_port, "/api/v1/label/__name__/values")
        dashboard = json.loads((trained.root / "lab3/monitor/grafana-dashboard.json").read_text())
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                used = set(re.findall(r"monitoring_\w+", target["expr"]))
                assert used and used <= set(names), (panel["title"], used - set(names))
    finally:
        prometheus.stop()
        gateway.stop()


def query(port: int, path: str) -> list:
    with LOCAL.open(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
        body = json.loads(answer.read())
    assert body["status"] == "success", body
    return body["data"] if isinstance(body["data"], list) else body["data"]["result"]


def scraped(port: int, metric: str, timeout: float = 30.0) -> dict:
    """The one series of ``metric`` once Prometheus has scraped it."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = query(port, "/api/v1/query?query=" + urllib.parse.quote(metric))
        if result:
            assert len(result) == 1, result
            return result[0]
        time.sleep(0.5)
    raise AssertionError(f"Prometheus has no {metric} after {timeout} s")


def test_same_distribution_traffic_raises_no_alarm_across_seeds(trained):
    from lab1.core.model_io import load_model
    from lab3.monitor.checks import run_checks
    from lab3.monitor.simulate import fleet
    from lab3.monitor.traffic import Traffic

    params = load_params(trained.root / "params.yaml", list(SMALL[1::2]))
    model = load_model(trained.root / "models" / "model")
    profile = json.loads((trained.root / "models/model/reference_profile.json").read_text())
    gate = params.model_registration["temperature"]
    raised = {}
    for kind in ("normal", "shifted"):
        for seed in range(100, 120):
            stations = fleet(kind, seed, 40, params)
            inputs = np.array([w for _, windows, _ in stations for w in windows])
            frame = model_input(inputs, profile["settings"]["columns"])
            probabilities = model.predict_proba(frame)[:, 1]
            keys = [(name, i) for name, windows, _ in stations for i in range(len(windows))]
            labels = {
                (name, i): (int(bool(k)), k)
                for name, _, kinds in stations
                for i, k in enumerate(kinds)
            }
            traffic = Traffic("m", "1", profile["settings"]["columns"], keys, inputs,
                              probabilities, (probabilities > 0.5).astype(int), 0)  # fmt: skip
            result = run_checks(traffic, profile, params.monitoring, gate, labels)
            raised[(kind, seed)] = result.alarms
    false_alarms = {k: v for k, v in raised.items() if k[0] == "normal" and v}
    missed = [k for k, v in raised.items() if k[0] == "shifted" and not v]
    assert not false_alarms and not missed, (false_alarms, missed)


def model_input(inputs: np.ndarray, columns: list[str]):
    import pandas as pd

    return pd.DataFrame(inputs, columns=columns)


def test_an_alarm_with_retrain_runs_the_pipeline_through_the_gate(trained, simulated):
    since, until = week_window(trained, "shifted")
    before = [
        r for r in trained.runs() if r.data.tags.get("mlflow.runName") == "model_registration"
    ]
    done = monitor(trained, "--since", since, "--until", until, "--retrain", "--",
                   *SMALL, "-S", "data_creation.seed=43", timeout=600)  # fmt: skip
    assert done.returncode == 3, done.stderr[-3000:]  # the alarm's code, retraining or not
    assert ACCURACY_LINE.match(done.stdout.splitlines()[-1])  # the pipeline's own last line
    assert re.search(r"retraining finished with exit code [03]\b", done.stderr)
    after = [r for r in trained.runs() if r.data.tags.get("mlflow.runName") == "model_registration"]
    assert len(after) == len(before) + 1  # one more gated registration
    decision = json.loads((trained.root / "reports" / "registration.json").read_text())
    assert decision["decision"] in ("promoted", "rejected", "unchanged"), decision


def test_the_monitoring_jobs_step_exits_3_on_an_alarm_which_the_job_turns_into_a_build(
    trained, simulated
):
    from tests.lab2.jenkinsfile import parse

    path = trained.root / "lab2" / "monitor.Jenkinsfile"
    jenkinsfile = parse(path)
    assert list(jenkinsfile.stages) == ["Setup", "Monitor"]
    (step,) = jenkinsfile.stages["Monitor"]
    assert step.return_status  # the exit code goes to Groovy, which decides
    since, until = week_window(trained, "shifted")
    env = {**env_of(trained), "MONITOR_ARGS": f"--since {since} --until {until}"}
    del env["MLOPS_VENV"]  # a Jenkins workspace has its own .venv
    venv = trained.root / ".venv"
    if not venv.exists():
        venv.symlink_to(sys.prefix)
    done = subprocess.run(["sh", "-c", step.script], cwd=trained.root, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 3, done.stderr[-2000:]
    # What Groovy does with 3: UNSTABLE, and the pipeline job started when RETRAIN is set.
    groovy = path.read_text()
    body = groovy[groovy.index("if (status == 3)") : groovy.index("} else if (status != 0)")]
    assert "unstable(" in body and "if (params.RETRAIN)" in body
    assert "build(job: params.PIPELINE_JOB" in body
