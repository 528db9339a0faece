# The project's tasks, one line each. `make` alone lists them. Every task calls the same scripts
# the README documents; nothing here is needed (each recipe is a command you can type yourself).
PY := .venv/bin/python
STORE := sqlite:///.mlflow/mlflow.db
PORT ?= 5000
ENTRY ?= model_testing
DATASET ?=  # empty: params.yaml's `dataset`
SINCE ?=  # make monitor's window (ISO times, UTC); empty: the last 7 days, ending now
UNTIL ?=
LABELS ?=  # make monitor: a labels CSV (request_id,row,label[,fault_kind]); quality is then known

.PHONY: help setup pipeline ui serve simulate monitor lineage mlflow-run test test-integration clean

help:  ## this list
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-11s %s\n", $$1, $$2}'

setup:  ## create .venv from the lock files (pipeline.sh does it on first use anyway)
	bash pipeline.sh --setup --dev

pipeline:  ## run the five stages: bash pipeline.sh (DATASET=fashion_mnist for the CNN)
	bash pipeline.sh $(if $(DATASET),--dataset $(DATASET))

ui:  ## the MLflow UI on the project's store: http://127.0.0.1:5000 (the link pipeline.sh prints)
	$(PY) -m lab1.core.mlflow_ui --backend-store-uri $(STORE) --port $(PORT)

serve:  ## the model service on the champion: http://127.0.0.1:8080 (demo page), /docs
	$(PY) -m lab3.serve

simulate:  ## with `make serve` running: a normal week, then a shifted one, each monitored (~10 s)
	$(PY) -m lab3.monitor.simulate

monitor:  ## served traffic vs training data (last 7 days; SINCE= UNTIL= LABELS=): report, MLflow run
	$(PY) -m lab3.monitor $(if $(SINCE),--since $(SINCE)) $(if $(UNTIL),--until $(UNTIL)) \
	  $(if $(LABELS),--labels $(LABELS))

lineage:  ## how the champion was made, and the command that rebuilds it
	$(PY) -m lab1.lineage

# --env-manager local runs MLproject's `python -m ...` with the python on PATH: .venv's first.
mlflow-run:  ## one stage through MLflow Projects into the project's store (ENTRY=model_testing)
	PATH="$(CURDIR)/.venv/bin:$$PATH" MLFLOW_TRACKING_URI=$(STORE) $(PY) -m mlflow run . \
	  -e $(ENTRY) --env-manager local \
	  --experiment-name "$$($(PY) -m lab1.core.cli --experiment-name)"

test:  ## the README's test command: the quick tier (lint, types, unit, stages in-process, one pipeline.sh)
	bash tests/run.sh

test-integration:  ## the heavy tier: containers, servers, DVC on S3, Jenkins steps, browsers, CNN, interrupts
	bash tests/run.sh --integration

clean:  ## remove what runs made (data, models, reports, the embedded MLflow store); keeps .venv
	bash pipeline.sh --clean
