#!/usr/bin/env bash
# The project's test command (README quickstart; .ci/run calls both tiers). Works on a fresh
# clone: it creates the environment from the lock files if needed, then runs one tier.
#   bash tests/run.sh                 the quick tier (≤ 10 min on 2 cores): lint, types, unit
#                                     tests, the stages in-process, one real pipeline.sh run
#   bash tests/run.sh --integration   the heavy tier: container image and compose stack,
#                                     PostgreSQL + moto + mlflow server, DVC on S3, the Jenkins
#                                     steps, Prometheus, Chromium, CNN training, the interrupts
#   bash tests/run.sh -k gate         extra arguments go to pytest (within the tier)
# Coverage: the quick tier starts the measurement and reports it; the integration tier adds to
# the quick tier's data and reports both together (the floor, 75 %, is .ci/run's).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

tier=quick
if [ "${1:-}" = --integration ]; then
  tier=integration
  shift
fi

if [ "$tier" = quick ]; then
  # The quick tier needs only the environment (no torch, no system packages).
  bash pipeline.sh --setup --dev
else
  # The validation tools (apt, npm) install while pipeline.sh adds torch: both mostly wait on
  # downloads and disks, so side by side they take the time of the longer one.
  bash tests/tools.sh &
  tools=$!
  bash pipeline.sh --setup --images --dev
  wait "$tools"
fi
py="${MLOPS_VENV:-$root/.venv}/bin/python"
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"

if [ "$tier" = quick ]; then
  echo "== ruff" >&2
  "$py" -m ruff check .
  "$py" -m ruff format --check .
  echo "== mypy" >&2
  "$py" -m mypy
  echo "== pytest (quick tier)" >&2
  "$py" -m pytest -m "not integration" --cov --cov-report=term "$@"
else
  echo "== pytest (integration tier)" >&2
  "$py" -m pytest -m integration --cov --cov-append --cov-report=term "$@"
fi
