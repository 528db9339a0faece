#!/usr/bin/env bash
# The project's test command (README quickstart; .ci/run calls it). Works on a fresh clone:
# it creates the environment from requirements.lock if needed, then lints and runs every test.
#   bash tests/run.sh            everything
#   bash tests/run.sh -m "not e2e"   extra arguments go to pytest (here: the fast unit tests)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

bash pipeline.sh --setup --images --dev
bash tests/tools.sh
py="${MLOPS_VENV:-$root/.venv}/bin/python"

echo "== ruff" >&2
"$py" -m ruff check .
"$py" -m ruff format --check .

echo "== pytest" >&2
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
"$py" -m pytest "$@"
