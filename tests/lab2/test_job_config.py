"""The job as code: Jenkins Job Builder renders it; the exported config.xml is up to date; the
configuration-as-code job and the compose file agree with it and are valid."""

from __future__ import annotations

import os
import subprocess
import xml.etree.ElementTree as ET

import pytest
import yaml

from tests.conftest import REPO, tool

LAB2 = REPO / "lab2"
EXPORTED = LAB2 / "export" / "mlops-pipeline" / "config.xml"

pytestmark = pytest.mark.tools


def render(out_dir) -> str:
    done = subprocess.run(
        [tool("jenkins-jobs"), "test", "--config-xml", "-o", str(out_dir), str(LAB2 / "jobs")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return (out_dir / "mlops-pipeline" / "config.xml").read_text()


def test_exported_config_xml_is_what_the_yaml_renders(tmp_path):
    assert render(tmp_path) == EXPORTED.read_text(), (
        "lab2/export is out of date: jenkins-jobs test --config-xml -o lab2/export lab2/jobs"
    )


def test_job_runs_the_jenkinsfile_from_scm_with_polling_and_webhook():
    root = ET.parse(EXPORTED).getroot()
    assert root.tag == "flow-definition"
    assert root.findtext("definition/scriptPath") == "Jenkinsfile"
    assert root.findtext(".//hudson.plugins.git.UserRemoteConfig/url").startswith("https://")
    triggers = root.find(".//triggers")
    assert triggers.findtext("hudson.triggers.SCMTrigger/spec") == "H/5 * * * *"
    assert triggers.find("com.cloudbees.jenkins.GitHubPushTrigger") is not None


def test_the_monitoring_job_runs_its_jenkinsfile_every_morning(tmp_path):
    render(tmp_path)
    exported = LAB2 / "export" / "mlops-monitor" / "config.xml"
    assert (tmp_path / "mlops-monitor" / "config.xml").read_text() == exported.read_text()
    root = ET.parse(exported).getroot()
    assert root.findtext("definition/scriptPath") == "lab2/monitor.Jenkinsfile"
    assert (REPO / "lab2" / "monitor.Jenkinsfile").is_file()
    assert root.findtext(".//hudson.triggers.TimerTrigger/spec") == "H 6 * * *"


def test_a_broken_job_definition_is_rejected(tmp_path):
    broken = tmp_path / "jobs"
    broken.mkdir()
    text = (LAB2 / "jobs" / "mlops-pipeline.yaml").read_text()
    (broken / "job.yaml").write_text(text.replace("pipeline-scm:", "pipeline-scmm:"))
    done = subprocess.run(
        [tool("jenkins-jobs"), "test", str(broken)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode != 0


def test_configuration_as_code_job_matches_the_job_builder_yaml():
    jjb = yaml.safe_load((LAB2 / "jobs" / "mlops-pipeline.yaml").read_text())
    project = next(item["project"] for item in jjb if "project" in item)
    casc = yaml.safe_load((LAB2 / "jenkins" / "casc.yaml").read_text())
    script = casc["jobs"][0]["script"]
    assert f"pipelineJob('{project['name']}')" in script
    assert f"scmpoll_spec('{project['poll-schedule']}')" in script
    assert f"branch('{project['branch']}')" in script
    assert "scriptPath('Jenkinsfile')" in script and "githubPush()" in script


def test_jenkins_compose_file_is_valid():
    compose = LAB2 / "jenkins" / "docker-compose.yml"
    env = {**os.environ, "JENKINS_ADMIN_PASSWORD": "test-only"}
    done = subprocess.run(
        [tool("docker-compose"), "-f", str(compose), "config"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    service = yaml.safe_load(done.stdout)["services"]["jenkins"]
    assert service["healthcheck"]["test"][-1].endswith("/login")
    assert service["environment"]["JENKINS_ADMIN_PASSWORD"] == "test-only"
    # Without the admin password compose refuses to start rather than run an open server.
    env.pop("JENKINS_ADMIN_PASSWORD")
    refused = subprocess.run(
        [tool("docker-compose"), "-f", str(compose), "config"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert refused.returncode != 0 and "JENKINS_ADMIN_PASSWORD" in refused.stderr


def test_ubuntu_setup_script_parses():
    done = subprocess.run(["bash", "-n", str(LAB2 / "setup-ubuntu.sh")], capture_output=True)
    assert done.returncode == 0, done.stderr
