"""Runs whose process died without ending them (SIGKILL, power loss): marked KILLED.

Every run carries the host and PID of the process that owns it (lineage.owner_tags); the next
pipeline begin or end on the same host finds RUNNING runs whose process is gone.
"""

from __future__ import annotations

import logging
import socket
from typing import TYPE_CHECKING

from lab1.core.io import pid_alive

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

logger = logging.getLogger(__name__)


def mark_orphans_killed(client: MlflowClient) -> list[str]:
    """Mark KILLED every RUNNING run started on this host by a process that no longer exists.

    Runs with PID 0 belong to a run-context file, not a process, and are left alone here. A
    stage's run is also left alone while the process recording it (``mlops.recorder_pid``: the
    pipeline's tracking service) lives: its stage may have exited with the end still queued.
    """
    host = socket.gethostname()
    experiments = [e.experiment_id for e in client.search_experiments()]
    if not experiments:
        return []
    killed = []
    for run in client.search_runs(experiments, filter_string="attributes.status = 'RUNNING'"):
        tags = run.data.tags
        pid = tags.get("mlops.pid", "")
        recorder = tags.get("mlops.recorder_pid", "")
        if recorder.isdigit() and pid_alive(int(recorder)):
            continue
        if tags.get("mlops.host") == host and pid.isdigit() and not pid_alive(int(pid)):
            client.set_tag(run.info.run_id, "mlops.end_reason", f"process {pid} died")
            client.set_terminated(run.info.run_id, status="KILLED")
            killed.append(run.info.run_id)
    if killed:
        logger.warning("marked %d run(s) KILLED whose process had died: %s", len(killed), killed)
    return killed
