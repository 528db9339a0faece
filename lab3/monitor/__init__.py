"""Monitoring of the served model (issue 26): `.venv/bin/python -m lab3.monitor --help`.

traffic: the prediction log's rows and the labels file; checks: drift, missing readings and
quality; report: the HTML page; publish: MLflow and Prometheus; simulate: a week of normal and a
week of shifted traffic sent to a running service, for students.
"""
