# The project's tasks, one line each. `make` alone lists them. Every task calls the same scripts
# the README documents; nothing here is needed (each recipe is a command you can type yourself).
PY := .venv/bin/python
STORE := sqlite:///.mlflow/mlflow.db
PORT ?= 5000
ENTRY ?= model_testing
DATASET ?=  # empty: params.yaml's `dataset`

.PHONY: help setup pipeline ui serve simulate monitor lineage mlflow-run test test-quick clean

help:  ## this list
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-11s %s\n", $$1, $$2}'

setup:  ## create .venv from the lock files (pipeline.sh does it on first use anyway)
	bash pipeline.sh --setup --dev

pipeline:  ## run the five stages: bash pipeline.sh (DATASET=cifar10 for the CNN)
	bash pipeline.sh $(if $(DATASET),--dataset $(DATASET))

ui:  ## the MLflow UI on the project's store: http://127.0.0.1:5000 (the link pipeline.sh prints)
	$(PY) -m lab1.core.mlflow_ui --backend-store-uri $(STORE) --port $(PORT)

serve:  ## the model service on the champion: http://127.0.0.1:8080 (demo page), /docs
	$(PY) -m lab3.serve

simulate:  ## with `make serve` running: a normal week of traffic, then a shifted one, monitored
	$(PY) -m lab3.monitor.simulate

monitor:  ## the served model's last 7 days against its training data: report, MLflow run
	$(PY) -m lab3.monitor

lineage:  ## how the champion was made, and the command that rebuilds it
	$(PY) -m lab1.lineage

mlflow-run:  ## one stage through MLflow Projects into the project's store (ENTRY=model_testing)
	MLFLOW_TRACKING_URI=$(STORE) $(PY) -m mlflow run . -e $(ENTRY) --env-manager local \
	  --experiment-name "$$($(PY) -m lab1.core.cli --experiment-name)"

test:  ## the full test command (the README's; CI runs it)
	bash tests/run.sh

test-quick:  ## the fast unit tests only (no end-to-end, browser, container, fault or tool tests)
	$(PY) -m pytest -q -m "not e2e and not faults and not tools and not browser and not container and not images"

clean:  ## remove what runs made (data, models, reports, the embedded MLflow store); keeps .venv
	bash pipeline.sh --clean
