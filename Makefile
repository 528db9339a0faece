# The project's tasks, one line each. `make` alone lists them. Every task calls the same scripts
# the README documents; nothing here is needed (each recipe is a command you can type yourself).
PY := .venv/bin/python
STORE := sqlite:///.mlflow/mlflow.db

# Settings: make TASK NAME=value.
# make ui's port; the links the other tasks print (and GET /model's) open the UI there
PORT ?= 5000
# make serve's port; make simulate sends its traffic there
SERVE_PORT ?= 8080
# make pipeline: empty is params.yaml's `dataset`; ARGS: pipeline.sh's options, split at spaces
DATASET ?=
ARGS ?=
# make monitor's window (ISO times, UTC; empty: the last 7 days, ending now) and a labels CSV
# (request_id,row,label[,fault_kind]): with it, quality is known too
SINCE ?=
UNTIL ?=
LABELS ?=
# make mlflow-run's entry point (MLproject)
ENTRY ?= model_testing

# A setting reaches its command as data, never as shell: it is exported, and the recipes read it
# quoted ("$$SINCE"). Written $(SINCE) in a recipe, make would paste the value into the command
# line before the shell reads it, and a `;`, a backtick or a $(...) in it would run. `$(value)`
# keeps each as typed (make would otherwise expand a $(...) in it itself).
SETTINGS := PORT SERVE_PORT DATASET ARGS SINCE UNTIL LABELS ENTRY
$(foreach name,$(SETTINGS),$(eval override $(name) := $$(value $(name))))
export $(SETTINGS)
# `mlflow run` (make mlflow-run) is MLflow's own process: its telemetry off, as lab1 sets it.
export MLFLOW_DISABLE_TELEMETRY ?= true

# The MLflow UI that links open: make ui's, on PORT. A tracking server (MLFLOW_TRACKING_URI=
# http...) is its own UI, and an MLFLOW_UI_URL of your own wins (lab1/core/mlflow_ui.py).
ifeq ($(filter http://% https://%,$(value MLFLOW_TRACKING_URI)),)
export MLFLOW_UI_URL ?= http://127.0.0.1:$(PORT)
endif

# Exit 3 is an answer, not a crash: the quality gate kept the champion (pipeline.sh), the monitor
# raised an alarm, or --clean found the store in use. Scripts and Jenkins run those commands
# themselves and act on the 3. A task is for a person, and make ends any non-zero exit with
# `make: *** [...] Error 3`, as after a crash: so a task says what the 3 means and ends with 0.
# Any other code, a real failure, still fails the task. Use: COMMAND || $(call decided,MEANING)
decided = { rc=$$?; [ $$rc -eq 3 ] || exit $$rc; \
  echo "make $@: $(1). Exit 3 is a decision, not a crash (the command itself returns 3 to scripts)" >&2; }

.PHONY: help setup pipeline ui serve simulate monitor lineage mlflow-run test test-integration clean

help:  ## this list
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-11s %s\n", $$1, $$2}'

setup:  ## create .venv from the lock files (pipeline.sh does it on first use anyway)
	bash pipeline.sh --setup --dev

pipeline:  ## run the five stages: bash pipeline.sh (DATASET=fashion_mnist for the CNN; ARGS="-S ...")
	bash pipeline.sh $${DATASET:+--dataset "$$DATASET"} $$ARGS \
	  || $(call decided,the quality gate kept the champion)

ui:  ## the MLflow UI on the project's store: http://127.0.0.1:5000 (PORT=5000; the links follow it)
	$(PY) -m lab1.core.mlflow_ui --backend-store-uri $(STORE) --port "$$PORT"

serve:  ## the model service on the champion: http://127.0.0.1:8080 (SERVE_PORT=8080), /docs
	$(PY) -m lab3.serve --port "$$SERVE_PORT"

simulate:  ## with `make serve` running: a normal week, then a shifted one, each monitored (~10 s; SERVE_PORT=8080)
	$(PY) -m lab3.monitor.simulate --url "http://127.0.0.1:$$SERVE_PORT"

monitor:  ## served traffic vs training data (last 7 days; SINCE= UNTIL= LABELS=): report, MLflow run
	$(PY) -m lab3.monitor $${SINCE:+--since "$$SINCE"} $${UNTIL:+--until "$$UNTIL"} \
	  $${LABELS:+--labels "$$LABELS"} || $(call decided,an alarm: drift or quality past a threshold (the report says which))

lineage:  ## how the champion was made, and the command that rebuilds it
	$(PY) -m lab1.lineage

# --env-manager local runs MLproject's `python -m ...` with the python on PATH: .venv's first.
mlflow-run:  ## one stage through MLflow Projects into the project's store (ENTRY=model_testing)
	PATH="$$PWD/.venv/bin:$$PATH" MLFLOW_TRACKING_URI=$(STORE) $(PY) -m mlflow run . \
	  -e "$$ENTRY" --env-manager local \
	  --experiment-name "$$($(PY) -m lab1.core.cli --experiment-name)"

test:  ## the README's test command: the quick tier (lint, types, unit, stages in-process, one pipeline.sh)
	bash tests/run.sh

test-integration:  ## the heavy tier: containers, servers, DVC on S3, Jenkins steps, browsers, CNN, interrupts
	bash tests/run.sh --integration

clean:  ## remove what runs made (data, models, reports, the embedded MLflow store); keeps .venv
	bash pipeline.sh --clean \
	  || $(call decided,the store is in use and nothing was removed; stop what uses it and make clean again)
