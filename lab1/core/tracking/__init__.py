"""Experiment tracking: small modules, one job each. The only package that starts or ends runs.

Layout: one experiment per dataset; per pipeline execution one parent run and one child run per
stage. Stages are separate processes; what reaches MLflow, and from which process:

  store      the tracking URI, the connection, experiments (the embedded SQLite store is
             created once, under a file lock)
  lineage    tags every run and model version carries: git commit, params hash, DVC, CI build
  parent     the pipeline's parent run: begin, end, and the run-context file Jenkins uses
  orphans    runs whose process died (SIGKILL): marked KILLED by the next begin or end
  recorder   the MLflow side of one stage run (create, log, log the model, register, end)
  service    one tracking process per pipeline.sh run: holds the MLflow client, applies what
             the stages report (pattern: wandb's service process), so a stage never imports
             MLflow on its critical path
  client     the stages' side of the service's socket (standard library only)
  stage_run  what a stage uses: records to the service when pipeline.sh started one, else
             runs a recorder in its own process (a stage run alone, Jenkins steps, dvc repro)

Tracking URI: ``MLFLOW_TRACKING_URI`` if set (a server: nothing else changes), otherwise the
embedded SQLite store + artifact folder under ``.mlflow/`` in the project.

Only light names are re-exported here: importing this package never imports MLflow.
"""

from lab1.core.tracking.store import connect, experiment_id, is_embedded, tracking_uri

__all__ = ["connect", "experiment_id", "is_embedded", "tracking_uri"]
