"""Experiment tracking: the only package that starts or ends runs; importing it imports no MLflow.

One experiment per dataset; per pipeline execution one parent run and one child run per stage.

  store      the tracking URI (``MLFLOW_TRACKING_URI``, else SQLite under ``.mlflow/``), the
             connection, experiments
  tags       what every run and version carries: git commit, params hash, DVC, CI build
  ui         the MLflow UI's model-training view, links, the saved view of the runs table
  parent     the pipeline's parent run, and runs whose process died (marked KILLED)
  recorder   the MLflow side of one stage run
  service    one process per pipeline.sh run that holds the MLflow client (wandb's pattern), and
             the stages' socket client, so that a stage never imports MLflow on its critical path
  stage_run  what a stage uses: MLflow's fluent calls, sent to the service, else to a recorder
             in its own process (a stage alone, Jenkins' steps, dvc repro)
"""

from lab1.core.tracking.store import connect, experiment_id, is_embedded, tracking_uri

__all__ = ["connect", "experiment_id", "is_embedded", "tracking_uri"]
